"""``ParserSettings``: every resource limit of the rule language, with its documented default.

The control plane validates with these limits and the edge parses with the same ones, so an
expression that was accepted once always compiles at the edge. The help text of each field is
rendered into ``docs/rules.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


def _limit(default: int, help_text: str) -> int:
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True, slots=True)
class ParserSettings:
    """Limits applied while parsing; all are inclusive maxima."""

    max_expression_bytes: int = _limit(
        4096, "Length of the whole expression in UTF-8 bytes (ESA: rule condition <= 4 KB)."
    )
    max_nesting_depth: int = _limit(
        32, "Nesting depth: every parenthesis, `not` and function call adds one level."
    )
    max_set_size: int = _limit(1024, "Number of values (items or ranges) in one `in {...}` set.")
    max_regex_bytes: int = _limit(1024, "Length of one `matches` pattern in UTF-8 bytes.")
    max_regex_states: int = _limit(
        2048,
        "Automaton states of one `matches` pattern (both the NFA after repetition counts are "
        "expanded and the DFA built from it). Bounds compile time and memory; matching itself "
        "is always linear in the input.",
    )
    max_wildcard_stars: int = _limit(32, "Number of `*` in one `wildcard` pattern.")

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ParserSettings.{f.name} must be a positive int, got {value!r}")


def describe_settings() -> list[tuple[str, int, str]]:
    """(name, default, help) for every limit, in declaration order (used by the doc generator)."""
    defaults = ParserSettings()
    return [(f.name, getattr(defaults, f.name), str(f.metadata["help"])) for f in fields(defaults)]
