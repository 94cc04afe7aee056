"""certgate.edge.compiled: which edge modules run compiled (mypyc), as logged at start-up."""

from __future__ import annotations

import importlib

import pytest

from certgate.edge import compiled
from certgate.edge.compiled import MYPYC_MODULES, compiled_modules, describe


def test_every_listed_module_is_reported_once_from_the_module_actually_imported() -> None:
    report = compiled_modules()
    assert list(report) == list(MYPYC_MODULES)
    for name, is_compiled in report.items():
        path = importlib.import_module(name).__file__ or ""
        assert is_compiled == (not path.endswith(".py")), path


def test_describe_says_compiled_interpreted_or_which(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiled, "compiled_modules", lambda: dict.fromkeys(MYPYC_MODULES, True))
    assert describe() == f"edge modules compiled with mypyc ({len(MYPYC_MODULES)} of {len(MYPYC_MODULES)})"
    monkeypatch.setattr(compiled, "compiled_modules", lambda: dict.fromkeys(MYPYC_MODULES, False))
    assert describe() == "edge modules interpreted (pure Python build)"
    partly = {"certgate.edge.http1": True, "certgate.edge.proxy": False, "certgate.edge.headers": True}
    monkeypatch.setattr(compiled, "compiled_modules", lambda: partly)
    assert describe() == "edge modules partly compiled with mypyc (2 of 3: http1, headers)"
