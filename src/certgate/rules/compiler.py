"""AST → ``Filter``: one Python function per expression, generated and compiled once.

Nested closures (wirefilter's form) cost a Python call per node, which at 100 rules per request
is most of the budget. So the compiler emits the expression as a single Python expression and
compiles it with ``compile()``; short-circuiting ``and``/``or`` keep evaluation (and the lazy
field fetches behind it) exactly as lazy as the closure form.

Safety of the generated code: it is built only from fixed templates, generated identifiers
(``_c3``, ``_t7``) and integers the compiler chose. Every value that came from the expression
text (strings, field names, numbers, sets, compiled patterns) is passed in as a closure
constant, never spliced into the source, and the code runs with a builtins table holding only
``any``, ``all`` and ``len``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from certgate.rules import ast
from certgate.rules.context import ExecutionContext
from certgate.rules.errors import SchemeMismatchError
from certgate.rules.functions import utf8_len
from certgate.rules.matchers import IntervalSet, IPSet, Wildcard, ascii_lower, ascii_upper, parse_wildcard
from certgate.rules.regex import compile_regex
from certgate.rules.scheme import Scheme
from certgate.rules.settings import ParserSettings


class Filter:
    """A compiled expression. ``execute(ctx)`` → bool; ``fields`` are the canonical names read."""

    __slots__ = ("_fn", "ast", "fields", "scheme", "source")

    def __init__(
        self, filter_ast: ast.FilterAST, fn: Callable[[dict[str, object]], bool], source: str
    ) -> None:
        self.ast = filter_ast
        self.scheme: Scheme = filter_ast.scheme
        self.fields: frozenset[str] = filter_ast.fields
        self.source = source  # the generated Python, for debugging
        self._fn = fn

    def execute(self, ctx: ExecutionContext) -> bool:
        if ctx.scheme is not self.scheme:
            raise SchemeMismatchError("the context was made from another scheme than the filter")
        return self._fn(ctx._values)

    def __repr__(self) -> str:
        return f"Filter({self.ast.to_text()!r})"


def compile_filter(filter_ast: ast.FilterAST, settings: ParserSettings | None = None) -> Filter:
    """Compile a parsed expression. ``settings`` only matter for hand-built ASTs whose regex
    literals carry no pre-built program (the parser's always do)."""
    gen = _Generator(settings or ParserSettings())
    body = gen.expr(filter_ast.expr)
    params = ", ".join(gen.names)
    source = f"def _make({params}):\n    def _filter(V):\n        return {body}\n    return _filter\n"
    namespace: dict[str, Any] = {"__builtins__": {"any": any, "all": all, "len": len}}
    exec(compile(source, "<certgate.rules filter>", "exec"), namespace)
    fn = namespace["_make"](*gen.constants)
    return Filter(filter_ast, fn, source)


class FilterSet:
    """Several filters of one scheme compiled into a single function, for the edge's rule list.

    ``first_match(ctx, start)`` returns the index of the first filter at or after ``start`` that
    matches, or -1: one Python call per request instead of two per rule. Evaluation order,
    short-circuiting and lazy fetching are exactly those of running the filters one by one.
    """

    __slots__ = ("_fn", "filters", "scheme", "source")

    def __init__(
        self,
        filters: tuple[Filter, ...],
        scheme: Scheme,
        fn: Callable[[dict[str, object], int], int],
        source: str,
    ) -> None:
        self.filters = filters
        self.scheme = scheme
        self.source = source
        self._fn = fn

    def __len__(self) -> int:
        return len(self.filters)

    def first_match(self, ctx: ExecutionContext, start: int = 0) -> int:
        if ctx.scheme is not self.scheme:
            raise SchemeMismatchError("the context was made from another scheme than the filters")
        return self._fn(ctx._values, start)

    def matching(self, ctx: ExecutionContext) -> list[int]:
        """Indexes of every filter that matches, in order."""
        found: list[int] = []
        index = self.first_match(ctx, 0)
        while index >= 0:
            found.append(index)
            index = self.first_match(ctx, index + 1)
        return found


def compile_filters(asts: Sequence[ast.FilterAST], settings: ParserSettings | None = None) -> FilterSet:
    """Compile expressions of one scheme into a ``FilterSet`` (order is kept)."""
    if not asts:
        raise ValueError("compile_filters needs at least one expression")
    scheme = asts[0].scheme
    if any(a.scheme is not scheme for a in asts):
        raise SchemeMismatchError("all expressions of a FilterSet must share one scheme")
    filters = tuple(compile_filter(a, settings) for a in asts)
    gen = _Generator(settings or ParserSettings())
    lines = [
        f"        if S <= {i} and {gen.expr(a.expr)}:\n            return {i}" for i, a in enumerate(asts)
    ]
    params = ", ".join(gen.names)
    source = (
        f"def _make({params}):\n    def _first(V, S):\n"
        + "\n".join(lines)
        + "\n        return -1\n    return _first\n"
    )
    namespace: dict[str, Any] = {"__builtins__": {"any": any, "all": all, "len": len}}
    exec(compile(source, "<certgate.rules filter set>", "exec"), namespace)
    return FilterSet(filters, scheme, namespace["_make"](*gen.constants), source)


class _Generator:
    def __init__(self, settings: ParserSettings) -> None:
        self.settings = settings
        self.constants: list[object] = []
        self.names: list[str] = []
        self._by_id: dict[int, str] = {}
        self._temps = 0

    def const(self, value: object) -> str:
        """A closure variable holding ``value`` (shared for identical objects)."""
        key = id(value)
        name = self._by_id.get(key)
        if name is None:
            name = f"_c{len(self.constants)}"
            self.constants.append(value)
            self.names.append(name)
            self._by_id[key] = name
        return name

    def temp(self, prefix: str = "_t") -> str:
        self._temps += 1
        return f"{prefix}{self._temps}"

    # -- conditions -------------------------------------------------------------------------

    def expr(self, node: ast.Expr) -> str:
        if isinstance(node, ast.Combine):
            parts = [self.expr(item) for item in node.items]
            if node.op == "xor":
                return "(" + " ^ ".join(f"({p})" for p in parts) + ")"
            return "(" + f" {node.op} ".join(parts) + ")"
        if isinstance(node, ast.Not):
            return f"(not {self.expr(node.arg)})"
        if isinstance(node, ast.IsTrue):
            return f"({self.value(node.value)} is True)"
        if isinstance(node, ast.Compare):
            return self.compare(node, self.value(node.lhs))
        return self.in_set(node, self.value(node.lhs))

    def compare(self, node: ast.Compare, x: str) -> str:
        """A bool expression: does value expression ``x`` (None when missing) satisfy ``node``?"""
        op, rhs, kind = node.op, node.rhs, node.lhs.type.kind
        t = self.temp()
        if kind == "Bool":
            assert isinstance(rhs, ast.BoolLit)
            want = rhs.value if op == "eq" else not rhs.value
            return f"({x} is {want})"
        if op == "eq":
            return f"({x} == {self.const(_literal_value(rhs))})"
        if op in ("ne", "lt", "le", "gt", "ge"):
            k = self.const(_literal_value(rhs))
            sym = {"ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}[op]
            if kind == "IP" and op != "ne":
                assert isinstance(rhs, ast.IPLit)
                # Addresses of different families are unordered: only `ne` holds between them.
                v = self.const(rhs.value.version)
                return f"(({t} := {x}) is not None and {t}.version == {v} and {t} {sym} {k})"
            return f"(({t} := {x}) is not None and {t} {sym} {k})"
        if op == "contains":
            assert isinstance(rhs, ast.StringLit)
            return f"(({t} := {x}) is not None and {self.const(rhs.value)} in {t})"
        if op == "matches":
            assert isinstance(rhs, ast.RegexLit)
            program = rhs.program or compile_regex(
                rhs.pattern,
                max_bytes=self.settings.max_regex_bytes,
                max_states=self.settings.max_regex_states,
            )
            search = self.const(program.search)
            if program.literals is None:
                fast = program.fast_path
                if fast is None:
                    return f"(({t} := {x}) is not None and {search}({t}))"
                # Short inputs go straight to `re` (see certgate.rules.regex), as in search().
                pattern_search, max_len, dollar = fast
                short = f"len({t}) <= {self.const(max_len)}"
                if dollar:
                    short += f' and not {t}.endswith("\\n")'
                return (
                    f"(({t} := {x}) is not None and "
                    f"(({self.const(pattern_search)}({t}) is not None) if {short} else {search}({t})))"
                )
            # A fixed-string pattern inlines as substring tests (see certgate.rules.regex).
            if not program.ignore_case:
                found = " or ".join(f"{self.const(lit)} in {t}" for lit in program.literals)
                return f"(({t} := {x}) is not None and ({found}))"
            u = self.temp()
            found = " or ".join(f"{self.const(lit)} in {u}" for lit in program.literals)
            return (
                f"(({t} := {x}) is not None and "
                f"((({u} := {t}.lower()) is not None and ({found})) if {t}.isascii() else {search}({t})))"
            )
        if op in ("wildcard", "strict_wildcard"):
            assert isinstance(rhs, ast.WildcardLit)
            return self.wildcard(rhs.pattern, op == "strict_wildcard", x, t)
        raise AssertionError(f"unknown operator {op}")  # pragma: no cover

    def wildcard(self, pattern: str, case_sensitive: bool, x: str, t: str) -> str:
        segments = parse_wildcard(pattern, self.settings.max_wildcard_stars)
        if len(segments) > 2:
            matcher = Wildcard(
                pattern, case_sensitive=case_sensitive, max_stars=self.settings.max_wildcard_stars
            )
            return f"(({t} := {x}) is not None and {self.const(matcher.match)}({t}))"
        subject = t if case_sensitive else self.folded(t, "lower")
        if not case_sensitive:
            segments = [ascii_lower(seg) for seg in segments]
        # The common shapes inline: `exact`, `prefix*`, `*suffix`, `prefix*suffix`.
        if len(segments) == 1:
            return f"(({t} := {x}) is not None and {subject} == {self.const(segments[0])})"
        first, last = segments
        u = self.temp()
        checks = [f"len({u} := {subject}) >= {self.const(len(first) + len(last))}"]
        if first:
            checks.append(f"{u}.startswith({self.const(first)})")
        if last:
            checks.append(f"{u}.endswith({self.const(last)})")
        return f"(({t} := {x}) is not None and {' and '.join(checks)})"

    def in_set(self, node: ast.InSet, x: str) -> str:
        kind = node.lhs.type.kind
        items = node.items
        if kind == "Bytes" or all(isinstance(i, ast.IntLit | ast.IPLit) for i in items):
            # Plain values: one hash lookup (None is never a member).
            values = frozenset(_literal_value(i) for i in items)
            return f"({x} in {self.const(values)})"
        t = self.temp()
        if kind == "Int":
            intervals = [
                (i.low, i.high) if isinstance(i, ast.IntRangeLit) else (i.value, i.value)
                for i in items
                if isinstance(i, ast.IntRangeLit | ast.IntLit)
            ]
            merged = _merged(intervals)
            if len(merged) <= _INLINE_INTERVALS:
                return f"(({t} := {x}) is not None and {self.intervals(t, merged)})"
            matcher: object = IntervalSet(intervals)
        elif len(items) <= _INLINE_INTERVALS:
            # ipaddress objects keep their integer in `_ip` and their family in `_version`;
            # reading them directly avoids two Python-level calls per test.
            v4, v6 = _ip_intervals(items)
            i = self.temp()
            parts = []
            for version, ranges in ((4, v4), (6, v6)):
                if ranges:
                    first = f"({i} := {t}._ip)"
                    parts.append(
                        f"({t}._version == {self.const(version)} and {self.intervals(first, ranges, i)})"
                    )
            return f"(({t} := {x}) is not None and ({' or '.join(parts)}))"
        else:
            matcher = IPSet(
                addresses=[i.value for i in items if isinstance(i, ast.IPLit)],
                networks=[i.value for i in items if isinstance(i, ast.IPNetworkLit)],
                ranges=[(i.low, i.high) for i in items if isinstance(i, ast.IPRangeLit)],
            )
        return f"(({t} := {x}) is not None and {t} in {self.const(matcher)})"

    def intervals(self, first: str, ranges: list[tuple[int, int]], rest: str | None = None) -> str:
        """``first`` (evaluated once) lies in one of ``ranges``; later tests read ``rest`` (a temp
        that ``first`` assigned) or ``first`` again."""
        tests = []
        for n, (lo, hi) in enumerate(ranges):
            subject = first if n == 0 or rest is None else rest
            if lo == hi:
                tests.append(f"{subject} == {self.const(lo)}")
            else:
                tests.append(f"{self.const(lo)} <= {subject} <= {self.const(hi)}")
        return "(" + " or ".join(tests) + ")"

    # -- values -----------------------------------------------------------------------------

    def value(self, node: ast.Value) -> str:
        """A Python expression giving the value, or None when it is missing (never [*])."""
        assert not node.each
        if isinstance(node, ast.Field):
            return f"V[{self.const(node.name)}]"
        if isinstance(node, ast.Index):
            return self.index(node, self.value(node.base))
        return self.call(node)

    def index(self, node: ast.Index, base: str) -> str:
        t = self.temp()
        k = self.const(node.key)
        if isinstance(node.key, str):
            return f"(None if ({t} := {base}) is None else {t}.get({k}))"
        return f"(None if ({t} := {base}) is None or len({t}) <= {k} else {t}[{k}])"

    def call(self, node: ast.Call) -> str:
        name, args = node.name, node.args
        if name in ("any", "all"):
            return self.fold(name, args[0])
        if name == "concat":
            return self.concat(node)
        first = args[0]
        assert isinstance(first, ast.Field | ast.Index | ast.Call)
        return self.apply(node, self.value(first))

    def apply(self, node: ast.Call, x: str) -> str:
        """One-argument functions (plus the literal of starts/ends_with) over value ``x``."""
        t = self.temp()
        name = node.name
        if name in ("starts_with", "ends_with"):
            literal = node.args[1]
            assert isinstance(literal, ast.StringLit)
            method = "startswith" if name == "starts_with" else "endswith"
            return f"(None if ({t} := {x}) is None else {t}.{method}({self.const(literal.value)}))"
        if name == "len":
            argtype = node.args[0]
            assert isinstance(argtype, ast.Field | ast.Index | ast.Call)
            func = self.const(utf8_len) if argtype.type.kind == "Bytes" else "len"
            return f"(None if ({t} := {x}) is None else {func}({t}))"
        assert name in ("lower", "upper"), name
        return f"(None if ({t} := {x}) is None else {self.folded(t, name)})"

    def folded(self, t: str, method: str) -> str:
        """``t`` (a temp holding a string) with its ASCII letters lowered or uppered: the str
        method for ASCII text (one C call, no Python frame), the ASCII-only helper otherwise."""
        helper = self.const(ascii_lower if method == "lower" else ascii_upper)
        return f"({t}.{method}() if {t}.isascii() else {helper}({t}))"

    def concat(self, node: ast.Call) -> str:
        parts: list[str] = []
        checks: list[str] = []
        for arg in node.args:
            if isinstance(arg, ast.StringLit):
                parts.append(self.const(arg.value))
            else:
                assert isinstance(arg, ast.Field | ast.Index | ast.Call)
                t = self.temp()
                checks.append(f"({t} := {self.value(arg)}) is None")
                parts.append(t)
        joined = (
            " + ".join(parts) if node.type.kind == "Bytes" else "[" + ", ".join(f"*{p}" for p in parts) + "]"
        )
        if not checks:
            return f"({joined})"
        return f"(None if {' or '.join(checks)} else {joined})"

    def fold(self, name: str, arg: ast.Arg) -> str:
        s = self.temp("_s")
        if isinstance(arg, ast.Field | ast.Index | ast.Call) and not arg.each:
            # An Array<Bool> value.
            e = self.temp("_e")
            return f"(({s} := {self.value(arg)}) is not None and {name}([{e} is True for {e} in {s}]))"
        if isinstance(arg, ast.Field | ast.Index | ast.Call):
            seq, var, elem = self.each(arg)
            pred = f"({elem} is True)"
        elif isinstance(arg, ast.Compare):
            seq, var, elem = self.each(arg.lhs)
            pred = self.compare(arg, elem)
        else:
            assert isinstance(arg, ast.InSet)
            seq, var, elem = self.each(arg.lhs)
            pred = self.in_set(arg, elem)
        return f"(({s} := {seq}) is not None and {name}([{pred} for {var} in {s}]))"

    def each(self, node: ast.Value) -> tuple[str, str, str]:
        """For a ``[*]`` value: (iterable or None, loop variable, element expression)."""
        assert node.each
        if isinstance(node, ast.Index):
            if node.key is None:
                base = self.value(node.base)
                var = self.temp("_e")
                if node.base.type.kind == "Map":
                    t = self.temp()
                    return f"(None if ({t} := {base}) is None else {t}.values())", var, var
                return base, var, var
            seq, var, elem = self.each(node.base)
            return seq, var, self.index(node, elem)
        assert isinstance(node, ast.Call)
        first = node.args[0]
        assert isinstance(first, ast.Field | ast.Index | ast.Call)
        seq, var, elem = self.each(first)
        return seq, var, self.apply(node, elem)


_INLINE_INTERVALS = 8


def _merged(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


def _ip_intervals(items: tuple[ast.SetItem, ...]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    v4: list[tuple[int, int]] = []
    v6: list[tuple[int, int]] = []
    for item in items:
        if isinstance(item, ast.IPLit):
            lo = hi = item.value
        elif isinstance(item, ast.IPNetworkLit):
            lo, hi = item.value.network_address, item.value.broadcast_address
        elif isinstance(item, ast.IPRangeLit):
            lo, hi = item.low, item.high
        else:  # pragma: no cover - the parser builds only IP items for IP fields
            raise AssertionError(item)
        (v4 if lo.version == 4 else v6).append((int(lo), int(hi)))
    return _merged(v4), _merged(v6)


def _literal_value(node: ast.Literal | ast.SetItem) -> object:
    if isinstance(node, ast.StringLit | ast.IntLit | ast.BoolLit | ast.IPLit):
        return node.value
    raise AssertionError(f"{type(node).__name__} has no single value")  # pragma: no cover
