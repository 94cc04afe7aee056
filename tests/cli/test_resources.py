"""The resource commands against a capture server: every command sends what the official SDK
sends for the same operation, output and errors have the promised shape, secrets stay hidden."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import pytest

from certgate.cli import main
from certgate.cli.profile import Profile, write_file

if TYPE_CHECKING:
    from conftest import CaptureServer  # tests/cli/conftest.py

SECRET = "cli-secret-do-not-print"
KEY_ID = "LTAIclikey"
CERT_PEM = "-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----\n"
KEY_PEM = "-----BEGIN PRIVATE KEY-----\nMIIBkey\n-----END PRIVATE KEY-----\n"


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def configured(isolated_env: Path, capture: CaptureServer) -> CaptureServer:
    write_file(
        isolated_env,
        Profile(
            endpoint=capture.endpoint, access_key_id=KEY_ID, access_key_secret=SECRET, instance_id="inst-1"
        ),
    )
    return capture


# -- every command sends what the SDK sends ----------------------------------------------------


def _normalized(raw: str) -> dict[str, Any]:
    """Parameters with JSON-object values parsed, dropping the empty lists the SDK's to_map()
    always emits (ESA-API.md §1.6), so only meaningful differences remain."""
    params: dict[str, Any] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        if value.startswith("{"):
            params[key] = {k: v for k, v in json.loads(value).items() if v != []}
        else:
            params[key] = value
    return params


CSR_TEXT = "-----BEGIN CERTIFICATE REQUEST-----\nMIIBcsr\n-----END CERTIFICATE REQUEST-----\n"
CA_TEXT = "-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n"
SEED_RULE = '(http.host eq "api.example.com" and not tls.client_auth.cert_verified)'

SDKCall = Callable[[Any, Any], object]  # (esa models module, SDK client) -> response

EQUIVALENCES: list[tuple[str, list[str], SDKCall]] = [
    (
        "sites create",
        ["sites", "create", "--name", "example.com"],
        lambda m, c: c.create_site(
            m.CreateSiteRequest(
                site_name="example.com", access_type="NS", coverage="global", instance_id="inst-1"
            )
        ),
    ),
    (
        "sites list",
        ["sites", "list", "--name", "ex", "--search", "prefix", "--page", "2", "--page-size", "5"],
        lambda m, c: c.list_sites(
            m.ListSitesRequest(site_name="ex", site_search_type="prefix", page_number=2, page_size=5)
        ),
    ),
    ("sites get", ["sites", "get", "77"], lambda m, c: c.get_site(m.GetSiteRequest(site_id=77))),
    ("sites delete", ["sites", "delete", "77"], lambda m, c: c.delete_site(m.DeleteSiteRequest(site_id=77))),
    (
        "records create",
        ["records", "create", "--site-id", "77", "--name", "api.example.com", "--value", "127.0.0.1"],
        lambda m, c: c.create_record(
            m.CreateRecordRequest(
                site_id=77,
                record_name="api.example.com",
                type="A/AAAA",
                ttl=1,
                data=m.CreateRecordRequestData(value="127.0.0.1"),
                proxied=True,
                biz_name="web",
            )
        ),
    ),
    (
        "records create --no-proxied",
        [
            "records",
            "create",
            "--site-id",
            "77",
            "--name",
            "t.example.com",
            "--type",
            "TXT",
            "--value",
            "v=1",
            "--no-proxied",
            "--ttl",
            "600",
            "--comment",
            "hello world",
        ],
        lambda m, c: c.create_record(
            m.CreateRecordRequest(
                site_id=77,
                record_name="t.example.com",
                type="TXT",
                ttl=600,
                data=m.CreateRecordRequestData(value="v=1"),
                proxied=False,
                comment="hello world",
            )
        ),
    ),
    (
        "records list",
        ["records", "list", "--site-id", "77"],
        lambda m, c: c.list_records(m.ListRecordsRequest(site_id=77, page_number=1, page_size=20)),
    ),
    (
        "records delete",
        ["records", "delete", "9"],
        lambda m, c: c.delete_record(m.DeleteRecordRequest(record_id=9)),
    ),
    (
        "certs create (key)",
        ["certs", "create", "--site-id", "77", "--key-type", "ecdsa", "--validity-days", "30"],
        lambda m, c: c.create_client_certificate(
            m.CreateClientCertificateRequest(site_id=77, pkey_type="ECDSA", validity_days=30)
        ),
    ),
    (
        "certs create (default)",
        ["certs", "create", "--site-id", "77"],
        lambda m, c: c.create_client_certificate(
            m.CreateClientCertificateRequest(site_id=77, pkey_type="RSA", validity_days=365)
        ),
    ),
    (
        "certs create (csr)",
        ["certs", "create", "--site-id", "77", "--csr", "{csr}"],
        lambda m, c: c.create_client_certificate(
            m.CreateClientCertificateRequest(site_id=77, csr=CSR_TEXT, validity_days=365)
        ),
    ),
    (
        "certs list",
        ["certs", "list", "--site-id", "77"],
        lambda m, c: c.list_client_certificates(
            m.ListClientCertificatesRequest(site_id=77, page_number=1, page_size=20)
        ),
    ),
    (
        "certs get",
        ["certs", "get", "--site-id", "77", "abc"],
        lambda m, c: c.get_client_certificate(m.GetClientCertificateRequest(site_id=77, id="abc")),
    ),
    (
        "certs revoke",
        ["certs", "revoke", "--site-id", "77", "abc"],
        lambda m, c: c.revoke_client_certificate(m.RevokeClientCertificateRequest(site_id=77, id="abc")),
    ),
    (
        "certs activate",
        ["certs", "activate", "--site-id", "77", "abc"],
        lambda m, c: c.activate_client_certificate(m.ActivateClientCertificateRequest(site_id=77, id="abc")),
    ),
    (
        "certs delete",
        ["certs", "delete", "--site-id", "77", "abc"],
        lambda m, c: c.delete_client_certificate(m.DeleteClientCertificateRequest(site_id=77, id="abc")),
    ),
    (
        "cas upload",
        ["cas", "upload", "--site-id", "77", "--file", "{ca}", "--name", "corp ca"],
        lambda m, c: c.upload_client_ca_certificate(
            m.UploadClientCaCertificateRequest(site_id=77, certificate=CA_TEXT, name="corp ca")
        ),
    ),
    (
        "cas list",
        ["cas", "list", "--site-id", "77"],
        lambda m, c: c.list_client_ca_certificates(
            m.ListClientCaCertificatesRequest(site_id=77, page_number=1, page_size=20)
        ),
    ),
    (
        "cas get",
        ["cas", "get", "--site-id", "77", "ca1"],
        lambda m, c: c.get_client_ca_certificate(m.GetClientCaCertificateRequest(site_id=77, id="ca1")),
    ),
    (
        "cas delete",
        ["cas", "delete", "--site-id", "77", "ca1"],
        lambda m, c: c.delete_client_ca_certificate(m.DeleteClientCaCertificateRequest(site_id=77, id="ca1")),
    ),
    (
        "hostnames set (managed CA)",
        ["hostnames", "set", "--site-id", "77", "api.example.com", "www.example.com"],
        lambda m, c: c.set_client_ca_certificate_hostnames(
            m.SetClientCaCertificateHostnamesRequest(
                site_id=77, hostnames=["api.example.com", "www.example.com"]
            )
        ),
    ),
    (
        "hostnames set --clear (custom CA)",
        ["hostnames", "set", "--site-id", "77", "--ca-id", "ca1", "--clear"],
        lambda m, c: c.set_client_ca_certificate_hostnames(
            m.SetClientCaCertificateHostnamesRequest(site_id=77, id="ca1", hostnames=[])
        ),
    ),
    (
        "hostnames get",
        ["hostnames", "get", "--site-id", "77", "--ca-id", "ca1"],
        lambda m, c: c.get_client_ca_certificate_hostnames(
            m.GetClientCaCertificateHostnamesRequest(site_id=77, id="ca1")
        ),
    ),
    (
        "waf create (seed rule)",
        ["waf", "create", "--site-id", "77", "--name", "mtls", "--expression", SEED_RULE, "--action", "deny"],
        lambda m, c: c.create_waf_rule(
            m.CreateWafRuleRequest(
                site_id=77,
                phase="http_custom",
                config=m.WafRuleConfig(name="mtls", expression=SEED_RULE, action="deny", status="on"),
            )
        ),
    ),
    (
        "waf list",
        ["waf", "list", "--site-id", "77", "--name-like", "mt ls"],
        lambda m, c: c.list_waf_rules(
            m.ListWafRulesRequest(
                site_id=77,
                phase="http_custom",
                page_number=1,
                page_size=20,
                query_args=m.ListWafRulesRequestQueryArgs(name_like="mt ls"),
            )
        ),
    ),
    (
        "waf get",
        ["waf", "get", "--site-id", "77", "2000001"],
        lambda m, c: c.get_waf_rule(m.GetWafRuleRequest(site_id=77, id=2000001)),
    ),
    (
        "waf update",
        ["waf", "update", "--site-id", "77", "2000001", "--status", "off", "--action", "monitor"],
        lambda m, c: c.update_waf_rule(
            m.UpdateWafRuleRequest(
                site_id=77, id=2000001, status="off", config=m.WafRuleConfig(action="monitor")
            )
        ),
    ),
    (
        "waf delete",
        ["waf", "delete", "--site-id", "77", "2000001"],
        lambda m, c: c.delete_waf_rule(m.DeleteWafRuleRequest(site_id=77, id=2000001)),
    ),
    (
        "origin-rules create",
        [
            "origin-rules",
            "create",
            "--site-id",
            "77",
            "--name",
            "to-8443",
            "--expression",
            '(http.host eq "api.example.com")',
            "--origin-scheme",
            "https",
            "--origin-https-port",
            "8443",
            "--origin-host",
            "internal.example.com",
            "--origin-read-timeout",
            "30",
        ],
        lambda m, c: c.create_origin_rule(
            m.CreateOriginRuleRequest(
                site_id=77,
                rule_name="to-8443",
                rule='(http.host eq "api.example.com")',
                rule_enable="on",
                origin_scheme="https",
                origin_https_port="8443",
                origin_host="internal.example.com",
                origin_read_timeout="30",
            )
        ),
    ),
    (
        "origin-rules list",
        ["origin-rules", "list", "--site-id", "77"],
        lambda m, c: c.list_origin_rules(m.ListOriginRulesRequest(site_id=77, page_number=1, page_size=20)),
    ),
    (
        "origin-rules delete",
        ["origin-rules", "delete", "--site-id", "77", "5"],
        lambda m, c: c.delete_origin_rule(m.DeleteOriginRuleRequest(site_id=77, config_id=5)),
    ),
]


@pytest.mark.filterwarnings("ignore:datetime.datetime.utcnow:DeprecationWarning")  # inside the SDK
@pytest.mark.parametrize(
    ("argv", "sdk_call"), [(a, s) for _, a, s in EQUIVALENCES], ids=[n for n, _, _ in EQUIVALENCES]
)
def test_command_sends_what_the_sdk_sends(
    configured: CaptureServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    sdk_call: SDKCall,
) -> None:
    from alibabacloud_esa20240910 import models
    from alibabacloud_esa20240910.client import Client as SDKClient
    from alibabacloud_tea_openapi.models import Config

    (tmp_path / "req.csr").write_text(CSR_TEXT)
    (tmp_path / "ca.pem").write_text(CA_TEXT)
    argv = [a.format(csr=tmp_path / "req.csr", ca=tmp_path / "ca.pem") for a in argv]

    code, _, err = cli(argv, capsys)
    assert (code, err) == (0, "")
    ours = configured.last()

    sdk = SDKClient(
        Config(
            access_key_id=KEY_ID,
            access_key_secret=SECRET,
            endpoint=f"127.0.0.1:{configured.port}",
            protocol="http",
        )
    )
    sdk_call(models, sdk)
    theirs = configured.last()

    assert ours.method == theirs.method
    assert ours.header("x-acs-action") == theirs.header("x-acs-action")
    assert ours.header("x-acs-version") == theirs.header("x-acs-version") == "2024-09-10"
    assert ours.header("content-type") == theirs.header("content-type")
    assert _normalized(ours.raw_query) == _normalized(theirs.raw_query)
    assert _normalized(ours.body.decode()) == _normalized(theirs.body.decode())


# -- configure ---------------------------------------------------------------------------------


def test_configure_writes_a_private_profile_and_never_echoes_the_secret(
    isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(
        [
            "configure",
            "--endpoint",
            "http://127.0.0.1:8080",
            "--access-key-id",
            KEY_ID,
            "--access-key-secret",
            SECRET,
            "--instance-id",
            "inst-1",
        ],
        capsys,
    )
    assert code == 0 and err == ""
    assert SECRET not in out and KEY_ID in out and str(isolated_env) in out
    assert stat.S_IMODE(isolated_env.stat().st_mode) == 0o600
    saved = json.loads(isolated_env.read_text())
    assert saved["access_key_secret"] == SECRET and saved["instance_id"] == "inst-1"

    # Updating one field keeps the others; --show never shows the secret.
    assert cli(["configure", "--endpoint", "http://127.0.0.1:9090"], capsys)[0] == 0
    assert json.loads(isolated_env.read_text())["access_key_secret"] == SECRET
    code, out, _ = cli(["configure", "--show"], capsys)
    assert code == 0 and "http://127.0.0.1:9090" in out and "(set)" in out and SECRET not in out


def test_configure_reads_the_secret_from_stdin(
    isolated_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET + "\n"))
    code, out, _ = cli(
        ["configure", "--endpoint", "http://h:1", "--access-key-id", KEY_ID, "--access-key-secret", "-"],
        capsys,
    )
    assert code == 0 and SECRET not in out
    assert json.loads(isolated_env.read_text())["access_key_secret"] == SECRET


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["configure", "--endpoint", "http://h:1"],
            "configure: missing --access-key-id, --access-key-secret",
        ),
        (
            ["configure", "--endpoint", "http://h/x", "--access-key-id", "a", "--access-key-secret", "b"],
            "must be scheme://host[:port] with no path",
        ),
    ],
)
def test_configure_usage_errors_are_one_line_exit_2(
    isolated_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: no prompt
    code, out, err = cli(argv, capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("certgate: error: ") and message in err
    assert not isolated_env.exists()


# -- errors: one line, right exit status ------------------------------------------------------------


def test_api_error_is_one_line_with_the_esa_code(
    configured: CaptureServer, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.status = 400
    configured.reply = {
        "RequestId": "R",
        "Code": "InvalidParameter.CSR",
        "Message": "the CSR is not valid PEM:\nline 3",
    }
    code, out, err = cli(["certs", "revoke", "--site-id", "1", "x"], capsys)
    assert (code, out) == (1, "")
    assert err == "certgate: error: InvalidParameter.CSR: the CSR is not valid PEM: line 3\n"


def test_network_error_is_one_line(isolated_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    write_file(
        isolated_env, Profile(endpoint=f"http://127.0.0.1:{port}", access_key_id="a", access_key_secret="b")
    )
    code, out, err = cli(["sites", "list"], capsys)
    assert (code, out) == (1, "")
    assert err.startswith(f"certgate: error: cannot reach http://127.0.0.1:{port}: ") and err.count("\n") == 1


def test_missing_profile_is_a_usage_error(isolated_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(["sites", "list"], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("certgate: error: no endpoint, access_key_id, access_key_secret configured")
    assert err.count("\n") == 1


def test_environment_alone_is_enough(
    isolated_env: Path,
    capture: CaptureServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CERTGATE_ENDPOINT", capture.endpoint)
    monkeypatch.setenv("CERTGATE_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("CERTGATE_ACCESS_KEY_SECRET", SECRET)
    assert cli(["sites", "list"], capsys)[0] == 0
    assert f"Credential={KEY_ID}," in (capture.last().header("authorization") or "")


def test_argparse_errors_are_one_line_exit_2(
    configured: CaptureServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(["certs", "create", "--site-id", "1", "--csr", "x", "--key-type", "RSA"], capsys)
    assert (code, out) == (2, "")
    assert err == (
        "certgate: error: certs create: argument --key-type: not allowed with argument --csr "
        "(see 'certgate certs create --help')\n"
    )
    code, _, err = cli(["hostnames", "get"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--site-id" in err
    assert configured.requests == []


def test_profile_readable_by_others_draws_a_warning(
    configured: CaptureServer, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    isolated_env.chmod(0o644)
    code, _, err = cli(["sites", "list"], capsys)
    assert code == 0 and "certgate: warning: profile" in err and "chmod 600" in err


# -- output --------------------------------------------------------------------------------------


def test_list_prints_a_table_and_json_prints_the_response(
    configured: CaptureServer, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.reply = {
        "RequestId": "R",
        "PageNumber": 1,
        "PageSize": 1,
        "TotalCount": 2,
        "Result": [
            {
                "Id": "c1",
                "Status": "active",
                "CommonName": "alice",
                "PubkeyAlgorithm": "ECDSA",
                "NotBefore": "2026-01-01 00:00:00",
                "NotAfter": "2027-01-01 00:00:00",
            }
        ],
    }
    code, out, err = cli(["certs", "list", "--site-id", "1", "--page-size", "1"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["Id", "Status", "CommonName", "Key", "NotBefore", "NotAfter"]
    assert lines[1].split()[:4] == ["c1", "active", "alice", "ECDSA"]
    assert err == "showing 1 of 2; next page: --page 2\n"

    code, out, err = cli(["certs", "list", "--site-id", "1", "--json"], capsys)
    assert code == 0 and err == "" and json.loads(out) == configured.reply


def test_hostnames_output_names_the_ca(configured: CaptureServer, capsys: pytest.CaptureFixture[str]) -> None:
    configured.reply = {"RequestId": "R", "SiteId": 1, "Hostnames": ["api.example.com"]}
    code, out, _ = cli(["hostnames", "get", "--site-id", "1"], capsys)
    assert code == 0 and out == "Hostnames bound to the managed CA:\n  api.example.com\n"
    configured.reply = {"RequestId": "R", "SiteId": 1, "Id": "ca1", "Hostnames": []}
    code, out, _ = cli(["hostnames", "set", "--site-id", "1", "--ca-id", "ca1", "--clear"], capsys)
    assert code == 0 and out == "No hostnames are bound to client CA ca1.\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["hostnames", "set", "--site-id", "1"], "give at least one hostname, or --clear"),
        (["hostnames", "set", "--site-id", "1", "--clear", "a.example.com"], "not both"),
        (["waf", "update", "--site-id", "1", "5"], "nothing to change"),
        (["certs", "create", "--site-id", "1", "--csr", "/nonexistent/req.csr"], "cannot read CSR file"),
    ],
)
def test_semantic_usage_errors_send_nothing(
    configured: CaptureServer, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = cli(argv, capsys)
    assert (code, out) == (2, "")
    assert err.startswith("certgate: error: ") and message in err and err.count("\n") == 1
    assert configured.requests == []


def test_sites_create_needs_an_instance_id(
    isolated_env: Path, capture: CaptureServer, capsys: pytest.CaptureFixture[str]
) -> None:
    write_file(isolated_env, Profile(endpoint=capture.endpoint, access_key_id="a", access_key_secret="b"))
    code, _, err = cli(["sites", "create", "--name", "example.com"], capsys)
    assert code == 2 and "--instance-id is required" in err and capture.requests == []


# -- certificates and the one-time private key ---------------------------------------------------------


def _issued(with_key: bool) -> dict[str, object]:
    reply: dict[str, object] = {
        "RequestId": "R",
        "Id": "babacafe",
        "Status": "active",
        "Certificate": CERT_PEM,
        "CommonName": "client",
        "SerialNumber": "0a",
        "ValidityDays": "365",
    }
    if with_key:
        reply["PrivateKey"] = KEY_PEM
    return reply


def test_generated_key_goes_to_a_0600_file_and_nowhere_else(
    configured: CaptureServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.reply = _issued(with_key=True)
    cert, key = tmp_path / "c.pem", tmp_path / "c.key"
    code, out, err = cli(
        [
            "certs",
            "create",
            "--site-id",
            "1",
            "--key-type",
            "RSA4096",
            "--out-cert",
            str(cert),
            "--out-key",
            str(key),
        ],
        capsys,
    )
    assert (code, err) == (0, "")
    assert key.read_text() == KEY_PEM and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert cert.read_text() == CERT_PEM
    assert "PRIVATE KEY" not in out and "BEGIN CERTIFICATE" not in out
    assert f"Private key written to {key} (mode 0600)" in out

    # --json with --out-key: the response minus the key that went to the file.
    key.unlink()
    code, out, err = cli(["certs", "create", "--site-id", "1", "--out-key", str(key), "--json"], capsys)
    assert code == 0 and err == ""
    shown = json.loads(out)
    assert "PrivateKey" not in shown and shown["Certificate"] == CERT_PEM


def test_generated_key_without_out_key_is_printed_once_with_a_warning(
    configured: CaptureServer, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.reply = _issued(with_key=True)
    code, out, err = cli(["certs", "create", "--site-id", "1"], capsys)
    assert code == 0
    assert out.count(KEY_PEM.strip()) == 1 and CERT_PEM.strip() in out
    assert err.startswith("certgate: warning: this private key is shown ONCE")

    code, out, err = cli(["certs", "create", "--site-id", "1", "--json"], capsys)
    assert code == 0 and json.loads(out)["PrivateKey"] == KEY_PEM and "shown ONCE" in err


def test_csr_issuance_prints_no_key_warning(
    configured: CaptureServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.reply = _issued(with_key=False)
    csr = tmp_path / "r.csr"
    csr.write_text(CSR_TEXT)
    code, out, err = cli(["certs", "create", "--site-id", "1", "--csr", str(csr)], capsys)
    assert (code, err) == (0, "")
    assert "Id:" in out and "babacafe" in out and CERT_PEM.strip() in out and "PRIVATE" not in out


def test_existing_key_file_is_never_overwritten_and_nothing_is_issued(
    configured: CaptureServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "c.key"
    key.write_text("precious")
    code, _, err = cli(["certs", "create", "--site-id", "1", "--out-key", str(key)], capsys)
    assert code == 2 and "already exists" in err
    assert key.read_text() == "precious" and configured.requests == []

    code, _, err = cli(
        ["certs", "create", "--site-id", "1", "--csr", "x", "--out-key", str(tmp_path / "n")], capsys
    )
    assert code == 2 and "--out-key only applies to a server-generated key" in err


def test_unwritable_key_file_prints_the_key_instead_of_losing_it(
    configured: CaptureServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import certgate.cli.resources as resources

    def refuse(path: str, text: str) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(resources, "write_private_file", refuse)
    configured.reply = _issued(with_key=True)
    code, out, err = cli(["certs", "create", "--site-id", "1", "--out-key", str(tmp_path / "k")], capsys)
    assert code == 1
    assert KEY_PEM.strip() in out
    assert "cannot write" in err and "printing the key instead" in err and "shown ONCE" in err


def test_get_can_write_the_certificate(
    configured: CaptureServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.reply = {
        "RequestId": "R",
        "Certificate": CERT_PEM,
        "Result": {"Id": "c1", "Status": "revoked"},
    }
    out_file = tmp_path / "got.pem"
    code, out, _ = cli(["certs", "get", "--site-id", "1", "c1", "--out-cert", str(out_file)], capsys)
    assert code == 0 and out_file.read_text() == CERT_PEM
    assert "revoked" in out and f"Certificate written to {out_file}" in out


def test_no_command_output_ever_contains_the_access_key_secret(
    configured: CaptureServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.reply = _issued(with_key=False)
    for argv in (["sites", "list"], ["certs", "list", "--site-id", "1"], ["configure", "--show"]):
        _, out, err = cli(argv, capsys)
        assert SECRET not in out + err
    assert os.environ.get("CERTGATE_ACCESS_KEY_SECRET") is None
