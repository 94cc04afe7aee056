"""certgate.edge.settings: parsing, validation and derived values."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from certgate.edge.settings import EdgeSettings, parse_host_port
from certgate.errors import InvalidArgument


def settings(**overrides: object) -> EdgeSettings:
    values: dict[str, object] = {"control_plane": "http://127.0.0.1:8080", "token": "t"}
    values.update(overrides)
    return EdgeSettings(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8443", ("127.0.0.1", 8443)),
        (":443", ("0.0.0.0", 443)),
        ("[::1]:9000", ("::1", 9000)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_parse_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


@pytest.mark.parametrize("text", ["8443", "host:", "host:port", "host:70000", ""])
def test_parse_host_port_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_host_port(text)


def test_defaults() -> None:
    s = settings()
    assert s.listen_address == ("0.0.0.0", 8443)
    assert s.worker_count == (os.cpu_count() or 1)
    assert s.snapshot_path == Path("certgate-edge") / "snapshot.json"
    assert s.metrics_address(0) is None
    assert s.access_log == "-" and s.fail_closed_on_rule_errors and s.verify_origin_tls
    assert "token=" not in repr(s)  # the secret never lands in a log line


def test_metrics_port_per_worker() -> None:
    s = settings(metrics_listen="127.0.0.1:9100", workers=3)
    assert [s.metrics_address(i) for i in range(3)] == [("127.0.0.1", 9100 + i) for i in range(3)]
    assert settings(metrics_listen="127.0.0.1:0").metrics_address(2) == ("127.0.0.1", 0)
    assert settings(workers=2).worker_count == 2


@pytest.mark.parametrize(
    "overrides",
    [
        {"control_plane": "ftp://cp"},
        {"token": ""},
        {"listen": "nope"},
        {"metrics_listen": "nope"},
        {"workers": -1},
        {"poll_wait_seconds": 0},
        {"origin_read_timeout": -1},
        {"ssl_shutdown_timeout": 0},
        {"client_auth_cache_size": 0},
        {"shutdown_grace_seconds": -1},
    ],
)
def test_invalid_settings_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        settings(**overrides)
