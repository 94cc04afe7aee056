"""What a closed client connection leaves to the cyclic garbage collector, and what that costs.

Runs the bench configuration (``configure.py``: control plane, origin nginx) with the edge as an
`EdgeThread` in this process, so the collector can be inspected, then:

1. with the collector enabled, runs ``--runs`` runs of ``--seconds`` of full mTLS handshakes
   (wrk, one request per connection) and reports RSS after each;
2. with the collector disabled, runs one more and counts what refcounting alone could not free:
   the objects of each type found by ``gc.collect()`` (``DEBUG_SAVEALL``). Every ``SSLObject``
   there is an OpenSSL ``SSL`` (with its buffers) held until a collection runs.

``--break-watchdog-cycle`` first applies, by monkeypatching and only in this process, the one-line
change suggested in bench/EDGE.md (drop the `Watchdog`'s callback when the client connection is
lost), to show its effect; without the flag the edge runs exactly as committed. Usage::

    PYTHONPATH=src .venv/bin/python bench/edge/gc_cycles.py [--break-watchdog-cycle]
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from configure import HOST, configure
from load import GENERATOR_CORE, build_shim, write_scripts, wrk_binary
from servers import SERVER_CORE, free_port, origin_conf, rss_kib, start_nginx

from certgate.api.app import create_app
from certgate.api.server import BackgroundServer
from certgate.bootstrap import ensure_edge_token
from certgate.edge import proxy
from certgate.edge.server import EdgeThread
from certgate.edge.settings import EdgeSettings

WATCHED = ("SSLObject", "ProxyProtocol", "ConnectionInfo", "RequestReader", "OriginConnection")


def break_watchdog_cycle() -> None:
    """ProxyProtocol → Watchdog → bound method ProxyProtocol._on_timer → ProxyProtocol: drop the
    last link once the connection is gone, so refcounting frees the connection (and its SSL)."""
    lost = proxy.ProxyProtocol.connection_lost

    def connection_lost(self: proxy.ProxyProtocol, exc: Exception | None) -> None:
        lost(self, exc)
        self._watchdog._callback = None  # type: ignore[assignment]

    proxy.ProxyProtocol.connection_lost = connection_lost  # type: ignore[method-assign]


def handshakes(env: dict[str, str], script: Path, port: int, seconds: int) -> int:
    """Requests for ``seconds``, each on its own connection (a full handshake), 10 at a time;
    returns how many completed."""
    out = subprocess.run(
        ["taskset", "-c", str(GENERATOR_CORE), wrk_binary(), "-t1", "-c10", f"-d{seconds}s",
         "-s", str(script), f"https://127.0.0.1:{port}/"],
        env=env, capture_output=True, text=True, timeout=seconds + 60,
    )  # fmt: skip
    for line in out.stdout.splitlines():
        if "requests in" in line:
            return int(line.split()[0])
    raise RuntimeError(out.stdout + out.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=4, help="length of each handshake run (wrk -d)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--break-watchdog-cycle", action="store_true")
    args = ap.parse_args()
    if args.break_watchdog_cycle:
        break_watchdog_cycle()
    os.sched_setaffinity(0, {SERVER_CORE})  # the edge thread lives in this process
    out = Path(tempfile.mkdtemp(prefix="certgate-gc-cycles-"))
    shim = build_shim(out)
    scripts = write_scripts(out)
    origin_port = free_port()
    ctx, settings, files = configure(out, origin_port=origin_port)
    origin = start_nginx("origin", out, origin_conf(out, origin_port), origin_port)
    api = BackgroundServer(create_app(ctx, settings, edge_token=ensure_edge_token(settings)))
    api.start()
    edge = EdgeThread(
        EdgeSettings(
            control_plane=api.url,
            token=ensure_edge_token(settings),
            listen="127.0.0.1:0",
            workers=1,
            access_log=None,
            state_dir=out / "edge-state",
            log_level="warning",
        )
    ).start()
    env = {
        **os.environ, "LD_PRELOAD": str(shim), "SHIM_CERT": str(files.client_cert),
        "SHIM_KEY": str(files.client_key), "SHIM_TLS": "1.3", "SHIM_SNI": HOST,
    }  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while edge.worker.state is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the edge got no snapshot")
            time.sleep(0.1)
        label = "with the watchdog cycle broken" if args.break_watchdog_cycle else "as committed"
        print(f"edge {label}; RSS at start {rss_kib(os.getpid()) / 1024:.0f} MiB")
        for i in range(args.runs):
            done = handshakes(env, scripts["hs"], edge.port, args.seconds)
            time.sleep(0.5)
            print(f"run {i + 1}: {done} connections, RSS {rss_kib(os.getpid()) / 1024:.0f} MiB")
        gc.collect()
        gc.disable()
        done = handshakes(env, scripts["hs"], edge.port, args.seconds)
        time.sleep(1.0)
        gc.set_debug(gc.DEBUG_SAVEALL)
        found = gc.collect()
        kinds = Counter(type(o).__name__ for o in gc.garbage)
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        print(
            f"then {done} connections with the collector off: {found} objects left to it; "
            + ", ".join(f"{k} {kinds[k]}" for k in WATCHED)
        )
    finally:
        edge.stop()
        logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)  # the cut long-poll
        api.stop()
        origin.stop()
        ctx.store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
