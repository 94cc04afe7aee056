"""docs/rules.md is generated from the code and must be current."""

from __future__ import annotations

from pathlib import Path

from certgate.rules import EDGE_SCHEME, ErrorKind
from certgate.rules.doc import render_reference
from certgate.rules.settings import describe_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "rules.md"


def test_docs_rules_md_is_up_to_date() -> None:
    assert DOC.read_text(encoding="utf-8") == render_reference(), (
        "docs/rules.md is stale: run .venv/bin/python scripts/gen_rules_doc.py"
    )


def test_reference_mentions_everything() -> None:
    text = render_reference()
    for f in EDGE_SCHEME.fields:
        assert f"`{f.name}`" in text
        for alias in f.aliases:
            assert f"`{alias}`" in text
    for name in EDGE_SCHEME.functions:
        assert f"`{name}(" in text
    for name, default, _ in describe_settings():
        assert f"| `{name}` | {default} |" in text
    for kind in ErrorKind:
        assert f"`{kind.value}`" in text
