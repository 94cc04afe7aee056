"""Custom client CAs: upload rules, plan quota, duplicates, binding and deletion (PRODUCT §3)."""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certgate.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, QuotaExceeded
from certgate.services import ca_certificates as cas


def make_ca(
    cn: str = "Partner Root",
    *,
    ca: bool = True,
    not_before: dt.datetime | None = None,
    days: int = 365,
    algorithm: hashes.HashAlgorithm | None = None,
) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    nb = not_before or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(nb)
        .not_valid_after(nb + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, algorithm or hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def sha1_ca() -> str:
    """cryptography refuses to sign with SHA-1, so the openssl CLI makes this one."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-sha1",
                "-nodes",
                "-subj",
                "/CN=Legacy SHA-1 Root",
                "-days",
                "365",
                "-keyout",
                f"{tmp}/k.pem",
                "-out",
                f"{tmp}/c.pem",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
            ],
            check=True,
            capture_output=True,
        )
        return Path(tmp, "c.pem").read_text()


def test_upload_get_list_delete(world) -> None:
    ctx = world.ctx
    ca = cas.upload_ca_certificate(ctx, world.account, world.site, certificate_pem=make_ca(), name="partners")
    assert ca.name == "partners" and ca.cert.common_name == "Partner Root"
    assert cas.get_ca_certificate(ctx, world.account, world.site, ca.id)[1].id == ca.id
    assert cas.list_ca_certificates(ctx, world.account, world.site)[2] == 1
    cas.delete_ca_certificate(ctx, world.account, world.site, ca.id)
    with pytest.raises(NotFound):
        cas.get_ca_certificate(ctx, world.account, world.site, ca.id)


def test_sixth_ca_exceeds_the_plan(world) -> None:
    ctx = world.ctx
    for i in range(5):
        cas.upload_ca_certificate(ctx, world.account, world.site, certificate_pem=make_ca(f"CA {i}"))
    version = ctx.store.current_version()
    with pytest.raises(QuotaExceeded) as err:
        cas.upload_ca_certificate(ctx, world.account, world.site, certificate_pem=make_ca("CA 6"))
    assert err.value.reason == "ca.quota_exceeded"
    assert ctx.store.current_version() == version
    assert cas.list_ca_certificates(ctx, world.account, world.site)[2] == 5


def test_duplicate_ca_is_refused(world) -> None:
    pem = make_ca()
    cas.upload_ca_certificate(world.ctx, world.account, world.site, certificate_pem=pem)
    with pytest.raises(AlreadyExists) as err:
        cas.upload_ca_certificate(world.ctx, world.account, world.site, certificate_pem=pem)
    assert err.value.reason == "ca.duplicate"


@pytest.mark.parametrize(
    "pem_factory,reason",
    [
        (lambda: make_ca(ca=False), "ca.not_a_ca"),
        (lambda: make_ca(not_before=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), days=30), "ca.expired"),
        (lambda: sha1_ca(), "ca.weak_signature"),
        (lambda: make_ca("one") + make_ca("two"), "ca.multiple_certificates"),
        (lambda: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "ca.malformed"),
    ],
)
def test_bad_uploads_are_refused_and_change_nothing(world, pem_factory, reason: str) -> None:
    pem = pem_factory()
    if reason == "ca.weak_signature":  # openssl signed it just now, with the real clock
        world.clock.set(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    version = world.ctx.store.current_version()
    with pytest.raises(InvalidArgument) as err:
        cas.upload_ca_certificate(world.ctx, world.account, world.site, certificate_pem=pem)
    assert err.value.reason == reason
    assert world.ctx.store.current_version() == version


def test_bound_ca_cannot_be_deleted(world) -> None:
    ctx = world.ctx
    ca = cas.upload_ca_certificate(ctx, world.account, world.site, certificate_pem=make_ca())
    cas.set_hostnames(ctx, world.account, world.site, ca.id, ["api.example.com"])
    with pytest.raises(Conflict) as err:
        cas.delete_ca_certificate(ctx, world.account, world.site, ca.id)
    assert err.value.reason == "ca.still_bound" and "api.example.com" in err.value.message
    cas.set_hostnames(ctx, world.account, world.site, ca.id, [])
    cas.delete_ca_certificate(ctx, world.account, world.site, ca.id)


def test_other_accounts_cannot_see_or_bind_a_ca(world) -> None:
    ctx = world.ctx
    ca = cas.upload_ca_certificate(ctx, world.account, world.site, certificate_pem=make_ca())
    with pytest.raises(NotFound):
        cas.get_ca_certificate(ctx, world.other_account, world.other_site, ca.id)
    with pytest.raises(NotFound):
        cas.set_hostnames(ctx, world.other_account, world.other_site, ca.id, ["api.other.org"])
    with pytest.raises(NotFound):
        cas.delete_ca_certificate(ctx, world.other_account, world.site, ca.id)
