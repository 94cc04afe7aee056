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
    program.literals = None  # no substring shortcut either
    return program


LITERAL_PATTERNS = [
    ("", [""]),
    ("abc", ["abc"]),
    ("a|b|c", ["a", "b", "c"]),
    ("(?i)(sqlmap|nikto|masscan)", ["masscan", "nikto", "sqlmap"]),
    ("(?i)NiKtO", ["nikto"]),
    ("scanner(0|1)", ["scanner0", "scanner1"]),
    ("(?i)x(a|b)Y", ["xay", "xby"]),
    ("(a|)b", ["ab", "b"]),
    ("(?i)k", ["k"]),
    ("[.]php", [".php"]),
    ("(?s)(?i)(get|post)", ["get", "post"]),
]

NOT_LITERAL = [
    "^abc",  # anchored
    "abc$",
    "a.c",  # a class
    "[^a]",
    "[a-z]x",  # a range
    "\\dx",
    "ab*",  # repetition
    "x{2}",
    "(?i:a)b",  # scoped flags
    "é|a",  # not ASCII
    "(a|b|c|d)(a|b|c|d)(a|b|c)",  # 48 strings, over the budget
]


@pytest.mark.parametrize(("pattern", "strings"), LITERAL_PATTERNS)
def test_fixed_string_patterns_become_substring_tests(pattern: str, strings: list[str]) -> None:
    program = compile_regex(pattern, **LIMITS)
    assert program.literals is not None
    assert sorted(program.literals) == strings


@pytest.mark.parametrize("pattern", NOT_LITERAL)
def test_other_patterns_keep_the_engines(pattern: str) -> None:
    assert compile_regex(pattern, **LIMITS).literals is None


LITERAL_ALPHABET = "aAbBkKxXyY.php0\n \u212a\u0130é"  # Kelvin sign and dotted I fold to ASCII in str.lower


@pytest.mark.parametrize("pattern", [p for p, _ in LITERAL_PATTERNS])
def test_substring_tests_agree_with_the_automaton_and_re(pattern: str) -> None:
    program = compile_regex(pattern, **LIMITS)
    slow = dfa_only(pattern)
    rng = random.Random(pattern + "literal")
    samples = ["\u212a", "nI\u212aTO", "NIKTO", "xAy\n", "Mozilla/5.0 SQLMAP/1.7"]
    samples += ["".join(rng.choice(LITERAL_ALPHABET) for _ in range(rng.randint(0, 12))) for _ in range(1500)]
    for text in samples:
        expected = python_search(pattern, text)
        assert program.search(text) == expected, (pattern, text)
        assert slow.search(text) == expected, (pattern, text)


def test_case_folded_substrings_ignore_non_ascii_folding() -> None:
    # str.lower() maps the Kelvin sign to "k"; (?i) under re.ASCII does not: no match.
    program = compile_regex("(?i)(nikto|sqlmap)", **LIMITS)
    assert program.search("NIKTO/2.5")
    assert not program.search("ni\u212ato")
    assert re.search("(?i)(nikto|sqlmap)", "ni\u212ato", re.ASCII) is None


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
