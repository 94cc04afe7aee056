"""The edge benchmark: ``certgate edge`` against nginx doing the same job, same machine, same run.

One command does everything and prints the markdown tables recorded in ``bench/EDGE.md``::

    PYTHONPATH=src .venv/bin/python bench/edge/run.py [--rounds 5] [--duration 4] [--idle 1000]

What it sets up (in ``--out``, a fresh temporary directory by default):

1. a control plane built through certgate's own services (``configure.py``): account, site
   ``example.com``, proxied record ``api.example.com`` (edge certificate issued by the edge CA,
   ECDSA P-256), one active and one revoked managed client certificate (ECDSA), the hostname
   bound to the managed CA, the seed WAF rule (deny unless the certificate verified) and an
   origin rule pointing at the origin's port; its API serves snapshots from this process;
2. the origin: nginx, 1 worker on core 0, ``return 200 "ok"``, shared by both proxies;
3. ``certgate edge --workers 1 --access-log FILE`` pinned to core 0 (rules, JSON access log and
   RFC 9440 headers on: the defaults);
4. nginx, 1 worker on core 0, configured to do the same job (``servers.proxy_conf``): same edge
   certificate and key, managed CA + CRL, ``optional_no_ca``, 421 on SNI≠Host, 403 unless
   verified, keep-alive upstream, certificate and status forwarded, JSON access log;
5. wrk on core 1 with ``clientcert_shim.so`` (built here from ``shim/clientcert_shim.c``)
   presenting the managed client certificate, SNI and Host ``api.example.com``, TLS 1.3.

Then: a functional check that both answer alike (200 / 403 / 403 / 421, the origin sees the
certificate), idle memory on the fresh processes, ``--rounds`` rounds in which each mode runs on
each target in turn (order alternating between rounds, so drift and order hit both alike), idle
memory again (warm), and the tables. The figure to trust is the **median of per-round ratios**
vs nginx: this 2-core machine is shared and its speed drifts between rounds.

``--profile`` also samples the edge with py-spy (must be installed separately; it is not a
project dependency) during one extra run per mode and prints where the time goes.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import platform
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cryptography
from configure import HOST, BenchFiles, configure
from cryptography.hazmat.backends.openssl.backend import backend as crypto_backend
from load import GENERATOR_CORE, MODES, RunResult, build_shim, run_wrk, write_scripts
from servers import (
    SERVER_CORE,
    Server,
    cap_cpu,
    free_port,
    nginx_version,
    origin_conf,
    probe,
    proxy_conf,
    start_edge,
    start_floor,
    start_nginx,
    uncap,
)

from certgate.api.app import create_app
from certgate.api.server import BackgroundServer
from certgate.bootstrap import ensure_edge_token
from certgate.edge.tls import TLSSettings, describe_engine

HERE = Path(__file__).resolve().parent
X = "\u00d7"  # the multiplication sign of the tables
GOALS = {"ka": 1.0, "hs": 1.1}


# ------------------------------------------------------------------------------------------------
# environment


def _tree_state() -> str:
    """The commit the edge ran from, and whether its sources differed from it (numbers of a
    dirty tree are not reproducible from the commit)."""
    src = Path(__file__).resolve().parents[2]
    head = subprocess.run(
        ["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    if head.returncode != 0:
        return f"{src} (not a git checkout)"
    dirty = subprocess.run(
        ["git", "-C", str(src), "status", "--porcelain", "--", "src/certgate"], capture_output=True, text=True
    ).stdout.strip()
    return f"commit {head.stdout.strip()}" + (
        " + uncommitted changes in src/certgate" if dirty else " (clean)"
    )


def _edge_build(src: Path) -> str:
    """What ``certgate edge`` logs about its build (compiled with mypyc or not) when run from ``src``."""
    path = os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    code = "from certgate.edge.compiled import describe; print(describe())"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return done.stdout.strip() or f"unknown ({done.stderr.strip().splitlines()[-1:]})"


def _environment() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    wrk_ssl = subprocess.run(["ldd", shutil.which("wrk") or "wrk"], capture_output=True, text=True).stdout
    wrk_lib = next(
        (ln.split("=>")[1].split("(")[0].strip() for ln in wrk_ssl.splitlines() if "libssl" in ln), "?"
    )
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "certgate tree": _tree_state(),
        "cpu": f"{cpu}, {os.cpu_count()} vCPU",
        "kernel": platform.release(),
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "certgate_tls": f"default engine: {describe_engine(TLSSettings())}; "
        f"--tls-engine stdlib: {ssl.OPENSSL_VERSION}; uvloop {importlib.metadata.version('uvloop')}",
        "certgate_x509": (
            f"cryptography {cryptography.__version__} chain verification "
            f"(bundled {crypto_backend.openssl_version_text()})"
        ),
        "nginx": nginx_version(),
        "wrk": f"{subprocess.run(['wrk', '-v'], capture_output=True, text=True).stdout.splitlines()[0]} "
        f"with {wrk_lib}",
    }


# ------------------------------------------------------------------------------------------------
# steps


def functional_check(targets: list[Server], files: BenchFiles) -> list[list[str]]:
    """The same requests on both: the configurations must do the same job before we time them."""
    cases: list[tuple[str, dict[str, Any], int]] = [
        ("managed cert, TLS 1.3", {}, 200),
        ("managed cert, TLS 1.2", {"tls13": False}, 200),
        ("no cert", {"cert": None}, 403),
        ("revoked cert", {"cert": (files.revoked_cert, files.revoked_key)}, 403),
        ("Host ≠ SNI", {"host": "www.example.com"}, 421),
    ]
    rows = []
    for label, kwargs, expected in cases:
        got = [probe(t.port, files, **kwargs)[0] for t in targets]
        if any(g != expected for g in got):
            raise SystemExit(f"functional check failed: {label}: expected {expected}, got {got}")
        rows.append([label, *[str(g) for g in got]])
    seen = []
    for t in targets:
        status, body = probe(t.port, files, path="/__headers")
        fields = dict(line.split("=", 1) for line in body.splitlines() if "=" in line)
        if status != 200 or not fields.get("client-cert") or not fields.get("client-cert-status"):
            raise SystemExit(f"functional check failed: {t.name} did not forward the certificate: {body!r}")
        seen.append(f"Client-Cert ({len(fields['client-cert'])} B), status {fields['client-cert-status']}")
    rows.append(["origin receives", *seen])
    return rows


def idle_memory(target: Server, files: BenchFiles, n: int) -> dict[str, Any]:
    out = subprocess.run(
        ["taskset", "-c", str(GENERATOR_CORE), sys.executable, str(HERE / "idle.py"), str(target.port),
         str(target.measured_pid), str(n), str(files.client_cert), str(files.client_key), HOST],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout)
    if result["ok"] != n:
        raise SystemExit(f"idle test on {target.name}: only {result['ok']} of {n} connections got 200")
    return result


def bench_rounds(
    targets: list[Server],
    origin: Server,
    files: BenchFiles,
    shim: Path,
    scripts: dict[str, Path],
    *,
    rounds: int,
    duration: int,
    connections: int,
    modes: list[str],
    log: Path,
) -> dict[tuple[str, str], list[RunResult]]:
    results: dict[tuple[str, str], list[RunResult]] = {}
    for r in range(rounds):
        order = targets if r % 2 == 0 else list(reversed(targets))
        for mode in modes:
            for t in order:
                if t.name == "floor" and mode != "ka":
                    continue  # it never closes a connection: wrk would measure keep-alive again
                x = run_wrk(
                    shim=shim, files=files, script=scripts[mode], port=t.port, server_pid=t.measured_pid,
                    origin_pid=origin.measured_pid, duration=duration, connections=connections, log=log,
                )  # fmt: skip
                results.setdefault((t.name, mode), []).append(x)
                print(
                    f"round {r + 1}/{rounds} {mode} {t.name:9s} {x.rps:9.0f} req/s  p50 {x.p50_ms} ms  "
                    f"p99 {x.p99_ms} ms  server {x.server_cpu_pct:.0f}%  wrk {x.wrk_cpu_pct:.0f}%  "
                    f"others {x.other_cpu_pct:.0f}%  "
                    f"non-2xx {x.non2xx}  errors {x.socket_errors}",
                    file=sys.stderr,
                    flush=True,
                )
    return results


def profile_edge(
    edge: Server,
    origin: Server,
    files: BenchFiles,
    shim: Path,
    scripts: dict[str, Path],
    out: Path,
    *,
    duration: int,
    connections: int,
    modes: list[str],
) -> dict[str, dict[str, Any]]:
    """py-spy (sampling at 200 Hz, with native frames) on the edge during one run per mode.

    Native frames need py-spy to pause the process for each sample, so the rate while sampled is
    lower than in the timed rounds; the shares of time are what this is for."""
    py_spy = py_spy_binary()
    report: dict[str, dict[str, Any]] = {}
    for mode in modes:
        raw = out / f"profile-{mode}.txt"
        spy = subprocess.Popen(
            [py_spy, "record", "--pid", str(edge.measured_pid), "--duration", str(int(duration) + 1),
             "--rate", "200", "--native", "--format", "raw", "--output", str(raw)],
            stdout=subprocess.DEVNULL, stderr=(out / f"py-spy-{mode}.log").open("wb"),
        )  # fmt: skip
        time.sleep(0.5)
        run = run_wrk(
            shim=shim, files=files, script=scripts[mode], port=edge.port, server_pid=edge.measured_pid,
            origin_pid=origin.measured_pid, duration=duration, connections=connections,
        )  # fmt: skip
        spy.wait(60)
        report[mode] = {"run": asdict(run), **summarize_profile(raw)}
    return report


def py_spy_binary() -> str:
    path = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(path).exists():
        raise SystemExit("--profile needs py-spy (pip install py-spy; for profiling only)")
    return path


def summarize_profile(raw: Path, top: int = 20) -> dict[str, Any]:
    """Where the event-loop thread's samples go, from py-spy's collapsed stacks.

    Only the main thread runs the loop (``--workers 1``); other threads (the access-log writer,
    an idle executor) are counted apart, busy samples only. Each loop sample is charged to the
    deepest certgate frame on its stack, including the C it calls (OpenSSL, write(2), ...), so the
    table reads "this certgate function and what it called"; cyclic garbage collection is counted
    apart, as it runs wherever an allocation trips it. Samples with no certgate frame are
    the loop's own work around our code, split into TLS inside uvloop's SSL protocol, socket
    syscalls, and the rest.
    """
    charged: Counter[str] = Counter()
    loop_total = other_busy = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if not any("_run_module_as_main" in f for f in frames):
            if "SimpleQueue_get" not in stack and "pthread_cond" not in stack:
                other_busy += count  # a thread off the loop doing work (not parked on its queue)
            continue
        loop_total += count
        if "gc_collect_main" in stack:
            # The cyclic collector runs wherever an allocation trips it; what it frees (closed
            # connections' TLS objects, typically) is not the work of the frame it interrupted.
            charged["(gc) cyclic garbage collection"] += count
            continue
        # Frames above the loop's dispatch (uv_run) are the entry point, on every stack: skip them.
        dispatch = max((i for i, f in enumerate(frames) if f.startswith("uv_run ")), default=0)
        ours = [f for f in frames[dispatch:] if "certgate/" in f]
        if ours:
            charged[_short(ours[-1])] += count
        elif any(x in stack for x in ("libssl", "libcrypto", "_ssl.c", "SSLProtocol", "ssl.py")):
            charged["(loop) TLS: handshake, record encryption/decryption"] += count
        elif frames[-1].startswith(("write ", "read ", "writev ", "sendmsg", "recv", "accept4", "close ")):
            charged[f"(loop) syscall {frames[-1].split(' ', 1)[0]}"] += count
        else:
            charged["(loop) event loop, other"] += count
    return {
        "loop_samples": loop_total,
        "other_thread_busy_samples": other_busy,
        "charged": [(f, round(100 * c / loop_total, 1)) for f, c in charged.most_common(top)]
        if loop_total
        else [],
    }


def _short(frame: str) -> str:
    # py-spy frames look like "function (path/to/file.py:123)"; keep function and file name only.
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    file = where.rsplit("/", 1)[-1].split(":", 1)[0] if where else ""
    return f"{name} ({file})" if file else name


# ------------------------------------------------------------------------------------------------
# tables


def _med(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "—" if x is None else format(x, spec)


def throughput_table(
    results: dict[tuple[str, str], list[RunResult]], modes: list[str], names: list[str]
) -> str:
    ref = names[0]
    lines = [
        f"| target | mode | req/s median (runs) | {X} nginx (median per-round ratio) | per-round ratios "
        "| p50 ms | p99 ms | server CPU % | server CPU µs/req | origin CPU % | wrk CPU % "
        "| other jobs CPU % | non-2xx | socket errors |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in modes:
        for name in names:
            if (name, mode) not in results:
                continue
            xs = results[(name, mode)]
            base = results[(ref, mode)]
            ratios = [x.rps / b.rps for x, b in zip(xs, base, strict=True) if b.rps]
            runs = ", ".join(f"{x.rps:.0f}" for x in xs)
            lines.append(
                f"| {name} | {MODES[mode]} | {statistics.median(x.rps for x in xs):,.0f} ({runs}) "
                f"| **{statistics.median(ratios):.2f}** | {', '.join(f'{r:.2f}' for r in ratios)} "
                f"| {_fmt(_med([x.p50_ms for x in xs]))} | {_fmt(_med([x.p99_ms for x in xs]))} "
                f"| {statistics.median(x.server_cpu_pct for x in xs):.0f} "
                f"| {statistics.median(x.server_cpu_us_per_req for x in xs):.0f} "
                f"| {statistics.median(x.origin_cpu_pct for x in xs):.0f} "
                f"| {statistics.median(x.wrk_cpu_pct for x in xs):.0f} "
                f"| {statistics.median(x.other_cpu_pct for x in xs):.0f} "
                f"| {sum(x.non2xx for x in xs)} | {sum(x.socket_errors for x in xs)} |"
            )
    return "\n".join(lines)


def goals_table(
    results: dict[tuple[str, str], list[RunResult]], modes: list[str], ref: str, subject: str
) -> str:
    lines = [
        "| goal | measured (median per-round ratio) | CPU per request vs nginx | met? |",
        "|---|---:|---:|---|",
    ]
    for mode in modes:
        ratios = [
            x.rps / b.rps
            for x, b in zip(results[(subject, mode)], results[(ref, mode)], strict=True)
            if b.rps
        ]
        med = statistics.median(ratios)
        cpu_ratio = statistics.median(
            b.server_cpu_us_per_req / x.server_cpu_us_per_req
            for x, b in zip(results[(subject, mode)], results[(ref, mode)], strict=True)
            if x.server_cpu_us_per_req
        )
        lines.append(
            f"| {MODES[mode]} ≥ {GOALS[mode]:.1f}{X} nginx | {med:.2f}{X} | {cpu_ratio:.2f}{X} "
            f"| {'yes' if med >= GOALS[mode] else '**no**'} |"
        )
    return "\n".join(lines)


def memory_table(memory: dict[str, dict[str, dict[str, Any]]], ref: str) -> str:
    lines = [
        "| target | process | connections | RSS before MiB | RSS with them open MiB | Δ per 1,000 conns MiB "
        f"| per conn KiB | {X} nginx |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for state in ("fresh", "warm"):
        for name, by_state in memory.items():
            if state not in by_state:
                continue
            m = by_state[state]
            base = memory[ref].get(state)
            # Only fresh processes compare: a warm one reuses memory freed after the bench,
            # so its delta says more about the allocator than about connections.
            ratio = (
                m["delta_kib_per_conn"] / base["delta_kib_per_conn"]
                if state == "fresh" and base and base["delta_kib_per_conn"]
                else None
            )
            lines.append(
                f"| {name} | {state} | {m['connections']} | {m['base_kib'] / 1024:.1f} "
                f"| {m['loaded_kib'] / 1024:.1f} "
                f"| {m['delta_mib_per_1000']:.1f} | {m['delta_kib_per_conn']:.1f} | {_fmt(ratio)} |"
            )
    return "\n".join(lines)


def profile_tables(profile: dict[str, dict[str, Any]]) -> str:
    parts = []
    for mode, p in profile.items():
        parts.append(
            f"\n{MODES[mode]}: {p['loop_samples']} event-loop samples at {p['run']['rps']:.0f} req/s while "
            f"sampled; other threads busy in {p['other_thread_busy_samples']} samples\n"
        )
        parts.append("| deepest certgate frame (with what it calls) | % of loop samples |\n|---|---:|")
        parts += [f"| `{f}` | {pct} |" for f, pct in p["charged"]]
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=4, help="seconds per wrk run (default 4)")
    ap.add_argument("--connections", type=int, default=50, help="wrk -c (default 50)")
    ap.add_argument("--idle", type=int, default=1000, help="idle connections for the memory test (0: skip)")
    ap.add_argument("--modes", default="ka,hs", help="ka (keep-alive), hs (handshake per request)")
    ap.add_argument("--out", type=Path, help="work directory (default: a new temporary one)")
    ap.add_argument("--profile", action="store_true", help="also profile the edge with py-spy")
    ap.add_argument(
        "--log-off-variant",
        action="store_true",
        help="also time a second edge with --access-log off (what the JSON access log costs)",
    )
    ap.add_argument(
        "--stdlib-variant",
        action="store_true",
        help="also time the same edge with --tls-engine stdlib (the ssl module on uvloop's transport)",
    )
    ap.add_argument(
        "--cpu-cap",
        type=float,
        default=0,
        metavar="FRACTION",
        help="limit each measured server to FRACTION of a core (cgroup CPU quota; root only), so "
        "that the load generator is never the limit and req/s measures capacity at equal CPU",
    )
    ap.add_argument(
        "--hold",
        type=float,
        default=0,
        metavar="SECONDS",
        help="after the rounds, keep every server running this long (prints their ports and pids, "
        "for strace/perf by hand)",
    )
    ap.add_argument(
        "--floor-variant",
        action="store_true",
        help="also time floor.py: the same loop and TLS engine relaying to the origin with none of "
        "the edge's work (the data path's own cost; it does not do the job)",
    )
    ap.add_argument(
        "--candidate",
        action="append",
        default=[],
        metavar="NAME=SRC",
        help="also time certgate edge run from another source tree SRC (a change to compare, a "
        "compiled build), as target NAME; repeatable",
    )
    args = ap.parse_args()
    for spec in args.candidate:
        name, sep, tree = spec.partition("=")
        if not sep or not name or not (Path(tree) / "certgate").is_dir():
            ap.error(f"--candidate {spec!r}: want NAME=SRC where SRC/certgate is a package")
    modes = [m for m in args.modes.split(",") if m]
    if any(m not in MODES for m in modes):
        ap.error(f"--modes: choose from {', '.join(MODES)}")
    if args.profile:
        py_spy_binary()  # fail now, not after the rounds
    if not 0 <= args.cpu_cap <= 1:
        ap.error("--cpu-cap: a fraction of one core, 0 < FRACTION <= 1")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs 2 cores: the servers on core 0, the generator on core 1")
    for tool in ("taskset", "gcc", "wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is required (apt-get install -y nginx-light wrk gcc)")

    os.sched_setaffinity(0, {GENERATOR_CORE})  # this process (and the control plane thread) stay off core 0
    out = args.out or Path(tempfile.mkdtemp(prefix="certgate-edge-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    env = _environment()
    print(f"work directory: {out}", file=sys.stderr)

    shim = build_shim(out)
    scripts = write_scripts(out)
    origin_port, nginx_port, edge_port = free_port(), free_port(), free_port()
    ctx, settings, files = configure(out, origin_port=origin_port)
    started: list[Server] = []
    groups: list[Path] = []
    api: BackgroundServer | None = None
    try:
        origin = start_nginx("origin", out, origin_conf(out, origin_port), origin_port)
        started.append(origin)
        api = BackgroundServer(create_app(ctx, settings, edge_token=ensure_edge_token(settings)))
        api.start()
        nginx = start_nginx("nginx", out, proxy_conf(out, nginx_port, origin_port, files), nginx_port)
        started.append(nginx)
        edge = start_edge(out, edge_port, api.url, files)
        started.append(edge)
        targets = [nginx, edge]
        for spec in args.candidate:
            name, _, tree = spec.partition("=")
            other = start_edge(out, free_port(), api.url, files, name=name, src=Path(tree).resolve())
            started.append(other)
            targets.append(other)
        if args.stdlib_variant:
            stdlib = start_edge(
                out,
                free_port(),
                api.url,
                files,
                name="certgate-stdlib-tls",
                extra_args=("--tls-engine", "stdlib"),
            )
            started.append(stdlib)
            targets.append(stdlib)
        if args.log_off_variant:
            quiet = start_edge(out, free_port(), api.url, files, name="certgate-log-off", access_log=False)
            started.append(quiet)
            targets.append(quiet)
        checks = functional_check(targets, files)
        if args.floor_variant:  # after the check: the floor does not do the job
            floor = start_floor(out, free_port(), origin_port, files)
            started.append(floor)
            targets.append(floor)
            checks = [[*row, "—"] for row in checks]
        names = [t.name for t in targets]
        if args.cpu_cap:
            groups += [cap_cpu(t, args.cpu_cap) for t in targets]
        builds = {"certgate": _edge_build(Path(__file__).resolve().parents[2] / "src")}
        for spec in args.candidate:
            name, _, tree = spec.partition("=")
            builds[name] = _edge_build(Path(tree).resolve())

        memory: dict[str, dict[str, dict[str, Any]]] = {t.name: {} for t in targets[:2]}
        if args.idle:
            for t in targets[:2]:
                memory[t.name]["fresh"] = idle_memory(t, files, args.idle)
        results = bench_rounds(
            targets, origin, files, shim, scripts, rounds=args.rounds, duration=args.duration,
            connections=args.connections, modes=modes, log=out / "wrk.log",
        )  # fmt: skip
        if args.idle:
            time.sleep(1.0)
            for t in targets[:2]:
                memory[t.name]["warm"] = idle_memory(t, files, args.idle)
        profile = (
            profile_edge(
                edge,
                origin,
                files,
                shim,
                scripts,
                out,
                duration=args.duration,
                connections=args.connections,
                modes=modes,
            )
            if args.profile
            else {}
        )
        if args.hold:
            for t in [*targets, origin]:
                print(f"holding {t.name}: port {t.port} pid {t.measured_pid}", file=sys.stderr)
            print(f"shim {shim}; scripts {scripts}", file=sys.stderr, flush=True)
            time.sleep(args.hold)
        log_lines = {t.name: sum(1 for _ in t.log_path.open("rb")) for t in targets if t.log_path.exists()}
    finally:
        for s in reversed(started):
            s.stop()
        for group in groups:
            uncap(group)
        if api is not None:
            # The edge's long-poll is cut at shutdown; uvicorn would print that as an error.
            logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
            api.stop()
        ctx.store.close()

    cmd = "PYTHONPATH=src .venv/bin/python bench/edge/run.py " + " ".join(sys.argv[1:])
    report = [
        f"Command: `{cmd.strip()}`\n",
        "| | |\n|---|---|",
        *[f"| {k} | {v} |" for k, v in env.items()],
        f"| placement | servers (proxy under test + origin) on core {SERVER_CORE}, "
        f"wrk on core {GENERATOR_CORE}; "
        f"{args.rounds} rounds {X} {args.duration:g} s per run, -c{args.connections}, order alternating"
        + (f"; each server capped at {args.cpu_cap:g} of a core (cgroup CPU quota)" if args.cpu_cap else "")
        + " |",
        f"| access-log lines written | {', '.join(f'{k}: {v:,}' for k, v in log_lines.items())} |",
        f"| edge builds | {'; '.join(f'{k}: {v}' for k, v in builds.items())} |",
        "\n**Same job** (each case on a new connection):\n",
        f"| case | {' | '.join(names)} |\n|---|{'---|' * len(names)}",
        *[f"| {' | '.join(r)} |" for r in checks],
        "\n**Throughput and latency:**\n",
        throughput_table(results, modes, names),
        "\n**Goals:**\n",
        goals_table(results, modes, names[0], names[1]),
    ]
    if args.idle:
        report += ["\n**Memory per idle mTLS connection** (handshake + one request, then held open):\n",
                   memory_table(memory, names[0])]  # fmt: skip
    if profile:
        report += [
            "\n**Where certgate's time goes** (py-spy, native frames included):",
            profile_tables(profile),
        ]
    text = "\n".join(report)
    print(text)
    (out / "report.md").write_text(text + "\n")
    (out / "results.json").write_text(
        json.dumps(
            {
                "environment": env,
                "runs": {f"{n}/{m}": [asdict(x) for x in xs] for (n, m), xs in results.items()},
                "memory": memory,
                "profile": profile,
            },
            indent=2,
        )
    )
    print(f"\n(results in {out})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
