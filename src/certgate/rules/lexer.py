"""Lexing primitives: a scanner over the expression text that hands out tokens with spans.

The dialect is context-sensitive (``fe80::1`` is an IP after ``ip.src eq`` and two tokens
anywhere else), so, as in wirefilter, the parser drives the scanner: ``peek``/``next`` give
structural tokens, and ``read_int``/``read_ip`` read a literal of the type the left-hand side
asks for. Every error is a ``RuleParseError`` with the exact line and column.
"""

from __future__ import annotations

import bisect
import enum
import ipaddress
import re
from dataclasses import dataclass

from certgate.rules.errors import ErrorKind, RuleParseError
from certgate.rules.types import IPAddress

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_RAW_HASHES = 255

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")
_WS_RE = re.compile(r"[ \t\r\n]*")
_NUMBER_WORD_RE = re.compile(r"-?[0-9][0-9A-Za-z_]*")
_INT_RE = re.compile(r"-?(?:0[xX][0-9A-Fa-f]+|[0-9]+)")
_WORD_TAIL_RE = re.compile(r"[0-9A-Za-z_]+")
_IP_RUN_RE = re.compile(r"[0-9A-Fa-f:./]+")
_IP_WORD_RE = re.compile(r"[0-9A-Za-z_:./%]+")
_OCTAL_RE = re.compile(r"[0-7]{3}")
_HEX2_RE = re.compile(r"[0-9A-Fa-f]{2}")

# Longest first, so that `==` wins over `=` and `!=` over `!`.
PUNCTUATION = (
    *("==", "!=", "<=", ">=", "&&", "||", "^^", ".."),
    *("(", ")", "{", "}", "[", "]", ",", "!", "<", ">", "~", "*"),
)

_HINTS = {
    "=": "use `eq` or `==` to compare",
    "&": "use `and` or `&&`",
    "|": "use `or` or `||`",
    "^": "use `xor` or `^^`",
    "'": "strings are written in double quotes",
    "$": "named lists (`in $name`) are not supported; write the values in `{...}`",
}


class TokenKind(enum.Enum):
    IDENT = "identifier"
    STRING = "string"
    NUMBER = "number"
    PUNCT = "punctuation"
    EOF = "end of expression"


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str  # the source text of the token
    start: int  # offset into the expression, in characters
    end: int
    value: str = ""  # decoded value of a STRING token

    def describe(self) -> str:
        if self.kind is TokenKind.EOF:
            return "the end of the expression"
        text = self.text if len(self.text) <= 40 else self.text[:37] + "..."
        return f"`{text}`"


@dataclass(frozen=True, slots=True)
class IntLiteral:
    low: int
    high: int  # == low unless a range `a..b`
    is_range: bool


@dataclass(frozen=True, slots=True)
class IPLiteral:
    """One of: an address, a CIDR network, or an inclusive range ``a..b``."""

    address: IPAddress | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    low: IPAddress | None = None
    high: IPAddress | None = None


class Scanner:
    """Position-tracking reader over one expression."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self._line_starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
        self._peeked: Token | None = None

    # -- positions and errors -------------------------------------------------------------------

    def location(self, offset: int) -> tuple[int, int, str]:
        """(line, column, source line) of a character offset; both numbers 1-based."""
        index = bisect.bisect_right(self._line_starts, offset) - 1
        start = self._line_starts[index]
        end = self.text.find("\n", start)
        line_text = self.text[start:] if end < 0 else self.text[start:end]
        return index + 1, offset - start + 1, line_text.rstrip("\r")

    def error(self, kind: ErrorKind, message: str, start: int, end: int | None = None) -> RuleParseError:
        line, column, source = self.location(start)
        length = 1 if end is None else max(1, end - start)
        # Underline no further than the end of the line the error starts on.
        length = min(length, max(1, len(source) - column + 1))
        return RuleParseError(message, line, column, kind, length=length, source_line=source)

    # -- structural tokens ----------------------------------------------------------------------

    def skip_ws(self) -> None:
        m = _WS_RE.match(self.text, self.pos)
        assert m is not None  # the pattern matches the empty string
        self.pos = m.end()

    def at_end(self) -> bool:
        self.skip_ws()
        return self.pos >= len(self.text)

    def peek(self) -> Token:
        if self._peeked is None or self._peeked.start != self._token_start():
            self._peeked = self._lex_token()
        return self._peeked

    def next(self) -> Token:
        token = self.peek()
        self.pos = token.end
        self._peeked = None
        return token

    def _token_start(self) -> int:
        self.skip_ws()
        return self.pos

    def _lex_token(self) -> Token:
        text, pos = self.text, self._token_start()
        if pos >= len(text):
            return Token(TokenKind.EOF, "", pos, pos)
        ch = text[pos]
        if ch == '"' or (ch == "r" and pos + 1 < len(text) and text[pos + 1] in '"#'):
            value, end = self._lex_string(pos)
            return Token(TokenKind.STRING, text[pos:end], pos, end, value)
        m = _IDENT_RE.match(text, pos)
        if m is not None:
            return Token(TokenKind.IDENT, m.group(), pos, m.end())
        m = _NUMBER_WORD_RE.match(text, pos)
        if m is not None:
            return Token(TokenKind.NUMBER, m.group(), pos, m.end())
        for punct in PUNCTUATION:
            if text.startswith(punct, pos):
                return Token(TokenKind.PUNCT, punct, pos, pos + len(punct))
        hint = _HINTS.get(ch)
        message = f"unexpected character {ch!r}" + (f": {hint}" if hint else "")
        raise self.error(ErrorKind.UNEXPECTED_CHARACTER, message, pos)

    # -- strings --------------------------------------------------------------------------------

    def _lex_string(self, start: int) -> tuple[str, int]:
        if self.text[start] == "r":
            return self._lex_raw_string(start)
        return self._lex_quoted_string(start)

    def _lex_quoted_string(self, start: int) -> tuple[str, int]:
        """``"..."`` with the escapes ``\\"``, ``\\\\``, ``\\xHH`` and ``\\ooo`` (wirefilter's set)."""
        text = self.text
        out = bytearray()
        i = start + 1
        while True:
            j = i
            # Copy the run of ordinary characters in one slice.
            while j < len(text) and text[j] not in '"\\':
                j += 1
            out += text[i:j].encode("utf-8", "surrogateescape")
            if j >= len(text):
                raise self.error(
                    ErrorKind.UNTERMINATED_STRING, 'string is missing its closing `"`', start, len(text)
                )
            if text[j] == '"':
                return out.decode("utf-8", "surrogateescape"), j + 1
            # A backslash escape.
            if j + 1 >= len(text):
                raise self.error(
                    ErrorKind.UNTERMINATED_STRING, 'string is missing its closing `"`', start, len(text)
                )
            esc = text[j + 1]
            if esc in '"\\':
                out.append(ord(esc))
                i = j + 2
            elif esc == "x" and _HEX2_RE.match(text, j + 2):
                out.append(int(text[j + 2 : j + 4], 16))
                i = j + 4
            elif esc in "01234567" and _OCTAL_RE.match(text, j + 1) and int(text[j + 1 : j + 4], 8) < 256:
                out.append(int(text[j + 1 : j + 4], 8))
                i = j + 4
            else:
                raise self.error(
                    ErrorKind.INVALID_ESCAPE,
                    f'invalid escape `\\{esc}`: use \\", \\\\, \\xHH or \\ooo, or a raw string r"..."',
                    j,
                    j + 2,
                )

    def _lex_raw_string(self, start: int) -> tuple[str, int]:
        """``r"..."``, ``r#"..."#``: no escapes; the hashes let the content hold ``"``."""
        text = self.text
        i = start + 1
        hashes = 0
        while i < len(text) and text[i] == "#":
            hashes += 1
            i += 1
        if hashes > MAX_RAW_HASHES:
            raise self.error(
                ErrorKind.UNEXPECTED_TOKEN, f"a raw string takes at most {MAX_RAW_HASHES} `#`", start, i
            )
        if i >= len(text) or text[i] != '"':
            raise self.error(ErrorKind.UNEXPECTED_TOKEN, 'expected `"` to open the raw string', i)
        closing = '"' + "#" * hashes
        end = text.find(closing, i + 1)
        if end < 0:
            raise self.error(
                ErrorKind.UNTERMINATED_STRING,
                f"raw string is missing its closing `{closing}`",
                start,
                len(text),
            )
        return text[i + 1 : end], end + len(closing)

    # -- typed literals (called by the parser when the left-hand side fixes the type) -----------

    def read_int(self, allow_range: bool) -> tuple[IntLiteral, int, int]:
        self.skip_ws()
        start = self.pos
        low, pos = self._int_at(start)
        high, is_range = low, False
        if allow_range and self.text.startswith("..", pos):
            high, pos = self._int_at(pos + 2)
            is_range = True
            if high < low:
                raise self.error(
                    ErrorKind.INVALID_RANGE, f"range {low}..{high} is empty (start > end)", start, pos
                )
        self.pos = pos
        self._peeked = None
        return IntLiteral(low, high, is_range), start, pos

    def _int_at(self, pos: int) -> tuple[int, int]:
        m = _INT_RE.match(self.text, pos)
        if m is None:
            found = self._describe_at(pos)
            raise self.error(ErrorKind.UNEXPECTED_TOKEN, f"expected an integer, found {found}", pos)
        end = m.end()
        tail = _WORD_TAIL_RE.match(self.text, end)
        if tail is not None:
            word = self.text[pos : tail.end()]
            raise self.error(ErrorKind.INVALID_NUMBER, f"invalid integer `{word}`", pos, tail.end())
        literal = m.group()
        digits = literal.lstrip("-")
        if len(digits) > 1 and digits[0] == "0" and digits[1] not in "xX":
            raise self.error(
                ErrorKind.INVALID_NUMBER,
                f"invalid integer `{literal}`: leading zeros are not allowed (use 0x for hex)",
                pos,
                end,
            )
        value = int(literal, 0) if digits[:2].lower() == "0x" else int(literal)
        if literal.startswith("-") and digits[:2].lower() == "0x":
            value = -int(digits, 16)
        if not INT64_MIN <= value <= INT64_MAX:
            raise self.error(
                ErrorKind.INVALID_NUMBER, f"integer `{literal}` does not fit in 64 bits", pos, end
            )
        return value, end

    def read_ip(self, allow_set_forms: bool) -> tuple[IPLiteral, int, int]:
        """An address; in a set also ``a.b.c.d/n`` and ``a..b``."""
        self.skip_ws()
        start = self.pos
        m = _IP_RUN_RE.match(self.text, start)
        word_m = _IP_WORD_RE.match(self.text, start)
        if m is None or word_m is None:
            found = self._describe_at(start)
            raise self.error(ErrorKind.UNEXPECTED_TOKEN, f"expected an IP address, found {found}", start)
        end = word_m.end()
        word = self.text[start:end]
        if m.end() != end:
            raise self.error(ErrorKind.INVALID_IP, f"invalid IP address `{word}`", start, end)
        literal = self._parse_ip_word(word, start, end, allow_set_forms)
        self.pos = end
        self._peeked = None
        return literal, start, end

    def _parse_ip_word(self, word: str, start: int, end: int, allow_set_forms: bool) -> IPLiteral:
        if ".." in word:
            if not allow_set_forms:
                raise self.error(
                    ErrorKind.INVALID_IP, "IP ranges are only allowed in a set: `in {a..b}`", start, end
                )
            first, _, second = word.partition("..")
            low = self._address(first, start, start + len(first))
            high_start = start + len(first) + 2
            high = self._address(second, high_start, end)
            if low.version != high.version:
                raise self.error(ErrorKind.INVALID_RANGE, f"range `{word}` mixes IPv4 and IPv6", start, end)
            if int(high) < int(low):
                raise self.error(
                    ErrorKind.INVALID_RANGE, f"range `{word}` is empty (start > end)", start, end
                )
            return IPLiteral(low=low, high=high)
        if "/" in word:
            if not allow_set_forms:
                raise self.error(
                    ErrorKind.INVALID_IP,
                    f"`{word}` is a network: write `in {{{word}}}` to test membership",
                    start,
                    end,
                )
            base, _, prefix = word.partition("/")
            address = self._address(base, start, start + len(base))
            try:
                if not prefix.isdigit():
                    raise ValueError(prefix)
                network = ipaddress.ip_network(word, strict=False)
            except ValueError:
                raise self.error(ErrorKind.INVALID_IP, f"invalid CIDR `{word}`", start, end) from None
            if address != network.network_address:
                raise self.error(
                    ErrorKind.INVALID_IP,
                    f"`{word}` has host bits set: did you mean `{network}`?",
                    start,
                    end,
                )
            return IPLiteral(network=network)
        return IPLiteral(address=self._address(word, start, end))

    def _address(self, word: str, start: int, end: int) -> IPAddress:
        try:
            return ipaddress.ip_address(word)
        except ValueError:
            raise self.error(ErrorKind.INVALID_IP, f"invalid IP address `{word}`", start, end) from None

    def _describe_at(self, pos: int) -> str:
        if pos >= len(self.text):
            return "the end of the expression"
        try:
            saved, self.pos = self.pos, pos
            token = self.peek()
        except RuleParseError:
            return f"{self.text[pos]!r}"
        finally:
            self.pos = saved
        return token.describe()
