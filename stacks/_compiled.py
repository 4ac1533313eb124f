"""The UTCP core compiled to C by mypyc, and the guard that keeps it honest.

``setup.py`` compiles the modules in :data:`COMPILED` (the same typed Python
sources, unchanged) into extension modules beside those sources, and then
writes the sources' digest into a manifest.  Python prefers an extension
module to a source file of the same name, so an extension built from older
sources would run instead of the code next to it.  :func:`guard` runs first
thing in the package: it compares the digest on import and, when it differs
or :data:`PURE_ENV` is set, makes the package import its sources.

This file is plain Python, read by ``setup.py`` by path: it must not import
anything from the project.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import warnings

#: Set (to anything) to neither build nor use the compiled modules.
PURE_ENV = "MULTISTACK_PURE_PYTHON"
MANIFEST = "_compiled.sha256"

#: Per package, the modules compiled: the sans-IO TCP core, not the trio front end.
COMPILED = {
    "stacks.utcp": ("config", "congestion", "connection", "endpoint", "events", "isn",
                    "listener", "rto", "sack", "seq", "states", "syncookies"),
}


def source_digest(directory: str, names) -> str:
    digest = hashlib.sha256()
    for name in names:
        with open(os.path.join(directory, name + ".py"), "rb") as source:
            digest.update(name.encode() + b"\0" + source.read() + b"\0")
    return digest.hexdigest()


def _built(directory: str, names) -> bool:
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    return any(os.path.exists(os.path.join(directory, name + suffix))
               for name in names for suffix in suffixes)


class _SourcesFirst(importlib.abc.MetaPathFinder):
    """Finds the listed modules of one package as source files, ahead of extensions."""

    def __init__(self, package: str, directory: str, names) -> None:
        self.package, self.directory, self.names = package, directory, frozenset(names)

    def find_spec(self, fullname, path, target=None):
        package, _, leaf = fullname.rpartition(".")
        if package != self.package or leaf not in self.names:
            return None
        return importlib.util.spec_from_file_location(
            fullname, os.path.join(self.directory, leaf + ".py"))


def guard(package: str, directory: str, names=None) -> bool:
    """Whether ``package`` runs its compiled modules; if not, it imports its sources.

    ``names`` are the compiled modules' names, by default those in :data:`COMPILED`.
    """
    names = COMPILED[package] if names is None else names
    if not _built(directory, names):
        return False
    if not os.environ.get(PURE_ENV):
        try:
            with open(os.path.join(directory, MANIFEST)) as manifest:
                recorded = manifest.read().strip()
        except OSError:
            recorded = None
        if recorded == source_digest(directory, names):
            return True
        warnings.warn(f"{package}: the compiled modules were not built from these sources (one "
                      "changed since, or the last build was pure Python), so the sources run "
                      "(slower); rebuild with `pip install -e .`", stacklevel=3)
    sys.meta_path.insert(0, _SourcesFirst(package, directory, names))
    return False
