"""The compiled UTCP core: built and used by default, never used when stale."""

import importlib
import importlib.machinery
import os
import sys
import warnings

import pytest

import stacks.utcp
import stacks.utcp.connection
from stacks import _compiled

EXTENSION = importlib.machinery.EXTENSION_SUFFIXES[0]


def test_the_core_runs_compiled_unless_pure_python_is_asked_for():
    # scripts/test builds the core; a run with the variable set tests the sources.
    compiled = not os.environ.get(_compiled.PURE_ENV)
    assert stacks.utcp.COMPILED is compiled
    assert stacks.utcp.connection.__file__.endswith(EXTENSION if compiled else ".py")


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A package whose module ``core`` has a source and a (bogus) extension beside it."""
    name = f"compiled_guard_{os.getpid()}_{id(tmp_path)}"
    directory = tmp_path / name
    directory.mkdir()
    (directory / "__init__.py").write_text("")
    (directory / "core.py").write_text("WHERE = 'source'\n")
    (directory / ("core" + EXTENSION)).write_bytes(b"not an extension module")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.delenv(_compiled.PURE_ENV, raising=False)
    yield name, str(directory)
    for module in [m for m in sys.modules if m.startswith(name)]:
        del sys.modules[module]


def record_digest(directory):
    with open(os.path.join(directory, _compiled.MANIFEST), "w") as manifest:
        manifest.write(_compiled.source_digest(directory, ["core"]) + "\n")


def test_extensions_built_from_the_current_sources_are_used(package):
    name, directory = package
    record_digest(directory)
    assert _compiled.guard(name, directory, ["core"]) is True
    importlib.import_module(name)
    # Python takes the extension over the source: here, the bogus one.
    with pytest.raises(ImportError):
        importlib.import_module(f"{name}.core")


def test_sources_changed_since_the_build_are_imported_with_a_warning(package):
    name, directory = package
    record_digest(directory)
    with open(os.path.join(directory, "core.py"), "a") as source:
        source.write("CHANGED = True\n")
    with pytest.warns(UserWarning, match="not built from these sources"):
        assert _compiled.guard(name, directory, ["core"]) is False
    importlib.import_module(name)
    core = importlib.import_module(f"{name}.core")
    assert core.WHERE == "source" and core.CHANGED


def test_a_build_without_a_manifest_counts_as_stale(package):
    name, directory = package
    with pytest.warns(UserWarning):
        assert _compiled.guard(name, directory, ["core"]) is False
    importlib.import_module(name)
    assert importlib.import_module(f"{name}.core").WHERE == "source"


def test_pure_python_asked_for_imports_the_sources_silently(package, monkeypatch):
    name, directory = package
    record_digest(directory)
    monkeypatch.setenv(_compiled.PURE_ENV, "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _compiled.guard(name, directory, ["core"]) is False
    importlib.import_module(name)
    assert importlib.import_module(f"{name}.core").WHERE == "source"


def test_nothing_built_means_sources_and_no_finder(package):
    name, directory = package
    os.unlink(os.path.join(directory, "core" + EXTENSION))
    finders = list(sys.meta_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _compiled.guard(name, directory, ["core"]) is False
    assert sys.meta_path == finders
