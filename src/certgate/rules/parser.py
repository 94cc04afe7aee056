"""Recursive-descent parser and type checker: text + scheme → ``FilterAST``.

Grammar (lowest precedence first; ``and`` binds tighter than ``xor``, ``xor`` than ``or``)::

    filter     := or_expr EOF
    or_expr    := xor_expr (("or" | "||") xor_expr)*
    xor_expr   := and_expr (("xor" | "^^") and_expr)*
    and_expr   := simple (("and" | "&&") simple)*
    simple     := "(" or_expr ")" | ("not" | "!") simple | comparison
    comparison := value [op literal | "in" "{" item+ "}"]        (bare only for Bool values)
    value      := (field | function "(" [arg ("," arg)*] ")") ("[" (string | int | "*") "]")*
    op         := eq ne lt le gt ge (== != < <= > >=) contains matches (~) wildcard
                  "strict wildcard"

The right-hand side is read according to the left-hand side's type (strings for Bytes,
integers and ranges for Int, addresses/CIDRs/ranges for IP, ``true``/``false`` for Bool), so
type errors surface here, with the position of the offending token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from certgate.rules import ast
from certgate.rules.errors import ErrorKind, RuleParseError
from certgate.rules.functions import ArgInfo, ArgumentError
from certgate.rules.lexer import Scanner, Token, TokenKind
from certgate.rules.matchers import WildcardError, parse_wildcard
from certgate.rules.regex import RegexError, compile_regex
from certgate.rules.scheme import KEYWORDS, Scheme
from certgate.rules.settings import ParserSettings
from certgate.rules.types import BOOL, BYTES, INT, IP, Type

_WORD_OPS = {
    "eq": "eq",
    "ne": "ne",
    "lt": "lt",
    "le": "le",
    "gt": "gt",
    "ge": "ge",
    "contains": "contains",
    "matches": "matches",
    "wildcard": "wildcard",
    "in": "in",
}
_SYMBOL_OPS = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge", "~": "matches"}
_LOGICAL = {"and": "and", "&&": "and", "or": "or", "||": "or", "xor": "xor", "^^": "xor"}
_LEVELS = ("or", "xor", "and")

_ORDERING = ("eq", "ne", "lt", "le", "gt", "ge")
_OPS_BY_KIND: dict[str, tuple[str, ...]] = {
    "Bytes": (*_ORDERING, "contains", "matches", "wildcard", "strict_wildcard", "in"),
    "Int": (*_ORDERING, "in"),
    "IP": (*_ORDERING, "in"),
    "Bool": ("eq", "ne"),
}
_OP_TEXT = {"strict_wildcard": "strict wildcard"}

_FOLD_HINT = "wrap it in any(...) or all(...)"
_BOOL_WORD_RE = re.compile(r"(?:true|false)(?![A-Za-z0-9_.])")


@dataclass(frozen=True, slots=True)
class _Span:
    start: int
    end: int


def parse(text: str, scheme: Scheme, settings: ParserSettings | None = None) -> ast.FilterAST:
    """Parse and type-check ``text`` against ``scheme``; raise ``RuleParseError``."""
    return _Parser(text, scheme, settings or ParserSettings()).parse()


class _Parser:
    def __init__(self, text: str, scheme: Scheme, settings: ParserSettings) -> None:
        self.text = text
        self.scheme = scheme
        self.settings = settings
        self.sc = Scanner(text)
        self.depth = 0
        self.last_end = 0

    # -- entry ------------------------------------------------------------------------------

    def parse(self) -> ast.FilterAST:
        self._check_input()
        if self.sc.at_end():
            raise self.sc.error(ErrorKind.UNEXPECTED_END, "the expression is empty", self.sc.pos)
        start = self.sc.peek().start
        try:
            expr = self.parse_level(0)
        except RecursionError:
            raise self.sc.error(
                ErrorKind.TOO_DEEP, "the expression is nested too deeply", self.sc.pos
            ) from None
        token = self.sc.peek()
        if token.kind is not TokenKind.EOF:
            if token.text == ")":
                raise self._at(token, ErrorKind.UNEXPECTED_TOKEN, "unmatched `)`")
            raise self._at(
                token,
                ErrorKind.UNEXPECTED_TOKEN,
                f"expected `and`, `or`, `xor` or the end of the expression, found {token.describe()}",
            )
        self._require_single(expr, _Span(start, self.last_end))
        return ast.FilterAST(expr, self.scheme)

    def _check_input(self) -> None:
        text = self.text
        for i, ch in enumerate(text):
            if "\ud800" <= ch <= "\udfff":
                raise self.sc.error(
                    ErrorKind.UNEXPECTED_CHARACTER, f"invalid character U+{ord(ch):04X} (lone surrogate)", i
                )
        limit = self.settings.max_expression_bytes
        size = len(text.encode("utf-8"))
        if size > limit:
            cut = len(text.encode("utf-8")[:limit].decode("utf-8", "ignore"))
            raise self.sc.error(
                ErrorKind.TOO_LONG, f"the expression is {size} bytes long; the limit is {limit}", cut
            )

    # -- helpers ----------------------------------------------------------------------------

    def _at(self, token: Token, kind: ErrorKind, message: str) -> RuleParseError:
        return self.sc.error(kind, message, token.start, token.end)

    def _span_error(self, span: _Span, kind: ErrorKind, message: str) -> RuleParseError:
        return self.sc.error(kind, message, span.start, span.end)

    def _take(self) -> Token:
        token = self.sc.next()
        self.last_end = token.end
        return token

    def _expect(self, text: str, context: str) -> Token:
        token = self.sc.peek()
        if token.text != text or token.kind not in (TokenKind.PUNCT, TokenKind.IDENT):
            if token.kind is TokenKind.EOF:
                raise self._at(token, ErrorKind.UNEXPECTED_END, f"expected `{text}` {context}")
            raise self._at(
                token, ErrorKind.UNEXPECTED_TOKEN, f"expected `{text}` {context}, found {token.describe()}"
            )
        return self._take()

    def _enter(self, token: Token) -> None:
        self.depth += 1
        if self.depth > self.settings.max_nesting_depth:
            raise self._at(
                token,
                ErrorKind.TOO_DEEP,
                f"nesting deeper than {self.settings.max_nesting_depth} levels "
                "(parentheses, `not` and function calls each add one)",
            )

    def _leave(self) -> None:
        self.depth -= 1

    def _logical_op(self) -> str | None:
        token = self.sc.peek()
        if token.kind in (TokenKind.IDENT, TokenKind.PUNCT):
            return _LOGICAL.get(token.text)
        return None

    def _require_single(self, expr: ast.Expr, span: _Span) -> None:
        """Conditions combined by and/or/xor/not (and the whole filter) must be one Bool."""
        if expr.each:
            raise self._span_error(
                span,
                ErrorKind.NOT_BOOLEAN,
                f"a condition over [*] gives one result per element: {_FOLD_HINT}",
            )

    # -- logical layer ----------------------------------------------------------------------

    def parse_level(self, level: int) -> ast.Expr:
        if level == len(_LEVELS):
            return self.parse_simple()
        op = _LEVELS[level]
        start = self.sc.peek().start
        first = self.parse_level(level + 1)
        if self._logical_op() != op:
            return first
        self._require_single(first, _Span(start, self.last_end))
        items = [first]
        while self._logical_op() == op:
            self._take()
            item_start = self.sc.peek().start
            item = self.parse_level(level + 1)
            self._require_single(item, _Span(item_start, self.last_end))
            items.append(item)
        return ast.Combine(op, tuple(items))

    def parse_simple(self) -> ast.Expr:
        token = self.sc.peek()
        if token.kind is TokenKind.PUNCT and token.text == "(":
            self._enter(token)
            self._take()
            expr = self.parse_level(0)
            self._expect(")", "to close the `(`")
            self._leave()
            return expr
        if (token.kind is TokenKind.IDENT and token.text == "not") or (
            token.kind is TokenKind.PUNCT and token.text == "!"
        ):
            self._enter(token)
            self._take()
            start = self.sc.peek().start
            arg = self.parse_simple()
            self._require_single(arg, _Span(start, self.last_end))
            self._leave()
            return ast.Not(arg)
        start = token.start
        value = self.parse_value()
        return self.parse_comparison(value, _Span(start, self.last_end))

    # -- comparisons ------------------------------------------------------------------------

    def _comparison_op(self) -> tuple[str, Token] | None:
        token = self.sc.peek()
        if token.kind is TokenKind.PUNCT and token.text in _SYMBOL_OPS:
            return _SYMBOL_OPS[token.text], token
        if token.kind is TokenKind.IDENT:
            if token.text == "strict":
                return "strict_wildcard", token
            if token.text in _WORD_OPS:
                return _WORD_OPS[token.text], token
        return None

    def parse_comparison(self, value: ast.Value, span: _Span) -> ast.Expr:
        found = self._comparison_op()
        vtype = value.type
        if found is None:
            if vtype == BOOL:
                return ast.IsTrue(value)
            if vtype.is_container:
                raise self._span_error(
                    span,
                    ErrorKind.UNSUPPORTED_OPERATOR,
                    f'`{value.to_text()}` is {vtype}: index it (["key"], [0] or [*]) before comparing',
                )
            token = self.sc.peek()
            ops = ", ".join(_OP_TEXT.get(o, o) for o in _OPS_BY_KIND[vtype.kind])
            message = f"expected an operator after `{value.to_text()}` ({vtype}): {ops}"
            if token.kind is TokenKind.EOF:
                raise self._at(token, ErrorKind.UNEXPECTED_END, message)
            raise self._at(token, ErrorKind.UNEXPECTED_TOKEN, f"{message}; found {token.describe()}")
        op, op_token = found
        self._take()
        op_end = op_token.end
        if op == "strict_wildcard":
            follow = self.sc.peek()
            if not (follow.kind is TokenKind.IDENT and follow.text == "wildcard"):
                raise self._at(follow, ErrorKind.UNEXPECTED_TOKEN, "expected `wildcard` after `strict`")
            op_end = self._take().end
        if vtype.is_container:
            raise self._span_error(
                span,
                ErrorKind.UNSUPPORTED_OPERATOR,
                f'`{value.to_text()}` is {vtype}: index it (["key"], [0] or [*]) before comparing',
            )
        if op not in _OPS_BY_KIND[vtype.kind]:
            raise self.sc.error(
                ErrorKind.UNSUPPORTED_OPERATOR,
                f"`{_OP_TEXT.get(op, op)}` does not apply to {vtype} (`{value.to_text()}`)",
                op_token.start,
                op_end,
            )
        if op == "in":
            return ast.InSet(value, self.parse_set(value, op_token))
        return ast.Compare(value, op, self.parse_literal(value, op))

    def _string_token(self, expected: str, value: ast.Value) -> Token:
        token = self.sc.peek()
        if token.kind is TokenKind.STRING:
            return self._take()
        self._literal_error(token, expected, value)
        raise AssertionError("unreachable")

    def _literal_error(self, token: Token, expected: str, value: ast.Value) -> None:
        subject = f"`{value.to_text()}` ({value.type})"
        if token.kind is TokenKind.EOF:
            raise self._at(token, ErrorKind.UNEXPECTED_END, f"expected {expected} for {subject}")
        kind = (
            ErrorKind.TYPE_MISMATCH
            if token.kind in (TokenKind.STRING, TokenKind.NUMBER)
            or (token.kind is TokenKind.IDENT and token.text in ("true", "false"))
            else ErrorKind.UNEXPECTED_TOKEN
        )
        raise self._at(token, kind, f"expected {expected} for {subject}, found {token.describe()}")

    def _peek_is_string(self) -> Token | None:
        token = self.sc.peek()
        return token if token.kind is TokenKind.STRING else None

    def parse_literal(self, value: ast.Value, op: str) -> ast.Literal:
        vtype = value.type
        if vtype == BYTES:
            token = self._string_token("a string", value)
            if op == "matches":
                return self._regex(token)
            if op in ("wildcard", "strict_wildcard"):
                return self._wildcard(token)
            return ast.StringLit(token.value)
        if vtype == BOOL:
            token = self.sc.peek()
            if token.kind is TokenKind.IDENT and token.text in ("true", "false"):
                self._take()
                return ast.BoolLit(token.text == "true")
            self._literal_error(token, "`true` or `false`", value)
        if vtype == INT:
            self._reject_string(value, "an integer")
            literal, _, end = self.sc.read_int(allow_range=False)
            self.last_end = end
            return ast.IntLit(literal.low)
        if vtype == IP:
            self._reject_string(value, "an IP address")
            ip_literal, _, end = self.sc.read_ip(allow_set_forms=False)
            self.last_end = end
            assert ip_literal.address is not None
            return ast.IPLit(ip_literal.address)
        raise AssertionError(f"no literal for {vtype}")  # pragma: no cover - guarded by _OPS_BY_KIND

    def _reject_string(self, value: ast.Value, expected: str) -> None:
        """Report a string/Bool/missing literal where a number or address must come. Looks at the
        raw text: an IPv6 literal such as `::1` is not a structural token."""
        self.sc.skip_ws()
        text, pos = self.text, self.sc.pos
        rest = text[pos : pos + 6]
        if (
            pos >= len(text)
            or text[pos] == '"'
            or rest[:2] in ('r"', "r#")
            or _BOOL_WORD_RE.match(text, pos) is not None
        ):
            self._literal_error(self.sc.peek(), expected, value)

    def _content_offset(self, token: Token) -> int | None:
        """Where a string's content starts, if positions inside it map 1:1 to the pattern."""
        text = token.text
        if text.startswith("r"):
            hashes = len(text) - len(text[1:].lstrip("#")) - 1
            return token.start + hashes + 2
        if text[1:-1] == token.value:
            return token.start + 1
        return None

    def _regex(self, token: Token) -> ast.RegexLit:
        settings = self.settings
        try:
            program = compile_regex(
                token.value, max_bytes=settings.max_regex_bytes, max_states=settings.max_regex_states
            )
        except RegexError as exc:
            base = self._content_offset(token)
            if exc.offset is not None and base is not None:
                at = min(base + exc.offset, token.end - 1)
                raise self.sc.error(exc.kind, exc.message, at) from None
            raise self._at(token, exc.kind, exc.message) from None
        return ast.RegexLit(token.value, program)

    def _wildcard(self, token: Token) -> ast.WildcardLit:
        try:
            parse_wildcard(token.value, self.settings.max_wildcard_stars)
        except WildcardError as exc:
            base = self._content_offset(token)
            if base is not None:
                raise self.sc.error(ErrorKind.INVALID_WILDCARD, exc.message, base + exc.offset) from None
            raise self._at(token, ErrorKind.INVALID_WILDCARD, exc.message) from None
        return ast.WildcardLit(token.value)

    def parse_set(self, value: ast.Value, op_token: Token) -> tuple[ast.SetItem, ...]:
        vtype = value.type
        open_token = self.sc.peek()
        if not (open_token.kind is TokenKind.PUNCT and open_token.text == "{"):
            if open_token.kind is TokenKind.EOF:
                raise self._at(open_token, ErrorKind.UNEXPECTED_END, "expected `{` after `in`")
            raise self._at(
                open_token,
                ErrorKind.UNEXPECTED_TOKEN,
                f"expected `{{` after `in`, found {open_token.describe()}"
                + ("; named lists ($name) are not supported" if open_token.text.startswith("$") else ""),
            )
        self._take()
        items: list[ast.SetItem] = []
        limit = self.settings.max_set_size
        while True:
            # Raw look-ahead: items such as `::1` are not structural tokens.
            self.sc.skip_ws()
            pos = self.sc.pos
            if pos >= len(self.text):
                raise self.sc.error(ErrorKind.UNEXPECTED_END, "the set is missing its closing `}`", pos)
            if self.text[pos] == "}":
                break
            if self.text[pos] == ",":
                raise self.sc.error(
                    ErrorKind.UNEXPECTED_TOKEN, "values in a set are separated by spaces, not commas", pos
                )
            if len(items) >= limit:
                raise self.sc.error(ErrorKind.SET_TOO_LARGE, f"a set may hold at most {limit} values", pos)
            items.append(self._set_item(value, vtype))
        self._expect("}", "to close the set")
        if not items:
            raise self.sc.error(ErrorKind.EMPTY_SET, "the set is empty", open_token.start, self.last_end)
        return tuple(items)

    def _set_item(self, value: ast.Value, vtype: Type) -> ast.SetItem:
        if vtype == BYTES:
            return ast.StringLit(self._string_token("a string", value).value)
        if vtype == INT:
            self._reject_string(value, "an integer or a range a..b")
            literal, _, end = self.sc.read_int(allow_range=True)
            self.last_end = end
            return ast.IntRangeLit(literal.low, literal.high) if literal.is_range else ast.IntLit(literal.low)
        self._reject_string(value, "an IP address, a CIDR or a range a..b")
        ip_literal, _, end = self.sc.read_ip(allow_set_forms=True)
        self.last_end = end
        if ip_literal.network is not None:
            return ast.IPNetworkLit(ip_literal.network)
        if ip_literal.low is not None and ip_literal.high is not None:
            return ast.IPRangeLit(ip_literal.low, ip_literal.high)
        assert ip_literal.address is not None
        return ast.IPLit(ip_literal.address)

    # -- values -----------------------------------------------------------------------------

    def parse_value(self) -> ast.Value:
        token = self.sc.peek()
        if token.kind is not TokenKind.IDENT or token.text in KEYWORDS:
            expected = "expected a field, a function call, `(` or `not`"
            if token.kind is TokenKind.EOF:
                raise self._at(token, ErrorKind.UNEXPECTED_END, expected)
            if token.kind in (TokenKind.STRING, TokenKind.NUMBER):
                raise self._at(
                    token,
                    ErrorKind.UNEXPECTED_TOKEN,
                    f"{expected}, found the literal {token.describe()}: "
                    'a comparison starts with the field (`http.host eq "..."`)',
                )
            if token.text in ("true", "false"):
                raise self._at(
                    token,
                    ErrorKind.UNEXPECTED_TOKEN,
                    f"{expected}, found {token.describe()}: Bool fields are used bare (`ssl`, `not ssl`)",
                )
            raise self._at(token, ErrorKind.UNEXPECTED_TOKEN, f"{expected}, found {token.describe()}")
        self._take()
        name = token.text
        follow = self.sc.peek()
        is_call = follow.kind is TokenKind.PUNCT and follow.text == "("
        base: ast.Value
        if is_call and name in self.scheme.functions:
            base = self.parse_call(token)
        elif not is_call and (field := self.scheme.field(name)) is not None:
            base = ast.Field(field.name, field.type)
        elif is_call:
            raise self._at(token, ErrorKind.UNKNOWN_FUNCTION, f"unknown function `{name}`")
        else:
            hint = self.scheme.suggest(name)
            raise self._at(
                token,
                ErrorKind.UNKNOWN_FIELD,
                f"unknown field `{name}`" + (f": did you mean `{hint}`?" if hint else ""),
            )
        while True:
            follow = self.sc.peek()
            if not (follow.kind is TokenKind.PUNCT and follow.text == "["):
                return base
            base = self.parse_index(base, follow)

    def parse_index(self, base: ast.Value, open_token: Token) -> ast.Value:
        self._take()
        token = self.sc.peek()
        key: str | int | None
        if token.kind is TokenKind.PUNCT and token.text == "*":
            self._take()
            key = None
        elif token.kind is TokenKind.STRING:
            key = self._take().value
        elif token.kind is TokenKind.NUMBER:
            literal, start, end = self.sc.read_int(allow_range=False)
            self.last_end = end
            if literal.low < 0 or literal.low > 0xFFFFFFFF:
                raise self.sc.error(
                    ErrorKind.INVALID_INDEX, "an array index is an integer from 0 to 4294967295", start, end
                )
            key = literal.low
        else:
            message = "expected a string key, an array index or `*`"
            if token.kind is TokenKind.EOF:
                raise self._at(token, ErrorKind.UNEXPECTED_END, message)
            raise self._at(token, ErrorKind.UNEXPECTED_TOKEN, f"{message}, found {token.describe()}")
        self._expect("]", "to close the index")
        span = _Span(open_token.start, self.last_end)
        btype = base.type
        subject = f"`{base.to_text()}` is {btype}"
        if btype.element is None:
            raise self._span_error(span, ErrorKind.INVALID_INDEX, f"{subject} and cannot be indexed")
        if btype.kind == "Map" and isinstance(key, int):
            raise self._span_error(span, ErrorKind.INVALID_INDEX, f"{subject}: index it with a string key")
        if btype.kind == "Array" and isinstance(key, str):
            raise self._span_error(span, ErrorKind.INVALID_INDEX, f"{subject}: index it with an integer")
        if key is None and base.each:
            raise self._span_error(span, ErrorKind.INVALID_INDEX, "only one [*] is allowed per value")
        if isinstance(key, str) and isinstance(base, ast.Field):
            field = self.scheme.field(base.name)
            if field is not None and field.lowercase_keys and key != key.lower():
                raise self._span_error(
                    span,
                    ErrorKind.INVALID_INDEX,
                    f"the keys of `{base.name}` are lowercase: write {ast.quote_string(key.lower())}",
                )
        return ast.Index(base, key, btype.element, base.each or key is None)

    def parse_call(self, name_token: Token) -> ast.Call:
        self._enter(name_token)
        self._expect("(", "after the function name")
        args: list[ast.Arg] = []
        spans: list[_Span] = []
        if not (self.sc.peek().kind is TokenKind.PUNCT and self.sc.peek().text == ")"):
            while True:
                start = self.sc.peek().start
                args.append(self.parse_arg())
                spans.append(_Span(start, self.last_end))
                token = self.sc.peek()
                if token.kind is TokenKind.PUNCT and token.text == ",":
                    self._take()
                    continue
                if token.kind is TokenKind.PUNCT and token.text == ")":
                    break
                if token.kind is TokenKind.EOF:
                    raise self._at(token, ErrorKind.UNEXPECTED_END, "expected `,` or `)` in the call")
                raise self._at(
                    token,
                    ErrorKind.UNEXPECTED_TOKEN,
                    f"expected `,` or `)` in the call, found {token.describe()}",
                )
        self._take()
        function = self.scheme.functions[name_token.text]
        try:
            result, each = function.check([_arg_info(a) for a in args])
        except ArgumentError as exc:
            if exc.index is None:
                raise self.sc.error(exc.kind, exc.message, name_token.start, self.last_end) from None
            raise self._span_error(spans[exc.index], exc.kind, exc.message) from None
        self._leave()
        return ast.Call(name_token.text, tuple(args), result, each)

    def parse_arg(self) -> ast.Arg:
        token = self.sc.peek()
        if token.kind is TokenKind.STRING:
            return ast.StringLit(self._take().value)
        if token.kind is TokenKind.NUMBER:
            literal, _, end = self.sc.read_int(allow_range=False)
            self.last_end = end
            return ast.IntLit(literal.low)
        if (token.kind is TokenKind.PUNCT and token.text in ("(", "!")) or (
            token.kind is TokenKind.IDENT and token.text == "not"
        ):
            return self.parse_level(0)
        start = token.start
        value = self.parse_value()
        if self._comparison_op() is not None:
            return self.parse_comparison(value, _Span(start, self.last_end))
        return value


def _arg_info(arg: ast.Arg) -> ArgInfo:
    if isinstance(arg, ast.StringLit):
        return ArgInfo("string", BYTES, False)
    if isinstance(arg, ast.IntLit):
        return ArgInfo("int", INT, False)
    if isinstance(arg, ast.Field | ast.Index | ast.Call):
        return ArgInfo("value", arg.type, arg.each)
    return ArgInfo("expr", BOOL, arg.each)
