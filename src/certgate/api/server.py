"""Running the control plane's HTTP API with uvicorn: ``run_api`` for ``certgate api`` and
``BackgroundServer`` for tests, benchmarks and the all-in-one ``certgate up`` (a server on its own
thread and event loop, on a socket bound before it starts, so the port is known at once)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Final

import uvicorn
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp

from certgate.api.app import create_app
from certgate.bootstrap import ensure_edge_token, initialize
from certgate.clock import Clock
from certgate.errors import InvalidArgument
from certgate.services.context import ServiceContext
from certgate.settings import ControlPlaneSettings

GRACEFUL_SHUTDOWN_SECONDS: Final = 5
"""How long in-flight requests (edge long-polls included) may finish after a stop signal; edges
reconnect to another replica or after the restart."""


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``:PORT`` (all interfaces) → (host, port)."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise InvalidArgument(f"--listen must be HOST:PORT, not {listen!r}", reason="api.listen")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", int(port_text)


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def uvicorn_config(app: ASGIApp, *, access_log: bool, log_level: str, graceful: float) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=access_log,
        log_level=log_level,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=int(graceful) if graceful >= 1 else None,
        timeout_keep_alive=30,
    )


def console_routes(ctx: ServiceContext, settings: ControlPlaneSettings) -> list[BaseRoute]:
    """The web console at ``/console``, signing sessions with the installation's console secret."""
    # Imported here: the API does not depend on the console; this runner composes the two.
    from certgate.console import create_console, load_or_create_secret
    from certgate.console.secret import SECRET_FILE_NAME

    secret = load_or_create_secret(settings.data_dir / SECRET_FILE_NAME)
    return [Mount("/console", app=create_console(ctx, secret_key=secret, secure_cookies=False))]


def run_api(
    settings: ControlPlaneSettings,
    listen: str,
    *,
    log_level: str = "info",
    clock: Clock | None = None,
    console: bool = True,
) -> None:
    """``certgate api --data-dir DIR --listen HOST:PORT``: initialise the data directory if needed
    (database, master key, edge CA, edge token) and serve the control plane (ESA API, snapshot
    endpoint and, unless ``console=False``, the web console at ``/console``) until SIGINT/SIGTERM."""
    host, port = parse_listen(listen)
    ctx = initialize(settings, clock=clock)
    try:
        extra = console_routes(ctx, settings) if console else []
        app = create_app(ctx, settings, edge_token=ensure_edge_token(settings), extra_routes=extra)
        sock = bind_socket(host, port)
        try:
            config = uvicorn_config(
                app, access_log=True, log_level=log_level, graceful=GRACEFUL_SHUTDOWN_SECONDS
            )
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            sock.close()
    finally:
        ctx.store.close()


class BackgroundServer:
    """An ASGI app served by uvicorn on its own thread, e.g. for tests::

    with BackgroundServer(app) as server:
        client = Client(Config(endpoint=server.endpoint, protocol="http", ...))
    """

    def __init__(
        self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, access_log: bool = False
    ) -> None:
        self._sock = bind_socket(host, port)
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn_config(app, access_log=access_log, log_level="warning", graceful=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"certgate-api-{self.port}", daemon=True)
        self._error: BaseException | None = None

    @property
    def endpoint(self) -> str:
        """``host:port`` as the ESA SDK's ``Config.endpoint`` wants it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # reported by start()/stop() in the owning thread
            self._error = exc

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"the API server did not start: {self._error!r}")
            if time.monotonic() > deadline:
                raise TimeoutError("the API server did not start in time")
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._sock.close()
        if self._thread.is_alive():
            raise TimeoutError("the API server did not stop in time")

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
