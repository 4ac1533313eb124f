"""Wire formats: length-checked views and immutable representations.

Each protocol module offers a view class (``...Packet``/``...Frame``) that
checks lengths before any field is read, and a frozen ``...Repr`` dataclass
with ``parse`` and ``emit``.  Parsing raises only
:class:`stacks.wire.errors.MalformedPacket`.
"""

from .errors import MalformedPacket

__all__ = ["MalformedPacket"]
