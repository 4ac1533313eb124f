"""What the running kernel says about the MultiStack module."""

from __future__ import annotations

from pathlib import Path

_MODULE_VERSION = Path("/sys/module/multistack/version")


def loaded_module_version() -> str | None:
    """The loaded module's version, or None when it is not loaded."""
    try:
        return _MODULE_VERSION.read_text().strip()
    except OSError:
        return None
