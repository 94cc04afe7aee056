"""Issuing, listing and the status machine of client certificates (PRODUCT §2)."""

from __future__ import annotations

import base64
import ipaddress
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tests.services.conftest import START, make_context, populate

from certgate.clock import FixedClock
from certgate.errors import Conflict, InvalidArgument, NotFound
from certgate.ids import CertificateId, SiteId
from certgate.model import CertificateStatus, ClientCertificate
from certgate.pki.keys import KeyType, PrivateKey, generate_private_key
from certgate.services import certificates as certs

KEY_TYPES = ["RSA", "RSA3072", "RSA4096", "ECDSA", "ECDSA384"]


def _csr(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, cn: str = "device-1") -> str:
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("device-1.example.com")]), critical=False)
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_server_made_key_matches_certificate_and_profile(world, key_type: str) -> None:
    issued = certs.issue_client_certificate(
        world.ctx, world.account, world.site, validity_days=365, key_type=key_type
    )
    assert issued.private_key_pem is not None
    cert = x509.load_pem_x509_certificate(issued.certificate.cert.certificate_pem.encode())
    key = serialization.load_pem_private_key(issued.private_key_pem.encode(), None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(serialization.Encoding.DER, spki) == cert.public_key().public_bytes(
        serialization.Encoding.DER, spki
    )
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert issued.certificate.status is CertificateStatus.ACTIVE
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days >= 365


def test_csr_path_returns_no_key_and_keeps_subject(world) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    issued = certs.issue_client_certificate(
        world.ctx, world.account, world.site, validity_days=30, csr_pem=_csr(key)
    )
    assert issued.private_key_pem is None
    assert issued.certificate.cert.common_name == "device-1"
    assert "device-1.example.com" in issued.certificate.cert.san


_KEYS: dict[KeyType, PrivateKey] = {}


def _key(kt: KeyType) -> PrivateKey:
    """One key per type for this module (RSA-4096 takes a second or more to make)."""
    if kt not in _KEYS:
        _KEYS[kt] = generate_private_key(kt)
    return _KEYS[kt]


def test_stored_and_returned_summaries_equal_describe_for_every_key_type_and_path(
    world, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issuance summarises the new certificate from what it built (``IssuedCertificate.facts``);
    what it returns and what the store keeps must be what describing the certificate gives."""
    monkeypatch.setattr("certgate.services.certificates.generate_private_key", _key)
    odd = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example, Inc."),
            x509.NameAttribute(NameOID.COMMON_NAME, "Zoë #1"),
            x509.NameAttribute(NameOID.COMMON_NAME, "second+cn"),
        ]
    )
    sans = x509.SubjectAlternativeName(
        [
            x509.DNSName("d.example"),
            x509.IPAddress(ipaddress.ip_address("192.0.2.1")),
            x509.RFC822Name("a@b.c"),
        ]
    )
    empty_subject_csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(sans, critical=True)
        .sign(_key(KeyType.ECDSA_P256), hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    odd_csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(odd)
        .add_extension(sans, critical=False)
        .sign(_key(KeyType.RSA2048), hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    issued = [
        certs.issue_client_certificate(world.ctx, world.account, world.site, validity_days=90, key_type=name)
        for name in KEY_TYPES
    ]
    csrs = [_csr(_key(kt)) for kt in KeyType] + [empty_subject_csr, odd_csr]
    issued += [
        certs.issue_client_certificate(world.ctx, world.account, world.site, validity_days=90, csr_pem=pem)
        for pem in csrs
    ]
    assert len(issued) == 2 * len(KeyType) + 2
    for one in issued:
        record = one.certificate
        described = certs.summarize(x509.load_pem_x509_certificate(record.cert.certificate_pem.encode()))
        assert record.cert == described
        _, stored = certs.get_client_certificate(world.ctx, world.account, world.site, record.id)
        assert stored == record


@pytest.mark.parametrize("days,ok", [(0, False), (1, True), (3650, True), (3651, False)])
def test_validity_bounds(world, days: int, ok: bool) -> None:
    if ok:
        certs.issue_client_certificate(
            world.ctx, world.account, world.site, validity_days=days, key_type="ECDSA"
        )
    else:
        with pytest.raises(InvalidArgument) as err:
            certs.issue_client_certificate(
                world.ctx, world.account, world.site, validity_days=days, key_type="ECDSA"
            )
        assert err.value.reason == "validity.out_of_range"
        assert certs.list_client_certificates(world.ctx, world.account, world.site)[2] == 0


def test_needs_a_key_source(world) -> None:
    with pytest.raises(InvalidArgument) as err:
        certs.issue_client_certificate(world.ctx, world.account, world.site, validity_days=30)
    assert err.value.reason == "certificate.no_key_source"


def test_unknown_key_type(world) -> None:
    with pytest.raises(InvalidArgument) as err:
        certs.issue_client_certificate(world.ctx, world.account, world.site, validity_days=30, key_type="DSA")
    assert err.value.reason == "key.unsupported_type"


def _bad_csr_cases() -> list[tuple[str, str]]:
    rsa1024 = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    k1 = ec.generate_private_key(ec.SECP256K1())
    good = _csr(ec.generate_private_key(ec.SECP256R1()))
    der = bytearray(x509.load_pem_x509_csr(good.encode()).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF  # inside the signature
    tampered = (
        "-----BEGIN CERTIFICATE REQUEST-----\n"
        + base64.encodebytes(bytes(der)).decode()
        + "-----END CERTIFICATE REQUEST-----\n"
    )
    return [
        (
            "-----BEGIN CERTIFICATE REQUEST-----\nnot base64!\n-----END CERTIFICATE REQUEST-----\n",
            "csr.malformed",
        ),
        (tampered, "csr.bad_signature"),
        (_csr(rsa1024), "key.rsa_too_small"),
        (_csr(k1), "key.unsupported_curve"),
        (
            "-----BEGIN CERTIFICATE REQUEST-----\n" + "A" * 70_000 + "\n-----END CERTIFICATE REQUEST-----\n",
            "csr.too_large",
        ),
    ]


def test_bad_csrs_are_refused_with_distinct_reasons_and_change_nothing(world) -> None:
    version = world.ctx.store.current_version()
    reasons = []
    for pem, reason in _bad_csr_cases():
        with pytest.raises(InvalidArgument) as err:
            certs.issue_client_certificate(
                world.ctx, world.account, world.site, validity_days=30, csr_pem=pem
            )
        assert err.value.reason == reason, (reason, err.value)
        reasons.append(err.value.reason)
    assert len(set(reasons)) == len(reasons)
    assert world.ctx.store.current_version() == version
    assert certs.list_client_certificates(world.ctx, world.account, world.site)[2] == 0


def test_certificate_where_a_csr_is_expected(world) -> None:
    issued = certs.issue_client_certificate(
        world.ctx, world.account, world.site, validity_days=30, key_type="ECDSA"
    )
    with pytest.raises(InvalidArgument) as err:
        certs.issue_client_certificate(
            world.ctx,
            world.account,
            world.site,
            validity_days=30,
            csr_pem=issued.certificate.cert.certificate_pem,
        )
    assert err.value.reason == "csr.is_certificate"


def test_status_machine(world) -> None:
    ctx, acct, site = world.ctx, world.account, world.site
    cid = certs.issue_client_certificate(ctx, acct, site, validity_days=30, key_type="ECDSA").certificate.id

    def refused(fn) -> None:  # type: ignore[no-untyped-def]
        version = ctx.store.current_version()
        with pytest.raises(Conflict) as err:
            fn(ctx, acct, site, cid)
        assert err.value.reason == "certificate.status"
        assert ctx.store.current_version() == version

    refused(certs.activate_client_certificate)  # active -> activate: refused
    refused(certs.delete_client_certificate)  # active -> delete: refused
    assert certs.revoke_client_certificate(ctx, acct, site, cid)[1].status is CertificateStatus.REVOKED
    refused(certs.revoke_client_certificate)  # revoked -> revoke: refused
    assert certs.activate_client_certificate(ctx, acct, site, cid)[1].status is CertificateStatus.ACTIVE
    certs.revoke_client_certificate(ctx, acct, site, cid)
    certs.delete_client_certificate(ctx, acct, site, cid)
    with pytest.raises(NotFound):
        certs.get_client_certificate(ctx, acct, site, cid)


def test_revocation_outlives_deletion(world) -> None:
    ctx, acct, site = world.ctx, world.account, world.site
    issued = certs.issue_client_certificate(ctx, acct, site, validity_days=30, key_type="ECDSA").certificate
    certs.revoke_client_certificate(ctx, acct, site, issued.id)
    certs.delete_client_certificate(ctx, acct, site, issued.id)
    with ctx.store.transaction() as tx:
        serials = {(r.authority_id, r.serial_hex) for r in tx.list_revoked_serials()}
    assert (issued.authority_id, issued.cert.serial_hex) in serials


def test_other_accounts_ids_look_missing(world) -> None:
    ctx = world.ctx
    cid = certs.issue_client_certificate(
        ctx, world.account, world.site, validity_days=30, key_type="ECDSA"
    ).certificate.id
    for fn in (certs.get_client_certificate, certs.revoke_client_certificate):
        with pytest.raises(NotFound):
            fn(ctx, world.other_account, world.site, cid)
        with pytest.raises(NotFound):
            fn(ctx, world.other_account, world.other_site, cid)
    with pytest.raises(NotFound):
        certs.issue_client_certificate(
            ctx, world.other_account, world.site, validity_days=30, key_type="ECDSA"
        )
    with pytest.raises(NotFound):
        certs.get_client_certificate(ctx, world.account, world.site, CertificateId("0" * 32))


def test_list_pages_newest_first(world) -> None:
    ids = []
    for _ in range(5):
        ids.append(
            certs.issue_client_certificate(
                world.ctx, world.account, world.site, validity_days=30, key_type="ECDSA"
            ).certificate.id
        )
        world.clock.advance(1)
    _, page1, total = certs.list_client_certificates(world.ctx, world.account, world.site, page=1, size=2)
    _, page3, _ = certs.list_client_certificates(world.ctx, world.account, world.site, page=3, size=2)
    assert total == 5
    assert [c.id for c in page1] == ids[::-1][:2]
    assert [c.id for c in page3] == ids[:1]


def test_generated_private_key_is_never_stored(tmp_path: Path) -> None:
    """Issue with a server-made key, then search every byte under the data directory."""
    from certgate import bootstrap
    from certgate.services import accounts, sites
    from certgate.settings import ControlPlaneSettings

    settings = ControlPlaneSettings(data_dir=tmp_path / "data")
    ctx = bootstrap.initialize(settings)
    try:
        new = accounts.create_account(ctx, "alice")
        site = sites.create_site(
            ctx,
            new.account.id,
            name="example.com",
            access_type="NS",
            coverage="global",
            instance_id=new.account.instance_id,
        )
        keys = []
        for key_type in ("ECDSA", "RSA"):
            issued = certs.issue_client_certificate(
                ctx, new.account.id, site.id, validity_days=30, key_type=key_type
            )
            assert issued.private_key_pem
            keys.append(issued.private_key_pem)
    finally:
        ctx.store.close()
    blobs = b"".join(p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file())
    assert blobs  # the database and key files are there
    for pem in keys:
        key = serialization.load_pem_private_key(pem.encode(), None)
        der = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        body = "".join(pem.strip().splitlines()[1:-1])
        if isinstance(key, ec.EllipticCurvePrivateKey):
            secret = key.private_numbers().private_value
        else:
            assert isinstance(key, rsa.RSAPrivateKey)
            secret = key.private_numbers().d
        secret_bytes = secret.to_bytes((secret.bit_length() + 7) // 8, "big")
        for needle in (pem.encode(), der, body[:64].encode(), body[-64:].encode(), secret_bytes):
            assert needle not in blobs


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_concurrent_issuances_are_isolated_durable_and_gap_free(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Issuances from threads (concurrent API requests): SQLite commits several under one
    fsync (group commit), PostgreSQL one by one. Each caller gets its certificate back only once
    it is committed, a failing one (a site that does not exist) changes nothing, and the
    version moves by exactly one per certificate."""
    url = (
        f"sqlite:///{tmp_path / 'certgate.db'}"
        if kind == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    clock = FixedClock(START)
    ctx = make_context(url, clock)
    try:
        world = populate(ctx, clock)
        start = ctx.store.current_version()
        threads, each = 6, 12
        barrier = threading.Barrier(threads)
        issued: list[ClientCertificate] = []
        refused: list[NotFound] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def work() -> None:
            try:
                barrier.wait()
                for i in range(each):
                    if i % 4 == 3:
                        with pytest.raises(NotFound) as err:
                            certs.issue_client_certificate(
                                ctx, world.account, SiteId(987654321), validity_days=30, key_type="ECDSA"
                            )
                        with lock:
                            refused.append(err.value)
                        continue
                    record = certs.issue_client_certificate(
                        ctx, world.account, world.site, validity_days=30, key_type="ECDSA"
                    ).certificate
                    # committed before the caller hears of it: a reader on another connection sees it
                    assert (
                        certs.get_client_certificate(ctx, world.account, world.site, record.id)[1] == record
                    )
                    with lock:
                        issued.append(record)
            except BaseException as exc:
                with lock:
                    errors.append(exc)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert not errors, errors
        assert len(refused) == threads * 3 and len(issued) == threads * 9
        assert ctx.store.current_version() == start + len(issued)
        _, listed, total = certs.list_client_certificates(ctx, world.account, world.site, size=100)
        assert total == len(issued) and {c.id for c in listed} == {c.id for c in issued}
    finally:
        ctx.store.close()
