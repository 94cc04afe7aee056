"""ParserSettings: documented defaults, validation."""

from __future__ import annotations

import pytest

from certgate.rules import ParserSettings
from certgate.rules.settings import describe_settings


def test_defaults() -> None:
    assert ParserSettings() == ParserSettings(
        max_expression_bytes=4096,
        max_nesting_depth=32,
        max_set_size=1024,
        max_regex_bytes=1024,
        max_regex_states=2048,
        max_wildcard_stars=32,
    )
    assert all(help_text for _, _, help_text in describe_settings())


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_positive_ints_only(bad: object) -> None:
    with pytest.raises(ValueError):
        ParserSettings(max_nesting_depth=bad)  # type: ignore[arg-type]
