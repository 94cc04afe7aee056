"""certgate.cli.edge: flags → EdgeSettings, and where the token may come from. The process itself
runs in tests/e2e/test_edge_matrix.py (two workers) and tests/e2e/test_up.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from certgate.cli import main
from certgate.edge import server
from certgate.edge.settings import EdgeSettings


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[EdgeSettings]:
    runs: list[EdgeSettings] = []

    def fake_run_edge(settings: EdgeSettings) -> int:
        runs.append(settings)
        return 0

    monkeypatch.setattr(server, "run_edge", fake_run_edge)
    monkeypatch.delenv("CERTGATE_EDGE_TOKEN", raising=False)
    return runs


def test_flags_become_settings(captured: list[EdgeSettings], tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("secret-token\n")
    code = main(
        [
            "edge",
            "--control-plane",
            "http://cp:8080",
            "--token-file",
            str(token),
            "--listen",
            "127.0.0.1:9443",
            "--workers",
            "3",
            "--state-dir",
            str(tmp_path / "s"),
            "--metrics-listen",
            "127.0.0.1:9100",
            "--access-log",
            "off",
            "--origin-insecure",
        ]
    )
    assert code == 0
    (s,) = captured
    assert (s.control_plane, s.token, s.listen, s.workers) == (
        "http://cp:8080",
        "secret-token",
        "127.0.0.1:9443",
        3,
    )
    assert (s.state_dir, s.metrics_listen, s.access_log, s.verify_origin_tls) == (
        tmp_path / "s",
        "127.0.0.1:9100",
        None,
        False,
    )


def test_defaults(captured: list[EdgeSettings], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTGATE_EDGE_TOKEN", "from-env")
    assert main(["edge", "--control-plane", "http://cp:8080"]) == 0
    (s,) = captured
    assert (s.token, s.listen, s.workers, s.access_log, s.metrics_listen) == (
        "from-env",
        "0.0.0.0:8443",
        0,
        "-",
        None,
    )


def test_missing_token_is_a_clear_error(
    captured: list[EdgeSettings], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["edge", "--control-plane", "http://cp:8080"]) == 1
    assert "--token" in capsys.readouterr().err and not captured


def test_bad_listen_is_a_clear_error(
    captured: list[EdgeSettings], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["edge", "--control-plane", "http://cp:8080", "--token", "t", "--listen", "nope"]) == 1
    assert "--listen must be HOST:PORT" in capsys.readouterr().err and not captured


def test_unreadable_token_file(
    captured: list[EdgeSettings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["edge", "--control-plane", "http://cp", "--token-file", str(tmp_path / "missing")]) == 1
    assert "cannot read --token-file" in capsys.readouterr().err
