"""The linear-time regex engine: agrees with Python's re on the supported subset, refuses what an
automaton cannot do, and stays linear on inputs that make backtracking engines explode."""

from __future__ import annotations

import random
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certgate.rules.errors import ErrorKind
from certgate.rules.regex import Program, RegexError, compile_regex

LIMITS = {"max_bytes": 1024, "max_states": 2048}

PATTERNS = [
    "",
    "a",
    "abc",
    "a.*b",
    "^abc",
    "abc$",
    "^$",
    "^a*$",
    "\\Aab\\Z",
    "(?i)BoT",
    "(?i)[a-c]+z",
    "(?s)a.b",
    "a.b",
    "[^abc]",
    "[^a-z]+$",
    "\\.php$",
    "[a-z]+b",
    "\\d+\\d+x",
    "(a|b)*c",
    "(a|ab)(c|bcd)",
    "^/admin(/|$)",
    "x{2,4}",
    "x{3}",
    "x{2,}",
    "(ab)+$",
    "(a*)*b",
    "(a?){3}a{3}",
    "a*?b",
    "[\\d\\-]+z",
    "\\w+@\\w+\\.com",
    "^(GET|POST)$",
    "\\s\\S",
    "[\\W]",
    "\\D\\d",
    "(?i:A)b",
    "a(?i:b)C",
    "(?x) a b  c",
    "[.]",
    "é+",
    "[é-ü]",
]

ALPHABET = "abcxzABC/.-_@ \n1é"


def python_search(pattern: str, text: str) -> bool:
    # Our `$` is end-of-input only (as in wirefilter); Python's also matches before a final \n.
    translated = pattern.replace("$", "\\Z")
    return re.search(translated, text, re.ASCII) is not None


@pytest.mark.parametrize("pattern", PATTERNS)
def test_agrees_with_python_re(pattern: str) -> None:
    program = compile_regex(pattern, **LIMITS)
    rng = random.Random(pattern)
    samples = ["", "abc", "aab", "xx", "xxx", "ab\n", "GET", "/admin", "a@b.com", "1-2z", "éé"]
    samples += ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 14))) for _ in range(1500)]
    for text in samples:
        assert program.search(text) == python_search(pattern, text), (pattern, text)


@settings(max_examples=200, derandomize=True, database=None)
@given(st.sampled_from(PATTERNS), st.text(alphabet=ALPHABET, max_size=20))
def test_agrees_with_python_re_hypothesis(pattern: str, text: str) -> None:
    assert compile_regex(pattern, **LIMITS).search(text) == python_search(pattern, text)


def test_case_folding_is_ascii_only() -> None:
    # As re.ASCII and wirefilter's lower(): only A-Z/a-z fold.
    assert compile_regex("(?i)ABC", **LIMITS).search("xabc")
    assert not compile_regex("(?i)É", **LIMITS).search("xé")


def dfa_only(pattern: str) -> Program:
    program = compile_regex(pattern, **LIMITS)
    program.enable_fast_path(re.compile(pattern).search, -1, False)  # max_len -1: never used
    return program


@pytest.mark.parametrize("pattern", PATTERNS)
def test_fast_path_and_automaton_agree(pattern: str) -> None:
    fast = compile_regex(pattern, **LIMITS)
    slow = dfa_only(pattern)
    rng = random.Random(pattern + "fast")
    for _ in range(800):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 14)))
        for candidate in (text, text + "\n"):
            assert fast.search(candidate) == slow.search(candidate), (pattern, candidate)


def test_fast_path_only_for_bounded_patterns_and_short_inputs() -> None:
    assert compile_regex("^/api/v[0-9]/(admin|debug)/", **LIMITS)._fast is not None
    assert compile_regex("(?i)(sqlmap|nikto|masscan)", **LIMITS)._fast is not None
    assert compile_regex("a.*b", **LIMITS)._fast is None
    assert compile_regex("x{2,40}", **LIMITS)._fast is None
    assert (
        compile_regex("(ab|cd)(ab|cd)(ab|cd)(ab|cd)(ab|cd)(ab|cd)(ab|cd)", **LIMITS)._fast is None
    )  # 128 paths
    program = compile_regex("(?i)(sqlmap|nikto)", **LIMITS)
    assert 0 < program._fast_max_len < 50_000  # long inputs go to the automaton


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("a.*b", "a" * 50_000),
        ("\\d+\\d+x", "1" * 50_000),
        (".*a.*a.*b", "a" * 50_000),
        ("(a|a)*b", "a" * 50_000),
        ("(a*)*b", "a" * 50_000),
        ("(x+x+)+y", "x" * 50_000),
        ("(?i)bot", "x" * 50_000),
    ],
)
def test_matching_is_linear(pattern: str, text: str) -> None:
    program = compile_regex(pattern, **LIMITS)
    started = time.perf_counter()
    assert program.search(text) is False
    # Python's re needs minutes (or forever) on these; a DFA walk needs milliseconds. The bound
    # is generous so a loaded CI machine cannot make it flaky.
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("pattern", "kind", "fragment"),
    [
        ("(a)\\1", ErrorKind.INVALID_REGEX, "backreferences"),
        ("(?P<x>a)(?P=x)", ErrorKind.INVALID_REGEX, "backreferences"),
        ("(?=a)", ErrorKind.INVALID_REGEX, "lookahead"),
        ("(?<!a)b", ErrorKind.INVALID_REGEX, "lookahead"),
        ("(a)?(?(1)b|c)", ErrorKind.INVALID_REGEX, "conditional"),
        ("(?>a)", ErrorKind.INVALID_REGEX, "atomic"),
        ("a++", ErrorKind.INVALID_REGEX, "possessive"),
        ("\\bx", ErrorKind.INVALID_REGEX, "word boundaries"),
        ("x\\B", ErrorKind.INVALID_REGEX, "word boundaries"),
        ("(?m)^a", ErrorKind.INVALID_REGEX, "MULTILINE"),
        ("a(?m:b)", ErrorKind.INVALID_REGEX, "MULTILINE"),
        ("[z-a]", ErrorKind.INVALID_REGEX, "bad character range"),
        ("a{99999999999}", ErrorKind.INVALID_REGEX, "invalid regex"),
        ("(" * 600 + ")" * 600, ErrorKind.REGEX_TOO_LARGE, "longer than"),
        ("(a|b)*a(a|b){12}", ErrorKind.REGEX_TOO_COMPLEX, "automaton states"),
        ("a{5000}", ErrorKind.REGEX_TOO_COMPLEX, "automaton states"),
        ("(.{0,50}){0,50}", ErrorKind.REGEX_TOO_COMPLEX, "automaton states"),
    ],
)
def test_refuses(pattern: str, kind: ErrorKind, fragment: str) -> None:
    with pytest.raises(RegexError) as info:
        compile_regex(pattern, **LIMITS)
    assert info.value.kind == kind
    assert fragment in info.value.message


def test_deep_nesting_within_the_size_limit_is_refused_cleanly() -> None:
    with pytest.raises(RegexError) as info:
        compile_regex("(" * 500 + ")" * 500, max_bytes=4096, max_states=2048)
    assert info.value.kind in (ErrorKind.INVALID_REGEX, ErrorKind.REGEX_TOO_COMPLEX)


def test_state_budget_is_a_setting() -> None:
    compile_regex("a{100}", max_bytes=1024, max_states=2048)
    with pytest.raises(RegexError):
        compile_regex("a{100}", max_bytes=1024, max_states=50)
