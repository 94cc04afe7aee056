"""The processes under test: the shared origin, the nginx reference proxy and ``certgate edge``.

Every server process is pinned to core 0 (nginx with ``worker_cpu_affinity``, the edge with
``taskset``); the load generator gets core 1. Each `Server` knows the pid whose CPU and RSS are
measured (the nginx worker, the edge worker) and how to stop cleanly.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from configure import HOST, BenchFiles

SERVER_CORE = 0
ORIGIN_BODY = "ok"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def cpu_ticks(pid: int) -> int:
    """User + system clock ticks of the whole process (all threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    measured_pid: int
    """The process doing the work (nginx: the single worker; certgate: the single edge worker)."""
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        if self.process.poll() is None:
            # nginx: SIGQUIT is its graceful stop; the edge: SIGTERM is.
            self.process.send_signal(signal.SIGQUIT if self.name.startswith("nginx") else signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _wait_listening(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} in time")


# ------------------------------------------------------------------------------------------------
# CPU caps (cgroup CPU quota)

_CAP_PERIOD_US = 20_000
"""A short period keeps the capped server's bursts short (the CFS default is 100 ms)."""


def cap_cpu(server: Server, fraction: float) -> Path:
    """Limit ``server.measured_pid`` (all its threads) to ``fraction`` of one core with a cgroup
    CPU quota, so that the load generator, not the server, has spare CPU: req/s then measures
    the server's capacity for that budget. Needs root and a cgroup v2 ``cpu`` controller or a
    cgroup v1 ``cpu`` hierarchy. Returns the group's directory (`uncap` removes it)."""
    quota = max(1000, round(fraction * _CAP_PERIOD_US))
    root = Path("/sys/fs/cgroup")
    controllers = root / "cgroup.controllers"
    if controllers.exists() and "cpu" in controllers.read_text().split():
        group = root / f"certgate-bench-{os.getpid()}-{server.name}"
        (root / "cgroup.subtree_control").write_text("+cpu")
        group.mkdir()
        (group / "cpu.max").write_text(f"{quota} {_CAP_PERIOD_US}")
    elif (root / "cpu" / "cpu.cfs_quota_us").exists():
        group = root / "cpu" / f"certgate-bench-{os.getpid()}-{server.name}"
        group.mkdir()
        (group / "cpu.cfs_period_us").write_text(str(_CAP_PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(quota))
    else:
        raise SystemExit("--cpu-cap needs a cgroup cpu controller (v2) or cpu hierarchy (v1)")
    (group / "cgroup.procs").write_text(str(server.measured_pid))
    return group


def uncap(group: Path) -> None:
    """Remove a group of `cap_cpu` (its process has exited or is moved back to the root)."""
    parent_procs = group.parent / "cgroup.procs"
    for pid in (group / "cgroup.procs").read_text().split():
        try:
            parent_procs.write_text(pid)
        except OSError:
            pass  # exited meanwhile
    group.rmdir()


# ------------------------------------------------------------------------------------------------
# nginx


def nginx_binary() -> str:
    path = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(path).exists():
        raise SystemExit("nginx is not installed (apt-get install -y nginx-light)")
    return path


def nginx_version() -> str:
    out = subprocess.run([nginx_binary(), "-V"], capture_output=True, text=True).stderr
    lines = [ln for ln in out.splitlines() if ln.startswith(("nginx version", "built with OpenSSL"))]
    return "; ".join(lines)


def _nginx_common(prefix: Path, name: str) -> str:
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}worker_processes 1;\nworker_cpu_affinity 01;\ndaemon off;\nmaster_process on;\n"
        f"pid {prefix}/{name}.pid;\nerror_log {prefix}/{name}-error.log warn;\n"
        "worker_rlimit_nofile 65535;\nevents { worker_connections 20000; }\n"
    )


def origin_conf(prefix: Path, port: int) -> str:
    """The trivial origin both proxies share: ``200 ok``; ``/__headers`` echoes what a proxy sent."""
    return _nginx_common(prefix, "origin") + (
        "http {\n  access_log off;\n  keepalive_requests 1000000;\n  keepalive_timeout 300s;\n"
        f"  server {{\n    listen 127.0.0.1:{port} backlog=4096;\n"
        f'    location / {{ return 200 "{ORIGIN_BODY}"; }}\n'
        "    location = /__headers {\n"
        '      return 200 "client-cert=$http_client_cert\\nclient-cert-chain=$http_client_cert_chain\\n'
        "client-cert-status=$http_client_cert_status\\nx-forwarded-for=$http_x_forwarded_for\\n"
        'x-forwarded-proto=$http_x_forwarded_proto\\n";\n'
        "    }\n  }\n}\n"
    )


# The access-log line carries what certgate's JSON line carries (request, status, timing and
# every client-certificate field nginx has); written through a buffer, as certgate's log is.
_LOG_FORMAT = (
    "log_format certjson escape=json '{"
    '"time":"$time_iso8601","request_id":"$request_id","remote":"$remote_addr",'
    '"host":"$host","sni":"$ssl_server_name","method":"$request_method","uri":"$request_uri",'
    '"status":$status,"bytes":$bytes_sent,"duration":$request_time,'
    '"upstream":"$upstream_addr","upstream_status":"$upstream_status","tls":"$ssl_protocol",'
    '"cert_verify":"$ssl_client_verify","cert_serial":"$ssl_client_serial",'
    '"cert_fingerprint":"$ssl_client_fingerprint","cert_subject_dn":"$ssl_client_s_dn",'
    '"cert_issuer_dn":"$ssl_client_i_dn","cert_not_before":"$ssl_client_v_start",'
    '"cert_not_after":"$ssl_client_v_end"'
    "}';\n"
)


def proxy_conf(prefix: Path, port: int, origin_port: int, files: BenchFiles) -> str:
    """nginx doing the edge's job for ``HOST``.

    * ask for a client certificate, never fail the handshake over it (``optional_no_ca``), with
      the managed CA as trust anchor and CertificateRequest CA name, and its CRL;
    * 421 when Host and SNI differ; 403 unless the certificate verified (the seed WAF rule);
      expired/revoked certificates make nginx raise 495, mapped to 403 too;
    * proxy to the origin over a keep-alive pool, forwarding the certificate (RFC 9440 style),
      its status and X-Forwarded-For/-Proto, and dropping client-sent copies of those headers;
    * a JSON access log line per request; TLS 1.2/1.3, no session cache, no tickets.
    """
    return _nginx_common(prefix, "nginx") + (
        "http {\n"
        f"  {_LOG_FORMAT}"
        f"  access_log {prefix}/nginx-access.log certjson buffer=64k flush=1s;\n"
        "  keepalive_requests 1000000;\n  keepalive_timeout 300s;\n"
        f"  upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 128; }}\n"
        "  ssl_protocols TLSv1.2 TLSv1.3;\n  ssl_session_cache off;\n  ssl_session_tickets off;\n"
        "  ssl_verify_client optional_no_ca;\n  ssl_verify_depth 3;\n"
        f"  server {{\n    listen 127.0.0.1:{port} ssl backlog=1024;\n    server_name {HOST};\n"
        f"    ssl_certificate {files.edge_chain};\n    ssl_certificate_key {files.edge_key};\n"
        f"    ssl_client_certificate {files.managed_ca};\n    ssl_crl {files.managed_crl};\n"
        "    error_page 495 496 =403 /__denied;\n"
        '    location = /__denied { internal; return 403 "denied\\n"; }\n'
        '    if ($host != $ssl_server_name) { return 421 "misdirected\\n"; }\n'
        "    location / {\n"
        '      if ($ssl_client_verify != SUCCESS) { return 403 "denied\\n"; }\n'
        "      proxy_pass http://origin;\n      proxy_http_version 1.1;\n"
        '      proxy_set_header Connection "";\n      proxy_set_header Host $host;\n'
        "      proxy_set_header X-Forwarded-For $remote_addr;\n"
        "      proxy_set_header X-Forwarded-Proto https;\n"
        '      proxy_set_header X-Forwarded-Host "";\n      proxy_set_header X-Forwarded-Port "";\n'
        '      proxy_set_header Forwarded "";\n      proxy_set_header X-Real-IP "";\n'
        "      proxy_set_header Client-Cert $ssl_client_escaped_cert;\n"
        '      proxy_set_header Client-Cert-Chain "";\n'
        "      proxy_set_header Client-Cert-Status $ssl_client_verify;\n"
        "    }\n  }\n}\n"
    )


def start_nginx(name: str, prefix: Path, conf: str, port: int) -> Server:
    conf_path = prefix / f"{name}.conf"
    conf_path.write_text(conf)
    test = subprocess.run(
        [
            nginx_binary(),
            "-t",
            "-q",
            "-p",
            str(prefix),
            "-e",
            str(prefix / f"{name}-error.log"),
            "-c",
            str(conf_path),
        ],
        capture_output=True,
        text=True,
    )
    if test.returncode != 0:
        raise RuntimeError(f"nginx -t failed for {name}:\n{test.stderr}")
    proc = subprocess.Popen(
        ["taskset", "-c", str(SERVER_CORE), nginx_binary(), "-p", str(prefix),
         "-e", str(prefix / f"{name}-error.log"), "-c", str(conf_path)],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_listening(port, proc, name)
    deadline = time.monotonic() + 10
    while not (workers := children(proc.pid)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: no worker process")
        time.sleep(0.05)
    return Server(name, port, proc, workers[0], prefix / f"{name}-access.log")


# ------------------------------------------------------------------------------------------------
# certgate edge


def _start_python(
    prefix: Path, name: str, cmd: list[str], port: int, what: str, *, src: Path | None = None
) -> subprocess.Popen[bytes]:
    """Run ``cmd`` (a Python server) with certgate importable from ``src`` (default: this
    checkout's), its stderr in ``prefix/NAME-stderr.log``; return once it listens on ``port``."""
    src = src or Path(__file__).resolve().parents[2] / "src"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH")) if p),
    }
    stderr = (prefix / f"{name}-stderr.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stderr=stderr)
    stderr.close()
    _wait_listening(port, proc, what)
    return proc


def start_edge(
    prefix: Path,
    port: int,
    control_plane: str,
    files: BenchFiles,
    *,
    name: str = "certgate",
    access_log: bool = True,
    src: Path | None = None,
    extra_args: tuple[str, ...] = (),
) -> Server:
    """``certgate edge`` with one worker (the process itself), pinned to core 0, access log to a file
    (``access_log=False`` runs the same edge with ``--access-log off``, to see what logging costs;
    ``src`` runs certgate from another source tree, e.g. a candidate change or a compiled build)."""
    log_path = prefix / f"{name}-access.log"
    state_dir = prefix / f"{name}-state"
    cmd = [
        "taskset", "-c", str(SERVER_CORE),
        sys.executable, "-m", "certgate", "edge",
        "--control-plane", control_plane,
        "--token-file", str(files.token_file),
        "--listen", f"127.0.0.1:{port}",
        "--workers", "1",
        "--state-dir", str(state_dir),
        "--access-log", str(log_path) if access_log else "off",
        "--log-level", "warning",
        *extra_args,
    ]  # fmt: skip
    proc = _start_python(prefix, name, cmd, port, "certgate edge", src=src)
    server = Server(name, port, proc, proc.pid, log_path)
    # Listening is not serving: wait until the snapshot is applied and the hostname answers 200.
    deadline = time.monotonic() + 30
    while (status := probe(port, files, path="/")[0]) != 200:
        if time.monotonic() > deadline or proc.poll() is not None:
            server.stop()
            raise RuntimeError(f"certgate edge never answered 200 (last status {status})")
        time.sleep(0.1)
    return server


def start_floor(prefix: Path, port: int, origin_port: int, files: BenchFiles) -> Server:
    """``floor.py`` pinned to core 0: the data path alone (see its docstring). It does not do the
    job, so it is never in the functional check; it must answer one proxied request before timing.
    """
    cmd = [
        "taskset", "-c", str(SERVER_CORE),
        sys.executable, str(Path(__file__).resolve().parent / "floor.py"),
        "--listen", str(port), "--origin", str(origin_port),
        "--chain", str(files.edge_chain), "--key", str(files.edge_key),
        "--client-ca", str(files.managed_ca),
    ]  # fmt: skip
    proc = _start_python(prefix, "floor", cmd, port, "floor.py")
    server = Server("floor", port, proc, proc.pid, prefix / "floor-access.log")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(files.edge_ca)
    ctx.load_cert_chain(files.client_cert, files.client_key)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=HOST) as tls:
                tls.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
                data = b""
                while not data.endswith(b"ok") and (chunk := tls.recv(65536)):
                    data += chunk
        if not data.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"floor.py did not relay the origin's answer: {data[:80]!r}")
    except BaseException:
        server.stop()
        raise
    return server


# ------------------------------------------------------------------------------------------------
# functional probe


def probe(
    port: int,
    files: BenchFiles,
    *,
    path: str = "/",
    cert: tuple[Path, Path] | bool | None = True,
    sni: str = HOST,
    host: str = HOST,
    tls13: bool = True,
) -> tuple[int | None, str]:
    """One request on a new connection: (status, body). ``cert=True`` presents the good cert."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(files.edge_ca)
    ctx.check_hostname = False  # SNI and Host are varied on purpose; the chain is still checked
    if tls13:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    else:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if cert is True:
        ctx.load_cert_chain(files.client_cert, files.client_key)
    elif isinstance(cert, tuple):
        ctx.load_cert_chain(*cert)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=sni) as tls:
                tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while chunk := tls.recv(65536):
                    data += chunk
    except (OSError, ssl.SSLError) as exc:
        return None, repr(exc)
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None, data[:200].decode("latin-1")
    return status, body.decode("latin-1")
