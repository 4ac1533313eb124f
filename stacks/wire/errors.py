"""The one error type that every wire-format parser raises."""


class MalformedPacket(ValueError):
    """Bytes that are not a valid packet of the protocol being parsed.

    Parsing untrusted bytes raises this and nothing else: truncation, bad
    lengths, bad checksums, bad option encodings and unsupported variants
    all end up here, with a message naming the protocol and the problem.
    """
