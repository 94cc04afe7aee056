"""SetCertificate (Type=upload) through the official SDK."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pytest
from alibabacloud_esa20240910 import models as esa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certgate.services.publishing import SnapshotPublisher
from certgate.snapshot import decode_snapshot


def server_cert(
    api: Any, names: list[str], *, days: int = 90, start_offset: int = -1
) -> tuple[str, str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = api.clock.now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=start_offset))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert_pem, key_pem, cert


def set_cert(tenant: Any, **kw: Any) -> Any:
    values: dict[str, Any] = {"site_id": tenant.site_id, "type": "upload", "name": "edge"}
    values.update(kw)
    return tenant.client.set_certificate(esa.SetCertificateRequest(**values))


def test_upload_installs_on_covered_records(api: Any) -> None:
    tenant = api.tenant("edge-owner", "edge.example", ("a.edge.example", "b.edge.example"))
    cert_pem, key_pem, cert = server_cert(api, ["a.edge.example"])
    response = set_cert(tenant, certificate=cert_pem, private_key=key_pem)
    body = api.raw_json(response)
    assert body["Id"] == hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    snapshot = decode_snapshot(SnapshotPublisher(api.ctx).current()[1])
    assert snapshot.hosts["a.edge.example"].certificate.uploaded is True
    assert snapshot.hosts["a.edge.example"].certificate.chain_pem.startswith(cert_pem.strip().splitlines()[0])
    assert snapshot.hosts["b.edge.example"].certificate.uploaded is False  # not covered: automatic one stays


@pytest.mark.parametrize(
    "case, code",
    [
        ("cas", "InvalidParameter.Type"),
        ("no-key", "MissingPrivateKey"),
        ("no-cert", "MissingCertificate"),
        ("mismatch", "Certificate.KeyMismatch"),
        ("foreign", "Certificate.HostnameMismatch"),
        ("expired", "Certificate.Expired"),
        ("garbage", "InvalidParameter.Certificate"),
        ("bad-key", "InvalidParameter.PrivateKey"),
        ("cas-id", "InvalidParameter.CasId"),
    ],
)
def test_set_certificate_errors(api: Any, expect_error: Any, case: str, code: str) -> None:
    cert_pem, key_pem, _ = server_cert(api, ["api.example.com"])
    foreign_pem, foreign_key, _ = server_cert(api, ["nope.example.net"])
    expired_pem, expired_key, _ = server_cert(api, ["api.example.com"], days=-1, start_offset=-30)
    unrelated_key = server_cert(api, ["api.example.com"])[1]
    bad_key = "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n"
    garbage = "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n"
    kwargs: dict[str, Any] = {
        "cas": {"type": "cas", "certificate": cert_pem, "private_key": key_pem},
        "no-key": {"certificate": cert_pem},
        "no-cert": {"private_key": key_pem},
        "mismatch": {"certificate": cert_pem, "private_key": unrelated_key},
        "foreign": {"certificate": foreign_pem, "private_key": foreign_key},
        "expired": {"certificate": expired_pem, "private_key": expired_key},
        "garbage": {"certificate": garbage, "private_key": key_pem},
        "bad-key": {"certificate": cert_pem, "private_key": bad_key},
        "cas-id": {"certificate": cert_pem, "private_key": key_pem, "cas_id": 7},
    }[case]
    before = api.ctx.store.current_version()
    expect_error(lambda: set_cert(api.alice, **kwargs), code, 400)
    assert api.ctx.store.current_version() == before


def test_missing_type_and_site(api: Any, expect_error: Any) -> None:
    cert_pem, key_pem, _ = server_cert(api, ["api.example.com"])
    expect_error(
        lambda: api.alice.client.set_certificate(
            esa.SetCertificateRequest(site_id=api.alice.site_id, certificate=cert_pem, private_key=key_pem)
        ),
        "MissingType",
        400,
    )
    expect_error(
        lambda: api.alice.client.set_certificate(
            esa.SetCertificateRequest(type="upload", certificate=cert_pem, private_key=key_pem)
        ),
        "MissingSiteId",
        400,
    )
