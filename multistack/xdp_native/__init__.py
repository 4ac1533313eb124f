"""Build script of the XDP loader extension (see build.py)."""
