"""MultiStack: user-level network stacks beside the OS stack on one NIC."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("multistack")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+src"
