"""Tables, key/value blocks and the progress spinner."""

from __future__ import annotations

import io
import time

from certgate.cli.output import MAX_CELL_WIDTH, Column, Progress, dump_json, fields, format_value, table

COLUMNS = [Column("Id", "Id"), Column("Action", "Config.Action"), Column("Len", lambda r: len(r["Id"]))]


def test_table_aligns_columns_and_follows_dotted_paths() -> None:
    rows = [{"Id": "a", "Config": {"Action": "deny"}}, {"Id": "bbbbbb", "Config": {}}]
    assert table(rows, COLUMNS).splitlines() == [
        "Id      Action  Len",
        "a       deny    1",
        "bbbbbb  -       6",
    ]


def test_empty_table_says_so() -> None:
    assert table([], COLUMNS) == "(none)"


def test_long_cells_are_cut_but_fields_show_everything() -> None:
    long = "x" * (MAX_CELL_WIDTH + 10)
    row = {"Id": long, "Config": {"Action": "deny"}}
    cell = table([row], COLUMNS).splitlines()[1].split()[0]
    assert len(cell) == MAX_CELL_WIDTH and cell.endswith("…")
    assert long in fields(row, COLUMNS)


def test_control_characters_from_the_server_never_reach_the_terminal() -> None:
    row = {"Id": "evil\x1b[2J\nname\x07", "Config": {"Action": "deny\r"}}
    out = table([row], COLUMNS) + fields(row, COLUMNS)
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out
    assert len(table([row], COLUMNS).splitlines()) == 2


def test_format_value_shapes() -> None:
    assert format_value(None) == "-"
    assert format_value("") == "-"
    assert format_value(True) == "true"
    assert format_value(["a.example.com", "b.example.com"]) == "a.example.com, b.example.com"
    assert format_value([]) == "-"
    assert format_value({"Value": "1.2.3.4"}) == '{"Value":"1.2.3.4"}'
    assert format_value(7) == "7"


def test_fields_aligns_labels() -> None:
    text = fields({"Id": "x", "Config": {"Action": "deny"}}, COLUMNS)
    assert text.splitlines() == ["Id:     x", "Action: deny", "Len:    1"]


def test_dump_json_keeps_unicode() -> None:
    assert dump_json({"Name": "ü"}) == '{\n  "Name": "ü"\n}'


def test_progress_spins_on_a_terminal_and_erases_its_line() -> None:
    stream = io.StringIO()
    with Progress("Issuing RSA4096 certificate", stream, enabled=True, delay=0, interval=0.01) as progress:
        deadline = time.monotonic() + 5
        while progress.frames_shown < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    text = stream.getvalue()
    assert progress.frames_shown >= 3
    assert "| Issuing RSA4096 certificate…" in text
    assert text.endswith("\r" + " " * (len("Issuing RSA4096 certificate") + 3) + "\r")


def test_progress_is_silent_for_quick_calls_and_off_a_terminal() -> None:
    stream = io.StringIO()
    with Progress("quick", stream, enabled=True, delay=5):
        pass
    with Progress("not a tty", stream):  # StringIO.isatty() is False
        time.sleep(0.05)
    assert stream.getvalue() == ""
