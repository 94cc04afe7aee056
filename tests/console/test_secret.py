"""The installation's console secret file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from certgate.console.secret import SECRET_BYTES, load_or_create_secret


def test_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "console-secret"
    first = load_or_create_secret(path)
    assert len(first) == SECRET_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == first
    assert load_or_create_secret(tmp_path / "other") != first


def test_a_truncated_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "console-secret"
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="needs 32"):
        load_or_create_secret(path)
