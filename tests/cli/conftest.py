"""Shared fixtures for the CLI tests: an isolated environment and a loopback capture server that
records raw requests (the same trick ESA-API.md §1 used to study the SDK)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


@dataclass
class Captured:
    method: str
    target: str  # path + raw query string, exactly as sent
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def raw_query(self) -> str:
        return self.target.partition("?")[2]


@dataclass
class CaptureServer:
    port: int
    requests: list[Captured] = field(default_factory=list)
    status: int = 200
    reply: dict[str, object] = field(default_factory=lambda: {"RequestId": "CAPTURE-0001"})
    raw_reply: bytes | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def last(self) -> Captured:
        assert self.requests, "no request reached the capture server"
        return self.requests[-1]


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    state = CaptureServer(port=0)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            state.requests.append(Captured(self.command, self.path, list(self.headers.items()), body))
            payload = state.raw_reply if state.raw_reply is not None else json.dumps(state.reply).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No CERTGATE_* variable and no real home directory leaks into a test; returns the profile path."""
    import os

    for name in list(os.environ):
        if name.startswith("CERTGATE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    profile = tmp_path / "profile.json"
    monkeypatch.setenv("CERTGATE_PROFILE", str(profile))
    return profile
