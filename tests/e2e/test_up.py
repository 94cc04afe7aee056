"""``certgate up`` end to end: the real command as a subprocess on free ports, its demo's curl
commands run as printed, then the seed page's flows through the CLI against it, checked at the
edge with a real TLS client."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

pytestmark = pytest.mark.slow

CERTGATE = [sys.executable, "-m", "certgate"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Up:
    proc: subprocess.Popen[str]
    data_dir: Path
    output: str
    api_port: int
    edge_port: int


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    workdir = tmp_path_factory.mktemp("up")
    api_port, edge_port = free_port(), free_port()
    proc = subprocess.Popen(
        [*CERTGATE, "up", "--demo", "--api-listen", f"127.0.0.1:{api_port}",
         "--edge-listen", f"127.0.0.1:{edge_port}"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            break
    output = "".join(lines)
    assert "Press Ctrl-C" in output, f"certgate up did not come up:\n{output}"
    try:
        yield Up(proc, workdir / "certgate-data", output, api_port, edge_port)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def curl_commands(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.strip().startswith("curl ")]


def test_demo_prints_two_curl_commands_that_work(up: Up) -> None:
    with_cert, without_cert = curl_commands(up.output)
    ok = subprocess.run(
        [*shlex.split(with_cert), "-sS", "-w", "\n%{http_code}"], capture_output=True, text=True
    )
    body, status = ok.stdout.rsplit("\n", 1)
    assert status == "200", ok.stderr
    echoed = json.loads(body)
    assert echoed["client_cert_status"] == "valid"
    assert echoed["client_cert"].startswith(":") and echoed["client_cert"].endswith(":")
    denied = subprocess.run([*shlex.split(without_cert), "-sS", "-o", "/dev/null", "-w", "%{http_code}"],
                            capture_output=True, text=True)  # fmt: skip
    assert denied.stdout == "403", denied.stderr


def tls_get(up: Up, host: str, cert: Path | None = None, key: Path | None = None) -> int:
    ctx = ssl.create_default_context(cafile=str(up.data_dir / "edge-ca.pem"))
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    with socket.create_connection(("127.0.0.1", up.edge_port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            head = tls.recv(64)
    return int(head.split(b" ", 2)[1])


def wait_for_status(up: Up, host: str, expected: int, **kw: Path) -> None:
    deadline = time.monotonic() + 10
    status = None
    while time.monotonic() < deadline:
        status = tls_get(up, host, **kw)
        if status == expected:
            return
        time.sleep(0.1)
    raise AssertionError(f"{host}: expected {expected}, still {status}")


def test_seed_flows_through_the_cli(up: Up, tmp_path: Path) -> None:
    account = json.loads((up.data_dir / "demo" / "account.json").read_text())
    env = dict(os.environ, CERTGATE_PROFILE=str(tmp_path / "profile.json"))

    def cli(*args: str) -> dict[str, object]:
        done = subprocess.run([*CERTGATE, *args, "--json"], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else {}

    configured = subprocess.run(
        [*CERTGATE, "configure", "--endpoint", f"http://127.0.0.1:{up.api_port}",
         "--access-key-id", account["AccessKeyId"], "--access-key-secret", account["AccessKeySecret"],
         "--instance-id", account["InstanceId"]],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert configured.returncode == 0, configured.stderr
    site = str(account["SiteId"])
    cli("records", "create", "--site-id", site, "--name", "devices.example.com", "--value", "127.0.0.1")
    # Own CSR path: the key never leaves this test.
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device-7")]))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "device.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "device.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    )  # fmt: skip
    created = cli("certs", "create", "--site-id", site, "--csr", str(tmp_path / "device.csr"),
                  "--out-cert", str(tmp_path / "device.crt"))  # fmt: skip
    cert_id = str(created["Id"])
    # Before binding: no mTLS on the new hostname, the origin answers (the demo origin rule
    # points api.example.com only, so devices.example.com's origin port 80 is refused: 502).
    cli("hostnames", "set", "--site-id", site, "api.example.com", "devices.example.com")
    rule = '(http.host eq "devices.example.com" and not tls.client_auth.cert_verified)'
    cli("waf", "create", "--site-id", site, "--name", "devices", "--action", "deny", "--expression", rule)
    wait_for_status(up, "devices.example.com", 403)
    assert tls_get(up, "devices.example.com", tmp_path / "device.crt", tmp_path / "device.key") != 403
    cli("certs", "revoke", "--site-id", site, cert_id)
    wait_for_status(up, "devices.example.com", 403, cert=tmp_path / "device.crt", key=tmp_path / "device.key")
    # The demo certificate is still good on the demo hostname.
    demo = up.data_dir / "demo"
    assert tls_get(up, "api.example.com", demo / "client.crt", demo / "client.key") == 200


def test_ctrl_c_stops_everything(tmp_path: Path) -> None:
    api_port, edge_port = free_port(), free_port()
    with subprocess.Popen(
        [*CERTGATE, "up", "--api-listen", f"127.0.0.1:{api_port}", "--edge-listen", f"127.0.0.1:{edge_port}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        out = ""
        while "Press Ctrl-C" not in out:
            line = proc.stdout.readline()
            assert line, f"certgate up exited early: {out}"
            out += line
        assert re.search(rf"Console: +http://127\.0\.0\.1:{api_port}/console/", out)
        with socket.create_connection(("127.0.0.1", api_port), timeout=5) as s:
            s.sendall(b"GET /console/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert s.recv(32).split(b" ")[1] in (b"200", b"303", b"302")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(90) == 0  # generous: CI machines are shared and slow
    for port in (api_port, edge_port):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
