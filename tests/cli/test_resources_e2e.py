"""The resource commands against the real control plane (uvicorn on loopback, SQLite in tmp_path):
the seed's flows driven through ``certgate ...`` in-process, and once as a real subprocess."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import certgate
from certgate.api.app import create_app
from certgate.api.server import BackgroundServer
from certgate.bootstrap import ensure_edge_token, initialize
from certgate.cli import main
from certgate.services.accounts import create_account
from certgate.settings import ControlPlaneSettings

SEED_RULE = '(http.host eq "api.example.com" and not tls.client_auth.cert_verified)'


@dataclass
class ControlPlane:
    url: str
    access_key_id: str
    access_key_secret: str
    instance_id: str
    profile: Path


@pytest.fixture
def control_plane(tmp_path: Path, isolated_env: Path) -> Iterator[ControlPlane]:
    settings = ControlPlaneSettings(data_dir=tmp_path / "data")
    ctx = initialize(settings)
    try:
        account = create_account(ctx, "cli-e2e")
        app = create_app(ctx, settings, edge_token=ensure_edge_token(settings))
        with BackgroundServer(app) as server:
            yield ControlPlane(
                url=server.url,
                access_key_id=account.access_key_id,
                access_key_secret=account.access_key_secret,
                instance_id=account.account.instance_id,
                profile=isolated_env,
            )
    finally:
        ctx.store.close()


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def ok_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    code, out, err = cli([*argv, "--json"], capsys)
    assert (code, err) == (0, ""), err
    data = json.loads(out)
    assert isinstance(data, dict) and data.get("RequestId")
    return data


def one_line_error(result: tuple[int, str, str], code: str) -> str:
    status, out, err = result
    assert status == 1 and out == ""
    assert err.startswith(f"certgate: error: {code}: ") and err.count("\n") == 1, err
    return err


def _client_csr() -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bob-laptop")]))
        .sign(key, hashes.SHA256())
    )
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


def _custom_ca() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Corp Client CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_seed_flows_through_the_cli(
    control_plane: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cp = control_plane
    code, out, _ = cli(
        [
            "configure",
            "--endpoint",
            cp.url,
            "--access-key-id",
            cp.access_key_id,
            "--access-key-secret",
            cp.access_key_secret,
            "--instance-id",
            cp.instance_id,
        ],
        capsys,
    )
    assert code == 0 and cp.access_key_secret not in out

    # Site and record.
    site_id = ok_json(["sites", "create", "--name", "example.com"], capsys)["SiteId"]
    assert isinstance(site_id, int)
    s = str(site_id)
    code, out, _ = cli(["sites", "list"], capsys)
    assert code == 0 and "example.com" in out and s in out
    assert ok_json(["sites", "get", s], capsys)["SiteModel"]["SiteName"] == "example.com"  # type: ignore[index]
    record_id = ok_json(
        ["records", "create", "--site-id", s, "--name", "api.example.com", "--value", "127.0.0.1"], capsys
    )["RecordId"]
    code, out, _ = cli(["records", "list", "--site-id", s], capsys)
    assert code == 0 and "api.example.com" in out and "127.0.0.1" in out

    # A certificate with a server-generated key: the key lands in a 0600 file and matches.
    cert_file, key_file = tmp_path / "client.pem", tmp_path / "client.key"
    code, out, err = cli(
        [
            "certs",
            "create",
            "--site-id",
            s,
            "--key-type",
            "ECDSA",
            "--out-cert",
            str(cert_file),
            "--out-key",
            str(key_file),
        ],
        capsys,
    )
    assert (code, err) == (0, "")
    assert "PRIVATE KEY" not in out
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    issued = x509.load_pem_x509_certificate(cert_file.read_bytes())
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert issued.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert (
        ExtendedKeyUsageOID.CLIENT_AUTH
        in issued.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    generated_id = next(line.split()[-1] for line in out.splitlines() if line.startswith("Id:"))

    # A certificate for our own CSR: no key in the answer, the CSR's key certified.
    csr_key, csr_pem = _client_csr()
    (tmp_path / "bob.csr").write_text(csr_pem)
    created = ok_json(["certs", "create", "--site-id", s, "--csr", str(tmp_path / "bob.csr")], capsys)
    assert "PrivateKey" not in created
    bob = x509.load_pem_x509_certificate(str(created["Certificate"]).encode())
    assert bob.public_key() == csr_key.public_key()
    csr_cert_id = str(created["Id"])

    listed = ok_json(["certs", "list", "--site-id", s], capsys)
    assert listed["TotalCount"] == 2
    code, out, _ = cli(["certs", "list", "--site-id", s], capsys)
    assert code == 0 and generated_id in out and csr_cert_id in out and out.count("active") == 2

    # mTLS on api.example.com with the managed CA, and the seed's WAF rule.
    code, out, _ = cli(["hostnames", "set", "--site-id", s, "api.example.com"], capsys)
    assert code == 0 and "api.example.com" in out and "managed CA" in out
    assert ok_json(["hostnames", "get", "--site-id", s], capsys)["Hostnames"] == ["api.example.com"]
    rule_id = ok_json(
        ["waf", "create", "--site-id", s, "--name", "mtls", "--expression", SEED_RULE, "--action", "deny"],
        capsys,
    )["Id"]
    code, out, _ = cli(["waf", "list", "--site-id", s], capsys)
    assert code == 0 and "mtls" in out and "deny" in out
    rule = ok_json(["waf", "get", "--site-id", s, str(rule_id)], capsys)
    assert rule["Config"]["Expression"] == SEED_RULE  # type: ignore[index]
    assert cli(["waf", "update", "--site-id", s, str(rule_id), "--status", "off"], capsys)[0] == 0
    assert ok_json(["waf", "get", "--site-id", s, str(rule_id)], capsys)["Status"] == "off"

    # Revoke, re-activate, revoke, delete.
    code, out, _ = cli(["certs", "revoke", "--site-id", s, generated_id], capsys)
    assert code == 0 and out == f"Client certificate {generated_id} revoked.\n"
    assert ok_json(["certs", "get", "--site-id", s, generated_id], capsys)["Result"]["Status"] == "revoked"  # type: ignore[index]
    one_line_error(cli(["certs", "revoke", "--site-id", s, generated_id], capsys), "Certificate.StatusError")
    assert cli(["certs", "activate", "--site-id", s, generated_id], capsys)[0] == 0
    one_line_error(cli(["certs", "delete", "--site-id", s, generated_id], capsys), "Certificate.StatusError")
    assert cli(["certs", "revoke", "--site-id", s, generated_id], capsys)[0] == 0
    assert cli(["certs", "delete", "--site-id", s, generated_id], capsys)[0] == 0
    assert ok_json(["certs", "list", "--site-id", s], capsys)["TotalCount"] == 1

    # A custom CA: upload, bind, refuse deletion while bound, unbind, delete.
    (tmp_path / "corp-ca.pem").write_text(_custom_ca())
    ca_id = str(
        ok_json(
            ["cas", "upload", "--site-id", s, "--file", str(tmp_path / "corp-ca.pem"), "--name", "corp"],
            capsys,
        )["Id"]
    )
    code, out, _ = cli(["cas", "list", "--site-id", s], capsys)
    assert code == 0 and ca_id in out and "Corp Client CA" in out
    assert ok_json(["cas", "get", "--site-id", s, ca_id], capsys)["Result"]["CommonName"] == "Corp Client CA"  # type: ignore[index]
    assert cli(["hostnames", "set", "--site-id", s, "--ca-id", ca_id, "api.example.com"], capsys)[0] == 0
    assert ok_json(["hostnames", "get", "--site-id", s, "--ca-id", ca_id], capsys)["Hostnames"] == [
        "api.example.com"
    ]
    one_line_error(cli(["cas", "delete", "--site-id", s, ca_id], capsys), "CaCertificate.InUse")
    code, out, _ = cli(["hostnames", "set", "--site-id", s, "--ca-id", ca_id, "--clear"], capsys)
    assert code == 0 and out == f"No hostnames are bound to client CA {ca_id}.\n"
    assert cli(["cas", "delete", "--site-id", s, ca_id], capsys)[0] == 0

    # Origin rules.
    config_id = ok_json(
        [
            "origin-rules",
            "create",
            "--site-id",
            s,
            "--name",
            "to-8443",
            "--expression",
            '(http.host eq "api.example.com")',
            "--origin-https-port",
            "8443",
        ],
        capsys,
    )["ConfigId"]
    code, out, _ = cli(["origin-rules", "list", "--site-id", s], capsys)
    assert code == 0 and "to-8443" in out and "8443" in out
    assert cli(["origin-rules", "delete", "--site-id", s, str(config_id)], capsys)[0] == 0

    # Errors carry the ESA code, on one line, and change nothing.
    (tmp_path / "bad.csr").write_text(
        "-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgY3Ny\n-----END CERTIFICATE REQUEST-----\n"
    )
    one_line_error(
        cli(["certs", "create", "--site-id", s, "--csr", str(tmp_path / "bad.csr")], capsys),
        "InvalidParameter.CSR",
    )
    names = [f"h{i}.example.com" for i in range(51)]
    one_line_error(cli(["hostnames", "set", "--site-id", s, *names], capsys), "QuotaExceeded.Hostnames")
    assert ok_json(["hostnames", "get", "--site-id", s], capsys)["Hostnames"] == ["api.example.com"]
    one_line_error(cli(["sites", "get", "999"], capsys), "SiteNotFound")

    # Clean-up works too.
    assert cli(["records", "delete", str(record_id)], capsys)[0] == 0
    assert cli(["sites", "delete", s], capsys)[0] == 0


def test_wrong_secret_is_one_line_with_the_signature_code(
    control_plane: ControlPlane, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERTGATE_ENDPOINT", control_plane.url)
    monkeypatch.setenv("CERTGATE_ACCESS_KEY_ID", control_plane.access_key_id)
    monkeypatch.setenv("CERTGATE_ACCESS_KEY_SECRET", "wrong-" + control_plane.access_key_secret)
    err = one_line_error(cli(["sites", "list"], capsys), "SignatureDoesNotMatch")
    assert control_plane.access_key_secret not in err


def _certgate_command() -> list[str]:
    """The installed console script when there is one, else ``python -m certgate``."""
    script = Path(sys.executable).with_name("certgate")
    return [str(script)] if script.exists() else [sys.executable, "-m", "certgate"]


def test_real_subprocess_issues_and_fails_cleanly(
    control_plane: ControlPlane,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The console script in a process of its own (each start costs about a second, so two runs):
    the profile comes from the environment alone, the key is printed once, an error is one line."""
    cp = control_plane
    src = str(Path(certgate.__file__).resolve().parent.parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTGATE_")}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")])),
        CERTGATE_PROFILE=str(tmp_path / "no-such-profile.json"),
        CERTGATE_ENDPOINT=cp.url,
        CERTGATE_ACCESS_KEY_ID=cp.access_key_id,
        CERTGATE_ACCESS_KEY_SECRET=cp.access_key_secret,
    )
    for name in (
        "CERTGATE_PROFILE",
        "CERTGATE_ENDPOINT",
        "CERTGATE_ACCESS_KEY_ID",
        "CERTGATE_ACCESS_KEY_SECRET",
    ):
        monkeypatch.setenv(name, env[name])  # the in-process call below uses the same settings
    site_id = str(
        ok_json(["sites", "create", "--name", "sub.example", "--instance-id", cp.instance_id], capsys)[
            "SiteId"
        ]
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_certgate_command(), *args], env=env, capture_output=True, text=True, timeout=60
        )

    issued = run("certs", "create", "--site-id", site_id, "--key-type", "ECDSA")
    assert issued.returncode == 0, issued.stderr
    assert issued.stdout.count("-----BEGIN PRIVATE KEY-----") == 1
    assert issued.stdout.count("-----BEGIN CERTIFICATE-----") == 1
    assert issued.stderr.startswith("certgate: warning: this private key is shown ONCE")
    assert cp.access_key_secret not in issued.stdout + issued.stderr

    missing = run("certs", "get", "--site-id", site_id, "0" * 32)
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr.startswith("certgate: error: Certificate.NotFound: ")
    assert missing.stderr.count("\n") == 1
