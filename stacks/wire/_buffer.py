"""Turning any bytes-like input into a flat byte view, once, without copying."""

from .errors import MalformedPacket


def byte_view(data) -> memoryview:
    """A 1-D unsigned-byte memoryview over ``data`` (no copy)."""
    if type(data) is memoryview and data.format == "B" and data.ndim == 1:
        return data  # the common case inside a frame: a slice of the outer view
    try:
        view = memoryview(data)
    except TypeError:
        raise MalformedPacket(f"expected a bytes-like object, got {type(data).__name__}") from None
    if view.format != "B" or view.ndim != 1:
        try:
            view = view.cast("B")
        except TypeError:
            raise MalformedPacket("buffer is not contiguous bytes") from None
    return view
