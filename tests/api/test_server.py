"""Running the API: ``--listen`` parsing, the background server, and ``run_api`` as its own process
(the way ``certgate api`` runs it), stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from alibabacloud_esa20240910 import models as esa
from alibabacloud_esa20240910.client import Client
from alibabacloud_tea_openapi.models import Config
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from certgate.api.server import BackgroundServer, parse_listen
from certgate.bootstrap import initialize
from certgate.errors import InvalidArgument
from certgate.services import accounts
from certgate.settings import ControlPlaneSettings

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.parametrize(
    "listen, expected",
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        (":9000", ("0.0.0.0", 9000)),
        ("[::1]:443", ("::1", 443)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["8080", "host:", "host:port", "h:70000", ""])
def test_parse_listen_refuses(listen: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_listen(listen)


def test_background_server_serves_and_stops() -> None:
    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("hi"))])
    with BackgroundServer(app) as server:
        assert server.port > 0 and server.endpoint == f"127.0.0.1:{server.port}"
        assert httpx.get(server.url + "/").text == "hi"
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/", timeout=1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.filterwarnings("ignore:datetime.datetime.utcnow:DeprecationWarning")
def test_run_api_process(tmp_path: Path) -> None:
    settings = ControlPlaneSettings(data_dir=tmp_path / "data")
    ctx = initialize(settings)
    try:
        new = accounts.create_account(ctx, "runner")
    finally:
        ctx.store.close()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    code = (
        "from pathlib import Path; from certgate.api.server import run_api; "
        "from certgate.settings import ControlPlaneSettings; "
        f"run_api(ControlPlaneSettings(data_dir=Path({str(settings.data_dir)!r})), '127.0.0.1:{port}', "
        "log_level='warning')"
    )
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
                assert time.monotonic() < deadline, "the API process did not start listening"
                time.sleep(0.1)
        client = Client(
            Config(access_key_id=new.access_key_id, access_key_secret=new.access_key_secret,
                   endpoint=f"127.0.0.1:{port}", protocol="http")
        )  # fmt: skip
        site = client.create_site(
            esa.CreateSiteRequest(site_name="runner.example", access_type="NS", coverage="global",
                                  instance_id=new.account.instance_id)
        ).body  # fmt: skip
        assert isinstance(site.site_id, int)
        token = settings.edge_token_path.read_text().strip()
        snapshot = httpx.get(
            f"http://127.0.0.1:{port}/edge/v1/snapshot", headers={"Authorization": f"Bearer {token}"}
        )
        assert snapshot.status_code == 200
        console = httpx.get(f"http://127.0.0.1:{port}/console/login")
        assert console.status_code == 200 and "text/html" in console.headers["content-type"]
    finally:
        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            # uvicorn re-raises the signal after its graceful shutdown (so the exit says why).
            assert process.wait(timeout=15) in (0, -signal.SIGTERM)
            assert time.monotonic() - stopping < 10
        finally:
            if process.poll() is None:
                process.kill()
            if process.stderr:
                process.stderr.close()
