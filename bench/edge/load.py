"""wrk on the generator core, presenting the managed client certificate through the shim.

Modes:

- ``ka``: keep-alive, ``-c`` connections each sending requests back to back (proxied req/s);
- ``hs``: ``Connection: close`` on every request, so each request is a new TCP connection and a
  full TLS 1.3 mTLS handshake (no tickets, no session cache on either side).

Per run we record wrk's req/s, its latency percentiles (``--latency``), non-2xx and socket
errors, the CPU the measured server process and the origin used (from ``/proc``, over the wall
time of the run) and the CPU wrk itself used (``wait4`` rusage), which tells whether the
generator, not the server, was the limit.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from configure import HOST, BenchFiles
from servers import cpu_ticks

GENERATOR_CORE = 1
SHIM_SOURCE = Path(__file__).resolve().parent / "shim" / "clientcert_shim.c"
MODES = {"ka": "keep-alive", "hs": "handshake per request"}


def build_shim(out_dir: Path) -> Path:
    """Compile the shim into ``out_dir`` (never into the source tree)."""
    if shutil.which("gcc") is None:
        raise SystemExit("gcc is needed to build the client-certificate shim")
    out = out_dir / "clientcert_shim.so"
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-O2",
            "-Wall",
            "-o",
            str(out),
            str(SHIM_SOURCE),
            "-ldl",
            "-lssl",
            "-lcrypto",
        ],
        check=True,
    )
    return out


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    return path


def write_scripts(out_dir: Path) -> dict[str, Path]:
    ka = out_dir / "keepalive.lua"
    ka.write_text(f'wrk.headers["Host"] = "{HOST}"\n')
    hs = out_dir / "close.lua"
    hs.write_text(f'wrk.headers["Host"] = "{HOST}"\nwrk.headers["Connection"] = "close"\n')
    return {"ka": ka, "hs": hs}


@dataclass(frozen=True, slots=True)
class RunResult:
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    requests: int
    non2xx: int
    socket_errors: int
    server_cpu_pct: float
    origin_cpu_pct: float
    wrk_cpu_pct: float
    other_cpu_pct: float
    """CPU the rest of the machine used meanwhile (% of one core; 200 = both cores): a shared
    machine's other jobs compete with the server and wrk, and this says how much in each run."""
    wall_s: float

    @property
    def server_cpu_us_per_req(self) -> float:
        """Server CPU time per request (µs): robust to drift, as it does not depend on the rate."""
        return self.server_cpu_pct / 100 * self.wall_s / self.requests * 1e6 if self.requests else 0.0


def machine_busy_ticks() -> int:
    """Non-idle clock ticks of all CPUs together, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal (guest is in user)


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _latency(out: str, pct: int) -> float | None:
    m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m)\b", out, re.MULTILINE)
    return float(m.group(1)) * _UNIT_MS[m.group(2)] if m else None


def parse_wrk(out: str) -> tuple[float, int, float | None, float | None, int, int]:
    rps_m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    req_m = re.search(r"(\d+) requests in", out)
    if rps_m is None or req_m is None:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    non2xx_m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors_m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = sum(int(x) for x in errors_m.groups()) if errors_m else 0
    return (
        float(rps_m.group(1)),
        int(req_m.group(1)),
        _latency(out, 50),
        _latency(out, 99),
        int(non2xx_m.group(1)) if non2xx_m else 0,
        errors,
    )


def run_wrk(
    *,
    shim: Path,
    files: BenchFiles,
    script: Path,
    port: int,
    server_pid: int,
    origin_pid: int,
    duration: int,
    connections: int,
    log: Path | None = None,
) -> RunResult:
    env = {
        **os.environ,
        "LD_PRELOAD": str(shim),
        "SHIM_CERT": str(files.client_cert),
        "SHIM_KEY": str(files.client_key),
        "SHIM_TLS": "1.3",
        "SHIM_SNI": HOST,
    }
    cmd = [
        "taskset", "-c", str(GENERATOR_CORE), wrk_binary(), "-t1", f"-c{connections}",
        f"-d{duration}s", "--latency", "-s", str(script), f"https://127.0.0.1:{port}/",
    ]  # fmt: skip
    tck = os.sysconf("SC_CLK_TCK")
    server0, origin0, busy0 = cpu_ticks(server_pid), cpu_ticks(origin_pid), machine_busy_ticks()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # wait4 reaped it; keep Popen consistent
    wall = time.monotonic() - t0
    server_cpu = (cpu_ticks(server_pid) - server0) / tck / wall * 100
    origin_cpu = (cpu_ticks(origin_pid) - origin0) / tck / wall * 100
    busy = (machine_busy_ticks() - busy0) / tck / wall * 100
    if log is not None:
        with log.open("a") as f:
            f.write(f"$ {' '.join(cmd)}\n{out}\n")
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{out}")
    rps, requests, p50, p99, non2xx, errors = parse_wrk(out)
    return RunResult(
        rps=rps,
        p50_ms=p50,
        p99_ms=p99,
        requests=requests,
        non2xx=non2xx,
        socket_errors=errors,
        server_cpu_pct=server_cpu,
        origin_cpu_pct=origin_cpu,
        wrk_cpu_pct=(wrk_cpu := (usage.ru_utime + usage.ru_stime) / wall * 100),
        other_cpu_pct=max(0.0, busy - server_cpu - origin_cpu - wrk_cpu),
        wall_s=wall,
    )
