"""Linear-time regular expressions for ``matches``.

Python's ``re`` backtracks: ``a.*b`` takes ~70 ms on 8 000 ``a``s and ``\\d+\\d+x`` seconds, so
an edge that ran rule patterns with ``re.search`` over client-controlled headers could be
stalled by one request. wirefilter avoids this with Rust's automaton-based ``regex``; we do the
same in pure Python: the pattern is parsed with the standard library's own regex parser, turned
into an NFA, and the NFA into a DFA **at parse time**, bounded by ``max_regex_states``. Matching
walks the DFA once over the input (never backtracks), and states that loop on most characters
skip ahead with a single-character-class ``re`` search, which runs in C and cannot backtrack.

The accepted syntax is Python's, minus what an automaton cannot do (RE2's rules):
backreferences, lookaround, conditionals, atomic groups, possessive quantifiers, ``\\b``/``\\B``
and the MULTILINE/LOCALE flags are refused with a clear error. Semantics, as in wirefilter:
unanchored search; ``^``/``\\A`` match at the start, ``$``/``\\Z`` only at the very end;
``\\d \\w \\s`` are ASCII classes and ``(?i)`` folds ASCII letters (exactly ``re.ASCII``);
``.`` excludes ``\\n`` unless ``(?s)``; laziness (``*?``) does not change a boolean answer.

Patterns without unbounded repetition and with few alternative paths (``^/api/(a|b)/``,
``(?i)(sqlmap|nikto)``) are also compiled with ``re``: a backtracking search over such a pattern
does at most (paths * pattern length) steps per input position, so for inputs short enough to
keep that product under ``_FAST_STEP_BUDGET`` the C engine answers, identically and faster;
longer inputs take the DFA.

Patterns that can only match a few fixed strings (``sqlmap``, ``(?i)(sqlmap|nikto|masscan)``,
``scanner(0|1)``), without anchors, skip both engines: they are answered with substring tests
(``in``), over ``text.lower()`` when ``(?i)`` folds them. ``str.lower`` folds more than ASCII
(the Kelvin sign becomes ``k``), so the folded test is used only for ASCII text; other text
takes the paths above.
"""

from __future__ import annotations

import bisect
import importlib
import re
from collections.abc import Callable, Iterable
from typing import Any

from certgate.rules.errors import ErrorKind
from certgate.rules.matchers import ascii_lower

# The stdlib regex parser; a private module, but its output format has been stable for decades
# and tests/rules/test_regex.py pins the constructs we rely on.
_parser: Any = importlib.import_module("re._parser")
_const: Any = importlib.import_module("re._constants")

MAX_CODEPOINT = 0x10FFFF

_CHAR, _SPLIT, _BEGIN, _END, _MATCH = range(5)

_FAST_STEP_BUDGET = 100_000  # backtracking steps the `re` fast path may take, worst case
_FAST_MAX_PATHS = 64
_MAX_LITERALS = 32  # a pattern matching at most this many fixed strings is a substring test
_FAST_MAX_REPEAT = 16

Intervals = tuple[tuple[int, int], ...]

_DIGIT: Intervals = ((48, 57),)
_WORD: Intervals = ((48, 57), (65, 90), (95, 95), (97, 122))
_SPACE: Intervals = ((9, 13), (32, 32))


class RegexError(Exception):
    """A pattern was refused; the parser turns this into a ``RuleParseError``."""

    def __init__(self, kind: ErrorKind, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.offset = offset  # position inside the pattern, when known


# -- interval sets over code points ---------------------------------------------------------------


def _normalize(intervals: Iterable[tuple[int, int]]) -> Intervals:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return tuple(merged)


def _negate(intervals: Intervals) -> Intervals:
    out: list[tuple[int, int]] = []
    start = 0
    for lo, hi in intervals:
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= MAX_CODEPOINT:
        out.append((start, MAX_CODEPOINT))
    return tuple(out)


def _fold_ascii(intervals: Intervals) -> Intervals:
    """Add the other case of every ASCII letter the set contains."""
    extra: list[tuple[int, int]] = []
    for lo, hi in intervals:
        for a, z, shift in ((97, 122, -32), (65, 90, 32)):
            s, e = max(lo, a), min(hi, z)
            if s <= e:
                extra.append((s + shift, e + shift))
    return _normalize((*intervals, *extra))


def _literal(cp: int, ignore_case: bool) -> Intervals:
    if ignore_case and (65 <= cp <= 90 or 97 <= cp <= 122):
        return _normalize(((cp | 0x20, cp | 0x20), (cp & ~0x20, cp & ~0x20)))
    return ((cp, cp),)


# -- NFA construction -----------------------------------------------------------------------------


class _NFA:
    def __init__(self, max_states: int) -> None:
        self.kind: list[int] = []
        self.pred: list[int] = []  # predicate index for _CHAR
        self.outs: list[list[int]] = []
        self.max_states = max_states
        self.predicates: list[Intervals] = []
        self._pred_index: dict[Intervals, int] = {}

    def add(self, kind: int, outs: list[int], pred: int = -1) -> int:
        if len(self.kind) >= self.max_states:
            raise RegexError(
                ErrorKind.REGEX_TOO_COMPLEX,
                f"pattern needs more than {self.max_states} automaton states "
                "(large repetition counts multiply the pattern)",
            )
        self.kind.append(kind)
        self.pred.append(pred)
        self.outs.append(outs)
        return len(self.kind) - 1

    def char(self, intervals: Intervals, nxt: int) -> int:
        index = self._pred_index.get(intervals)
        if index is None:
            index = len(self.predicates)
            self.predicates.append(intervals)
            self._pred_index[intervals] = index
        return self.add(_CHAR, [nxt], index)


def _name(op: Any) -> str:
    return str(op)


class _Builder:
    """Thompson construction, right to left: ``build(items, nxt)`` returns the start state."""

    def __init__(self, nfa: _NFA) -> None:
        self.nfa = nfa

    def sequence(self, items: Any, nxt: int, flags: int) -> int:
        for op, av in reversed(list(items)):
            nxt = self.item(_name(op), av, nxt, flags)
        return nxt

    def item(self, op: str, av: Any, nxt: int, flags: int) -> int:
        icase = bool(flags & re.IGNORECASE)
        nfa = self.nfa
        if op == "LITERAL":
            return nfa.char(_literal(av, icase), nxt)
        if op == "NOT_LITERAL":
            return nfa.char(_negate(_literal(av, icase)), nxt)
        if op == "ANY":
            every: Intervals = ((0, MAX_CODEPOINT),) if flags & re.DOTALL else ((0, 9), (11, MAX_CODEPOINT))
            return nfa.char(every, nxt)
        if op == "IN":
            return nfa.char(self.char_class(av, icase), nxt)
        if op == "BRANCH":
            starts = [self.sequence(alt, nxt, flags) for alt in av[1]]
            return nfa.add(_SPLIT, starts)
        if op == "SUBPATTERN":
            _group, add_flags, del_flags, sub = av
            _check_flags(add_flags)
            return self.sequence(sub, nxt, (flags | add_flags) & ~del_flags)
        if op in ("MAX_REPEAT", "MIN_REPEAT"):
            return self.repeat(av, nxt, flags)
        if op == "AT":
            where = _name(av)
            if where in ("AT_BEGINNING", "AT_BEGINNING_STRING"):
                return nfa.add(_BEGIN, [nxt])
            if where in ("AT_END", "AT_END_STRING"):
                return nfa.add(_END, [nxt])
            raise RegexError(
                ErrorKind.INVALID_REGEX, "word boundaries (\\b, \\B) are not supported; use explicit classes"
            )
        raise RegexError(ErrorKind.INVALID_REGEX, _UNSUPPORTED.get(op, f"unsupported regex construct {op}"))

    def repeat(self, av: Any, nxt: int, flags: int) -> int:
        low, high, sub = av
        nfa = self.nfa
        state = nxt
        if high == _const.MAXREPEAT:
            loop = nfa.add(_SPLIT, [])
            body = self.sequence(sub, loop, flags)
            nfa.outs[loop] = [body, nxt]
            state = loop
        else:
            for _ in range(high - low):
                state = nfa.add(_SPLIT, [self.sequence(sub, state, flags), nxt])
        for _ in range(low):
            state = self.sequence(sub, state, flags)
        return state

    @staticmethod
    def char_class(items: Any, icase: bool) -> Intervals:
        negate = False
        parts: list[tuple[int, int]] = []
        for op, av in items:
            name = _name(op)
            if name == "NEGATE":
                negate = True
            elif name == "LITERAL":
                parts.extend(_literal(av, icase))
            elif name == "RANGE":
                parts.append((av[0], av[1]))
            elif name == "CATEGORY":
                parts.extend(_category(_name(av)))
            else:
                raise RegexError(ErrorKind.INVALID_REGEX, f"unsupported character class item {name}")
        intervals = _normalize(parts)
        if icase:
            intervals = _fold_ascii(intervals)
        return _negate(intervals) if negate else intervals


_UNSUPPORTED = {
    "GROUPREF": "backreferences are not supported (matching is linear-time)",
    "GROUPREF_EXISTS": "conditional groups are not supported (matching is linear-time)",
    "ASSERT": "lookahead/lookbehind is not supported (matching is linear-time)",
    "ASSERT_NOT": "lookahead/lookbehind is not supported (matching is linear-time)",
    "ATOMIC_GROUP": "atomic groups are not supported",
    "POSSESSIVE_REPEAT": "possessive quantifiers are not supported",
}


def _category(name: str) -> Intervals:
    table = {
        "CATEGORY_DIGIT": _DIGIT,
        "CATEGORY_WORD": _WORD,
        "CATEGORY_SPACE": _SPACE,
    }
    if name in table:
        return table[name]
    positive = name.replace("CATEGORY_NOT_", "CATEGORY_")
    if positive in table and positive != name:
        return _negate(table[positive])
    raise RegexError(ErrorKind.INVALID_REGEX, f"unsupported character category {name}")


def _check_flags(flags: int) -> None:
    if flags & re.MULTILINE:
        raise RegexError(ErrorKind.INVALID_REGEX, "the MULTILINE flag (?m) is not supported")
    if flags & re.LOCALE:
        raise RegexError(ErrorKind.INVALID_REGEX, "the LOCALE flag (?L) is not supported")


# -- DFA ------------------------------------------------------------------------------------------


def _no_match(_text: str, _pos: int) -> None:
    return None


class Program:
    """A compiled pattern: ``program.search(text)`` tells whether it matches anywhere."""

    __slots__ = (
        "_accept",
        "_accept_end",
        "_ascii",
        "_bounds",
        "_dollar",
        "_fast",
        "_fast_max_len",
        "_icase",
        "_skip",
        "_trans",
        "literals",
        "pattern",
        "state_count",
    )

    def __init__(
        self,
        pattern: str,
        trans: list[list[int]],
        accept: list[bool],
        accept_end: list[bool],
        skip: list[Callable[[str, int], re.Match[str] | None] | None],
        bounds: list[int],
    ) -> None:
        self.pattern = pattern
        self._trans = trans
        self._accept = accept
        self._accept_end = accept_end
        self._skip = skip
        self._bounds = bounds
        self._ascii = [bisect.bisect_right(bounds, c) - 1 for c in range(128)]
        self.state_count = len(trans)
        self._fast: Callable[[str], re.Match[str] | None] | None = None
        self._fast_max_len = -1
        self._dollar = False
        # Set by enable_literals: the pattern matches exactly when one of these is a substring
        # (of the ASCII-lowered text when `_icase`; the strings are then lowered too).
        self.literals: tuple[str, ...] | None = None
        self._icase = False

    def enable_fast_path(
        self, search: Callable[[str], re.Match[str] | None], max_len: int, dollar: bool
    ) -> None:
        """Let ``re`` answer for inputs of at most ``max_len`` characters (see module doc)."""
        self._fast = search
        self._fast_max_len = max_len
        self._dollar = dollar

    def enable_literals(self, literals: tuple[str, ...], ignore_case: bool) -> None:
        """Answer with substring tests (see module doc); ``literals`` are ASCII."""
        self.literals = tuple(ascii_lower(lit) for lit in literals) if ignore_case else literals
        self._icase = ignore_case

    @property
    def fast_path(self) -> tuple[Callable[[str], re.Match[str] | None], int, bool] | None:
        """(``re`` search, longest input it may take, whether inputs ending in a newline must
        take the automaton instead) or None; what ``search`` does first, for the compiler."""
        if self._fast is None:
            return None
        return self._fast, self._fast_max_len, self._dollar

    @property
    def ignore_case(self) -> bool:
        """Whether ``literals`` are to be found in the lowered text."""
        return self._icase

    def search(self, text: str) -> bool:
        literals = self.literals
        if literals is not None:
            if not self._icase:
                return any(lit in text for lit in literals)
            if text.isascii():
                folded = text.lower()
                return any(lit in folded for lit in literals)
        fast = self._fast
        if fast is not None and len(text) <= self._fast_max_len:
            # Python's `$` also matches before a final newline; ours does not: let the DFA decide.
            if not (self._dollar and text.endswith("\n")):
                return fast(text) is not None
        accept = self._accept
        if accept[0]:
            return True
        trans, skip, table, bounds = self._trans, self._skip, self._ascii, self._bounds
        state, pos, end = 0, 0, len(text)
        while pos < end:
            jump = skip[state]
            if jump is not None:
                m = jump(text, pos)
                if m is None:
                    break  # every remaining character loops on this state
                pos = m.start()
            c = ord(text[pos])
            state = trans[state][table[c] if c < 128 else bisect.bisect_right(bounds, c) - 1]
            if accept[state]:
                return True
            pos += 1
        return self._accept_end[state]

    def __repr__(self) -> str:
        return f"Program({self.pattern!r}, states={self.state_count})"


def compile_regex(pattern: str, *, max_bytes: int, max_states: int) -> Program:
    """Parse and compile ``pattern`` or raise ``RegexError``."""
    if len(pattern.encode("utf-8", "surrogateescape")) > max_bytes:
        raise RegexError(ErrorKind.REGEX_TOO_LARGE, f"pattern is longer than {max_bytes} bytes")
    try:
        parsed = _parser.parse(pattern, 0)
    except re.error as exc:
        raise RegexError(ErrorKind.INVALID_REGEX, f"invalid regex: {exc.msg}", exc.pos) from None
    except (RecursionError, OverflowError, ValueError):
        raise RegexError(ErrorKind.INVALID_REGEX, "invalid regex: too deeply nested or too large") from None
    flags = int(parsed.state.flags)
    _check_flags(flags)
    nfa = _NFA(max_states)
    try:
        match = nfa.add(_MATCH, [])
        start = _Builder(nfa).sequence(parsed, match, flags)
    except RecursionError:
        raise RegexError(ErrorKind.INVALID_REGEX, "invalid regex: too deeply nested") from None
    program = _build_dfa(pattern, nfa, start, max_states)
    strings = _fixed_strings(parsed, _MAX_LITERALS)
    if strings is not None and all(s.isascii() for s in strings):
        program.enable_literals(tuple(sorted(set(strings))), bool(flags & re.IGNORECASE))
    paths = _path_count(parsed, _FAST_MAX_PATHS)
    if paths is not None:
        try:
            fast = re.compile(pattern, re.ASCII).search
        except (re.error, ValueError):
            return program
        steps_per_char = paths * max(1, len(pattern))
        program.enable_fast_path(fast, _FAST_STEP_BUDGET // steps_per_char, _has_dollar(parsed))
    return program


def _fixed_strings(items: Any, limit: int) -> list[str] | None:
    """Every string the pattern matches, when it is a finite set of at most ``limit`` strings
    made of literals, alternations, groups and sets of literal characters; else None. Anchors,
    classes, repetition and scoped flags give None."""
    strings = [""]
    for op, av in items:
        name = _name(op)
        choices: list[str] | None
        if name == "LITERAL":
            choices = [chr(av)]
        elif name == "IN":
            choices = []
            for item_op, item_av in av:
                if _name(item_op) != "LITERAL":
                    return None
                choices.append(chr(item_av))
        elif name == "BRANCH":
            choices = []
            for alt in av[1]:
                sub = _fixed_strings(alt, limit)
                if sub is None:
                    return None
                choices.extend(sub)
        elif name == "SUBPATTERN":
            _group, add_flags, del_flags, sub_items = av
            if add_flags or del_flags:
                return None
            choices = _fixed_strings(sub_items, limit)
        else:
            return None
        if choices is None or len(strings) * len(choices) > limit:
            return None
        strings = [head + tail for head in strings for tail in choices]
    return strings


def _path_count(items: Any, limit: int) -> int | None:
    """How many ways a backtracking matcher can walk the pattern from one start position; None
    when unbounded (a `*`, `+`, `{n,}` or a large count) or above ``limit``."""
    total = 1
    for op, av in items:
        name = _name(op)
        count: int | None
        if name in ("LITERAL", "NOT_LITERAL", "ANY", "IN", "AT"):
            count = 1
        elif name == "BRANCH":
            count = 0
            for alt in av[1]:
                sub = _path_count(alt, limit)
                if sub is None:
                    return None
                count += sub
        elif name == "SUBPATTERN":
            count = _path_count(av[3], limit)
        elif name in ("MAX_REPEAT", "MIN_REPEAT"):
            low, high, sub_items = av
            if high == _const.MAXREPEAT or high > _FAST_MAX_REPEAT:
                return None
            sub = _path_count(sub_items, limit)
            if sub is None:
                return None
            count = sum(sub**k for k in range(low, high + 1))
        else:
            return None
        if count is None:
            return None
        total *= count
        if total > limit:
            return None
    return total


def _has_dollar(items: Any) -> bool:
    for op, av in items:
        name = _name(op)
        if name == "AT" and _name(av) == "AT_END":
            return True
        if name == "BRANCH" and any(_has_dollar(alt) for alt in av[1]):
            return True
        if name == "SUBPATTERN" and _has_dollar(av[3]):
            return True
        if name in ("MAX_REPEAT", "MIN_REPEAT") and _has_dollar(av[2]):
            return True
    return False


def _closure(nfa: _NFA, seeds: Iterable[int], at_begin: bool, at_end: bool) -> frozenset[int]:
    """The states reachable through epsilon moves, keeping those that consume or decide."""
    kind, outs = nfa.kind, nfa.outs
    seen: set[int] = set()
    core: set[int] = set()
    stack = list(seeds)
    while stack:
        s = stack.pop()
        if s in seen:
            continue
        seen.add(s)
        k = kind[s]
        if k == _SPLIT:
            stack.extend(outs[s])
        elif k == _BEGIN:
            if at_begin:
                stack.extend(outs[s])
            # otherwise dropped: past the first character it can never hold again
        elif k == _END:
            if at_end:
                stack.extend(outs[s])
            else:
                core.add(s)  # kept: it may be passed if the input ends here
        else:
            core.add(s)
    return frozenset(core)


def _build_dfa(pattern: str, nfa: _NFA, start: int, max_states: int) -> Program:
    # Partition the code points into classes on which every predicate is constant.
    cuts = {0}
    for intervals in nfa.predicates:
        for lo, hi in intervals:
            cuts.add(lo)
            if hi + 1 <= MAX_CODEPOINT:
                cuts.add(hi + 1)
    bounds = sorted(cuts)
    class_count = len(bounds)
    pred_classes: list[frozenset[int]] = []
    for intervals in nfa.predicates:
        members: set[int] = set()
        for lo, hi in intervals:
            first = bisect.bisect_right(bounds, lo) - 1
            last = bisect.bisect_right(bounds, hi) - 1
            members.update(range(first, last + 1))
        pred_classes.append(frozenset(members))

    kind, pred, outs = nfa.kind, nfa.pred, nfa.outs
    restart = _closure(nfa, [start], at_begin=False, at_end=False)
    initial = _closure(nfa, [start], at_begin=True, at_end=False)

    sets: list[frozenset[int]] = [initial]
    index: dict[frozenset[int], int] = {}
    if not any(k == _BEGIN for k in kind):
        # Without ^ the start is just the restart state, which lets it loop (and skip ahead).
        # With ^ it stays apart: only it is "at the beginning".
        index[initial] = 0
    trans: list[list[int]] = []
    accept: list[bool] = []
    accept_end: list[bool] = []

    def intern(state_set: frozenset[int]) -> int:
        found = index.get(state_set)
        if found is None:
            if len(sets) >= max_states:
                raise RegexError(
                    ErrorKind.REGEX_TOO_COMPLEX,
                    f"pattern needs more than {max_states} automaton states; simplify it",
                )
            found = len(sets)
            sets.append(state_set)
            index[state_set] = found
        return found

    current = 0
    while current < len(sets):
        state_set = sets[current]
        is_accept = any(kind[s] == _MATCH for s in state_set)
        accept.append(is_accept)
        at_end = _closure(nfa, state_set, at_begin=current == 0, at_end=True)
        accept_end.append(any(kind[s] == _MATCH for s in at_end))
        row = [current] * class_count
        if not is_accept:  # an accepting state ends the search; it needs no moves
            chars = [s for s in state_set if kind[s] == _CHAR]
            for cls in range(class_count):
                moved = [outs[s][0] for s in chars if cls in pred_classes[pred[s]]]
                row[cls] = intern(_closure(nfa, moved, at_begin=False, at_end=False) | restart)
        trans.append(row)
        current += 1

    skip = [_skip_for(state, trans[state], bounds) for state in range(len(trans))]
    return Program(pattern, trans, accept, accept_end, skip, bounds)


def _skip_for(
    state: int, row: list[int], bounds: list[int]
) -> Callable[[str, int], re.Match[str] | None] | None:
    """A C-speed jump to the next character that leaves ``state``, if that pays off."""
    leaving = [cls for cls, target in enumerate(row) if target != state]
    if not leaving:
        return _no_match
    # Only states that loop on most of ASCII are worth a regex call per visit.
    ascii_leaving = sum(1 for c in range(128) if row[bisect.bisect_right(bounds, c) - 1] != state)
    if ascii_leaving > 64:
        return None
    parts = []
    for cls in leaving:
        lo = bounds[cls]
        hi = bounds[cls + 1] - 1 if cls + 1 < len(bounds) else MAX_CODEPOINT
        parts.append(f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}")
    return re.compile("[" + "".join(parts) + "]").search
