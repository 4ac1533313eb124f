"""Fixtures of the unit tests that read the module's files."""

import pytest

from multistack import kernel


@pytest.fixture
def no_module(monkeypatch, tmp_path):
    """The module's device and /proc file point into an empty tmp_path, where
    a test may write stand-ins for them."""
    monkeypatch.setattr(kernel, "DEVICE", str(tmp_path / "multistack"))
    monkeypatch.setattr(kernel, "PROC_FILE", str(tmp_path / "proc"))
    return tmp_path
