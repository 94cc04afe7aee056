"""The generated API reference is current and complete."""

from __future__ import annotations

from pathlib import Path

from certgate.api.errors import REASONS
from certgate.api.reference import GROUP_ORDER, render
from certgate.api.registry import REGISTRY

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_committed_reference_is_current() -> None:
    assert DOC.read_text() == render(), "regenerate: python -m certgate.api.reference > docs/api.md"


def test_reference_lists_every_action_parameter_and_error() -> None:
    text = render()
    for action in REGISTRY:
        assert action.group in GROUP_ORDER
        assert f"### {action.name}\n" in text
        for param in action.params:
            assert f"| `{param.name}` |" in text
    for spec in REASONS.values():
        assert f"`{spec.code.replace('{param}', '<Param>')}`" in text
