"""How the resource commands show results: aligned tables or ``key: value`` blocks for people,
the API's JSON for scripts (``--json``), and a spinner on stderr for slow calls.

Every value shown comes from the server, so text cells are stripped of control characters
before they reach a terminal (an escape sequence in a site name must not repaint the screen).
"""

from __future__ import annotations

import json
import threading
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, TextIO

MAX_CELL_WIDTH: Final = 64
"""Wider table cells are cut with an ellipsis; ``get`` views and ``--json`` show everything."""

SPINNER_FRAMES: Final = "|/-\\"


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    key: str | Callable[[Mapping[str, Any]], object]
    """A dotted path into the object (``"Config.Action"``) or a function of it."""

    def value(self, row: Mapping[str, Any]) -> object:
        if callable(self.key):
            return self.key(row)
        current: object = row
        for part in self.key.split("."):
            if not isinstance(current, Mapping):
                return None
            current = current.get(part)
        return current


def _printable(text: str) -> str:
    return "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)


def format_value(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v) for v in value) if value else "-"
    if isinstance(value, dict):
        return _printable(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    return _printable(str(value))


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """An aligned, header-first table (no trailing spaces). An empty list says so."""
    if not rows:
        return "(none)"
    cells = [[_cut(format_value(c.value(row)), MAX_CELL_WIDTH) for c in columns] for row in rows]
    headers = [c.header for c in columns]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def fields(obj: Mapping[str, Any], columns: Sequence[Column]) -> str:
    """One object as ``Label: value`` lines, labels aligned."""
    width = max(len(c.header) for c in columns)
    return "\n".join(f"{(c.header + ':').ljust(width + 1)} {format_value(c.value(obj))}" for c in columns)


def dump_json(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


class Progress:
    """``with Progress("Issuing certificate", stream):`` shows a spinner while the body runs.

    Only on a terminal, and only after ``delay`` seconds so that quick calls print nothing;
    the line is erased when the body ends so the result starts on a clean line.
    """

    def __init__(
        self,
        message: str,
        stream: TextIO,
        *,
        enabled: bool | None = None,
        delay: float = 0.3,
        interval: float = 0.1,
    ) -> None:
        self._message = _printable(message)
        self._stream = stream
        self._enabled = stream.isatty() if enabled is None else enabled
        self._delay = delay
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames_shown = 0

    def _run(self) -> None:
        if self._stop.wait(self._delay):
            return
        frame = 0
        while not self._stop.is_set():
            self._stream.write(f"\r{SPINNER_FRAMES[frame % len(SPINNER_FRAMES)]} {self._message}…")
            self._stream.flush()
            frame += 1
            self.frames_shown = frame
            self._stop.wait(self._interval)
        self._stream.write("\r" + " " * (len(self._message) + 3) + "\r")
        self._stream.flush()

    def __enter__(self) -> Progress:
        if self._enabled:
            self._thread = threading.Thread(target=self._run, name="certgate-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
