"""Real TLS handshakes against the edge's contexts: in memory (MemoryBIO) and on loopback (uvloop).

The PKI below is ECDSA P-256 and built once per module. Each client-certificate case is run on
TLS 1.2 and 1.3; the status is read the way the edge reads it (``peer_certificates`` →
``ClientAuthenticator``), so these tests cover the whole TLS-to-verdict path.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, cast

import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certgate.edge import _openssl, bundledtls, tls
from certgate.edge.clientauth import ClientAuthenticator
from certgate.edge.state import EdgeState
from certgate.edge.tls import (
    SNIRouter,
    TLSContextError,
    TLSContextFactory,
    TLSSelfCheckError,
    TLSSettings,
    peer_certificates,
)
from certgate.pki.authority import CertificateAuthority, create_certificate_authority
from certgate.pki.keys import KeyType, private_key_to_pem
from certgate.pki.pem import certificate_to_pem
from certgate.snapshot.format import (
    EdgeTLSCertificate,
    HostPolicy,
    OriginPolicy,
    SitePolicy,
    Snapshot,
    TrustAnchor,
)

UTC = dt.UTC
NOW = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
DAY = dt.timedelta(days=1)
VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]
DER = serialization.Encoding.DER


# ------------------------------------------------------------------------------------------------
# test PKI


@dataclass(frozen=True)
class Client:
    """A client identity: the chain it sends (leaf first) and its key."""

    chain: tuple[x509.Certificate, ...]
    key: ec.EllipticCurvePrivateKey

    @property
    def leaf_der(self) -> bytes:
        return self.chain[0].public_bytes(DER)

    def pem(self) -> bytes:
        return ("".join(certificate_to_pem(c) for c in self.chain) + private_key_to_pem(self.key)).encode()


def _raw_certificate(
    subject: str,
    *,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    ca: bool,
    not_before: dt.datetime,
    not_after: dt.datetime,
    eku: list[x509.ObjectIdentifier] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name = issuer[0].subject if issuer else name
    signer = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(eku or [ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(signer, hashes.SHA256()), key


def _issue(ca: CertificateAuthority, cn: str, *, at: dt.datetime, days: int) -> Client:
    issued = ca.issue_client_certificate(
        now=at, validity_days=days, key_type=KeyType.ECDSA_P256, common_name=cn
    )
    assert isinstance(issued.private_key, ec.EllipticCurvePrivateKey)
    return Client((issued.certificate,), issued.private_key)


@dataclass(frozen=True)
class PKI:
    managed: CertificateAuthority
    custom_root: x509.Certificate
    edge_certificates: dict[str, EdgeTLSCertificate]
    clients: dict[str, Client]

    def snapshot(self, *, version: int = 1, revoked: tuple[str, ...] = ()) -> Snapshot:
        anchors = {
            "managed": TrustAnchor(
                id="managed",
                kind="managed",
                certificate_pem=certificate_to_pem(self.managed.certificate),
                revoked_serials=revoked,
            ),
            "custom": TrustAnchor(
                id="custom", kind="custom", certificate_pem=certificate_to_pem(self.custom_root)
            ),
        }
        trust = {
            "managed.example.com": ("managed",),
            "both.example.com": ("custom", "managed"),
            "plain.example.com": (),
            "*.wild.example.com": ("managed",),
        }
        hosts = {
            name: HostPolicy(
                hostname=name,
                site_id=1,
                origin=OriginPolicy(address="127.0.0.1"),
                certificate=self.edge_certificates[name],
                trust=bound,
            )
            for name, bound in trust.items()
        }
        return Snapshot(
            version=version,
            generated_at=int(NOW.timestamp()),
            anchors=anchors,
            sites={1: SitePolicy(id=1, account_id="acct", name="example.com")},
            hosts=hosts,
        )


def make_pki() -> PKI:
    managed = create_certificate_authority("Managed CA", now=NOW - 400 * DAY, validity_days=3650)
    rogue = create_certificate_authority("Rogue CA", now=NOW - 400 * DAY, validity_days=3650)
    edge_ca = create_certificate_authority("Edge CA", now=NOW - 400 * DAY, validity_days=3650)
    long_ago, far_future = NOW - 400 * DAY, NOW + 3000 * DAY
    custom_root = _raw_certificate(
        "Custom Root", issuer=None, ca=True, not_before=long_ago, not_after=far_future
    )
    custom_int = _raw_certificate(
        "Custom Issuing CA", issuer=custom_root, ca=True, not_before=long_ago, not_after=far_future
    )
    custom_leaf = _raw_certificate(
        "partner-7", issuer=custom_int, ca=False, not_before=NOW - DAY, not_after=NOW + 300 * DAY
    )
    wrong_eku = _raw_certificate(
        "server-only",
        issuer=(managed.certificate, managed.private_key),  # type: ignore[arg-type]
        ca=False,
        not_before=NOW - DAY,
        not_after=NOW + 300 * DAY,
        eku=[ExtendedKeyUsageOID.SERVER_AUTH],
    )
    clients = {
        "valid": _issue(managed, "device-1", at=NOW - DAY, days=365),
        "revoked": _issue(managed, "device-revoked", at=NOW - DAY, days=365),
        "expired": _issue(managed, "device-expired", at=NOW - 200 * DAY, days=30),
        "not_yet_valid": _issue(managed, "device-future", at=NOW + 10 * DAY, days=30),
        "untrusted": _issue(rogue, "mallory", at=NOW - DAY, days=365),
        "wrong_eku": Client((wrong_eku[0],), wrong_eku[1]),
        "custom": Client((custom_leaf[0], custom_int[0]), custom_leaf[1]),
    }
    edge_certificates = {}
    for name in ("managed.example.com", "both.example.com", "plain.example.com", "*.wild.example.com"):
        issued = edge_ca.issue_server_certificate([name], now=NOW - DAY, validity_days=365)
        assert issued.private_key is not None
        edge_certificates[name] = EdgeTLSCertificate(
            chain_pem=certificate_to_pem(issued.certificate), key_pem=private_key_to_pem(issued.private_key)
        )
    return PKI(managed, custom_root[0], edge_certificates, clients)


@pytest.fixture(scope="module")
def pki() -> PKI:
    return make_pki()


@dataclass
class Edge:
    state: EdgeState
    router: SNIRouter
    authenticator: ClientAuthenticator

    def swap(self, snapshot: Snapshot) -> None:
        self.state = EdgeState.from_snapshot(snapshot, now=NOW, previous=self.state)
        self.router.replace(self.state.tls_contexts)


@pytest.fixture(scope="module")
def revoked_serial(pki: PKI) -> str:
    return format(pki.clients["revoked"].chain[0].serial_number, "x")


@pytest.fixture(params=["bundled", "stdlib"])
def engine(request: pytest.FixtureRequest) -> str:
    """Every test that takes it (directly or through ``edge``) runs on both TLS engines."""
    return str(request.param)


@pytest.fixture
def factory(engine: str) -> TLSContextFactory:
    return TLSContextFactory(TLSSettings(engine=engine))  # type: ignore[arg-type]


def memory_handshake(
    server_ctx: tls.ServerContext, client_ctx: ssl.SSLContext, server_name: str | None
) -> tuple[Any, Any]:
    """A real in-memory handshake with a context of either engine."""
    if isinstance(server_ctx, ssl.SSLContext):
        return tls.memory_handshake(server_ctx, client_ctx, server_name)
    return bundledtls.memory_handshake(server_ctx, client_ctx, server_name)


@pytest.fixture
def edge(pki: PKI, revoked_serial: str, factory: TLSContextFactory) -> Edge:
    state = EdgeState.from_snapshot(pki.snapshot(revoked=(revoked_serial,)), now=NOW, tls_factory=factory)
    router = SNIRouter(state.tls_factory)
    router.replace(state.tls_contexts)
    return Edge(state, router, ClientAuthenticator())


def client_context(version: ssl.TLSVersion, client: Client | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    if client is not None:
        with tempfile.NamedTemporaryFile() as file:
            file.write(client.pem())
            file.flush()
            ctx.load_cert_chain(file.name)
    return ctx


def status_over_memory(edge: Edge, host: str, client: Client | None, version: ssl.TLSVersion) -> str:
    server, client_side = memory_handshake(
        edge.router.listening_context, client_context(version, client), host
    )
    assert client_side.version() == {"TLSv1_2": "TLSv1.2", "TLSv1_3": "TLSv1.3"}[version.name]
    sni = edge.router.server_name(server)
    assert sni == host
    host_state = edge.state.host(sni)
    assert host_state is not None
    leaf, intermediates = peer_certificates(server)
    auth = edge.authenticator.authenticate(edge.state, host_state, leaf, intermediates, now=NOW)
    return auth.cert_status


# ------------------------------------------------------------------------------------------------
# the client-certificate matrix, in memory

MATRIX = [
    ("managed.example.com", None, "none"),
    ("managed.example.com", "valid", "valid"),
    ("managed.example.com", "untrusted", "untrusted"),
    ("managed.example.com", "expired", "expired"),
    ("managed.example.com", "not_yet_valid", "not_yet_valid"),
    ("managed.example.com", "wrong_eku", "untrusted"),
    ("managed.example.com", "revoked", "revoked"),
    ("managed.example.com", "custom", "untrusted"),  # custom CA not bound to this hostname
    ("both.example.com", "custom", "valid"),  # leaf + intermediate sent, anchor is the custom root
    ("both.example.com", "valid", "valid"),
    ("x.wild.example.com", "valid", "valid"),
]


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
@pytest.mark.parametrize(("host", "client", "expected"), MATRIX)
def test_handshake_completes_and_status_is_read_per_case(
    edge: Edge, pki: PKI, version: ssl.TLSVersion, host: str, client: str | None, expected: str
) -> None:
    identity = pki.clients[client] if client else None
    assert status_over_memory(edge, host, identity, version) == expected


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_client_sent_intermediates_are_exposed(edge: Edge, pki: PKI, version: ssl.TLSVersion) -> None:
    custom = pki.clients["custom"]
    server, _ = memory_handshake(
        edge.router.listening_context, client_context(version, custom), "both.example.com"
    )
    leaf, intermediates = peer_certificates(server)
    assert leaf == custom.leaf_der
    assert intermediates == (custom.chain[1].public_bytes(DER),)


def test_client_chains_drop_leaf_copies_and_are_capped(edge: Edge, pki: PKI) -> None:
    custom = pki.clients["custom"]
    padding = tuple(pki.clients["untrusted"].chain[0] for _ in range(3)) + (pki.custom_root,) * 9
    long_chain = Client((*custom.chain, custom.chain[0], *padding), custom.key)
    server, _ = memory_handshake(
        edge.router.listening_context, client_context(ssl.TLSVersion.TLSv1_3, long_chain), "both.example.com"
    )
    leaf, intermediates = peer_certificates(server)
    assert leaf == custom.leaf_der
    assert len(intermediates) == tls.MAX_CLIENT_INTERMEDIATES and leaf not in intermediates
    assert intermediates[0] == custom.chain[1].public_bytes(DER)
    auth = edge.authenticator.authenticate(
        edge.state, edge.state.hosts["both.example.com"], leaf, intermediates, now=NOW
    )
    assert auth.cert_status == "valid"


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_plain_hostname_sends_no_certificate_request(edge: Edge, pki: PKI, version: ssl.TLSVersion) -> None:
    ctx = client_context(version, pki.clients["valid"])
    server, _ = memory_handshake(edge.router.listening_context, ctx, "plain.example.com")
    # The client has a certificate and would send it if asked: nothing arrived, so nothing was asked.
    assert peer_certificates(server) == (None, ())
    assert status_over_memory(edge, "plain.example.com", pki.clients["valid"], version) == "none"


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_sni_chooses_the_server_certificate(edge: Edge, version: ssl.TLSVersion) -> None:
    for sni, expected in [
        ("managed.example.com", "managed.example.com"),
        ("both.example.com", "both.example.com"),
        ("plain.example.com", "plain.example.com"),
        ("deep.wild.example.com", "*.wild.example.com"),
        ("MANAGED.Example.COM.", "managed.example.com"),
    ]:
        server, client = memory_handshake(edge.router.listening_context, client_context(version), sni)
        presented = x509.load_der_x509_certificate(client.getpeercert(binary_form=True) or b"")
        san = presented.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [expected]
        assert edge.router.server_name(server) == sni.lower().rstrip(".")


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_unknown_or_absent_sni_gets_the_default_context(
    edge: Edge, pki: PKI, version: ssl.TLSVersion
) -> None:
    for sni in ("unknown.example.org", None):
        server, client = memory_handshake(
            edge.router.listening_context, client_context(version, pki.clients["valid"]), sni
        )
        presented = x509.load_der_x509_certificate(client.getpeercert(binary_form=True) or b"")
        assert "certgate unknown host" in presented.subject.rfc4514_string()
        assert peer_certificates(server) == (None, ())  # no client certificate requested
        assert edge.router.server_name(server) == (sni and sni.lower())


def test_unknown_sni_can_be_refused_with_an_alert(edge: Edge) -> None:
    router = SNIRouter(edge.state.tls_factory, unknown_sni="alert")
    router.replace(edge.state.tls_contexts)
    with pytest.raises(ssl.SSLError, match=r"(?i)callback.failed|unrecognized.name"):
        memory_handshake(router.listening_context, client_context(ssl.TLSVersion.TLSv1_3), "nope.example.org")
    server, _ = memory_handshake(
        router.listening_context, client_context(ssl.TLSVersion.TLSv1_3), "managed.example.com"
    )
    assert router.server_name(server) == "managed.example.com"


def test_replacing_the_hostname_map_applies_to_the_next_handshake(edge: Edge, pki: PKI) -> None:
    version = ssl.TLSVersion.TLSv1_3
    edge.router.replace({})
    server, _ = memory_handshake(
        edge.router.listening_context, client_context(version, pki.clients["valid"]), "managed.example.com"
    )
    assert peer_certificates(server) == (None, ())
    edge.router.replace(edge.state.tls_contexts)
    server, _ = memory_handshake(
        edge.router.listening_context, client_context(version, pki.clients["valid"]), "managed.example.com"
    )
    assert peer_certificates(server)[0] == pki.clients["valid"].leaf_der


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_sessions_are_never_resumed(edge: Edge, pki: PKI, version: ssl.TLSVersion) -> None:
    # A resumed session would carry the first connection's peer certificate into the next one
    # (even onto another hostname, measured before tickets were turned off).
    ctx = client_context(version, pki.clients["valid"])
    listening = edge.router.listening_context
    _, first = memory_handshake(listening, ctx, "managed.example.com")
    session = first.session
    assert session is not None
    for host in ("managed.example.com", "plain.example.com"):
        if isinstance(listening, bundledtls.BundledTLSContext):
            facts, client = bundledtls.memory_handshake(listening, ctx, host, session=session)
            assert not facts.session_reused
            assert not client.session_reused
            continue
        server_in, server_out, client_in, client_out = (ssl.MemoryBIO() for _ in range(4))
        server = listening.wrap_bio(server_in, server_out, server_side=True)
        client_obj = ctx.wrap_bio(client_in, client_out, server_hostname=host, session=session)
        for _ in range(6):
            for side in (client_obj, server):
                try:
                    side.do_handshake()
                except ssl.SSLWantReadError:
                    pass
                server_in.write(client_out.read())
                client_in.write(server_out.read())
        client_obj.write(b"x")
        server_in.write(client_out.read())
        assert server.read(1) == b"x"
        assert not client_obj.session_reused
        assert not server.session_reused
    if isinstance(listening, ssl.SSLContext):
        assert not session.has_ticket
    # The bundled engine's tickets are stateful and its session cache is off: a client may hold
    # one (TLS 1.3), and the loop above shows it never resumes anything.


def test_contexts_are_hardened(edge: Edge) -> None:
    for ctx in [*edge.state.tls_contexts.values(), edge.router.listening_context]:
        if isinstance(ctx, bundledtls.BundledTLSContext):
            lib = bundledtls.binding().lib
            options = lib.SSL_CTX_get_options(ctx.pointer)
            for bit in ("SSL_OP_NO_RENEGOTIATION", "SSL_OP_NO_COMPRESSION", "SSL_OP_NO_TICKET"):
                assert options & getattr(lib, bit), bit
            assert lib.SSL_CTX_get_session_cache_mode(ctx.pointer) == lib.SSL_SESS_CACHE_OFF
            continue
        assert ctx.options & ssl.OP_NO_RENEGOTIATION
        assert ctx.options & ssl.OP_NO_COMPRESSION
        assert ctx.options & ssl.OP_NO_TICKET
        assert ctx.num_tickets == 0
        assert _openssl.session_cache_mode(ctx) == _openssl.SESS_CACHE_OFF
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


def test_tls_1_1_clients_are_refused(edge: Edge) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with pytest.warns(DeprecationWarning):
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        memory_handshake(edge.router.listening_context, ctx, "managed.example.com")


def test_settings_refuse_old_protocols() -> None:
    with pytest.raises(ValueError, match=r"older than 1\.2"):
        TLSSettings(minimum_version=ssl.TLSVersion.TLSv1_1)
    with pytest.raises(ValueError, match="below"):
        TLSSettings(minimum_version=ssl.TLSVersion.TLSv1_3, maximum_version=ssl.TLSVersion.TLSv1_2)


def test_tls13_only_settings_refuse_tls12_clients(pki: PKI, engine: str) -> None:
    factory = TLSContextFactory(TLSSettings(minimum_version=ssl.TLSVersion.TLSv1_3, engine=engine))  # type: ignore[arg-type]
    router = SNIRouter(factory)
    router.replace(
        {"plain.example.com": factory.host_context(pki.edge_certificates["plain.example.com"], None)}
    )
    with pytest.raises(ssl.SSLError):
        memory_handshake(
            router.listening_context, client_context(ssl.TLSVersion.TLSv1_2), "plain.example.com"
        )


# ------------------------------------------------------------------------------------------------
# contexts, keys and the binding


def test_client_ca_names_are_exactly_the_hosts_anchors(edge: Edge, pki: PKI) -> None:
    managed = pki.managed.certificate.subject.public_bytes()
    custom = pki.custom_root.subject.public_bytes()
    contexts = edge.state.tls_contexts

    def names(ctx: tls.ServerContext) -> list[bytes]:
        if isinstance(ctx, ssl.SSLContext):
            return _openssl.client_ca_names(ctx)
        return bundledtls.client_ca_names(ctx)

    def mode(ctx: tls.ServerContext) -> int:
        return _openssl.verify_mode(ctx) if isinstance(ctx, ssl.SSLContext) else ctx.verify_mode

    assert names(contexts["managed.example.com"]) == [managed]
    assert sorted(names(contexts["both.example.com"])) == sorted([managed, custom])
    assert names(contexts["plain.example.com"]) == []
    assert mode(contexts["managed.example.com"]) == 1  # SSL_VERIFY_PEER only
    assert mode(contexts["plain.example.com"]) == 0


def test_broken_key_material_is_a_clear_error(pki: PKI, factory: TLSContextFactory) -> None:
    good = pki.edge_certificates["plain.example.com"]
    other = pki.edge_certificates["both.example.com"]
    with pytest.raises(TLSContextError, match="cannot be loaded"):
        factory.host_context(replace(good, key_pem=other.key_pem), None)  # key of another cert
    with pytest.raises(TLSContextError):
        factory.host_context(replace(good, key_pem="garbage"), None)
    key = serialization.load_pem_private_key(good.key_pem.encode(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    ).decode()
    with pytest.raises(TLSContextError, match="encrypted"):
        factory.host_context(replace(good, key_pem=encrypted), None)


def _edge_temp_files() -> set[str]:
    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith("certgate-edge-")}


def test_keys_never_stay_on_disk_even_without_memfd(pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _edge_temp_files()
    stdlib = TLSContextFactory(TLSSettings(engine="stdlib"))
    stdlib.host_context(pki.edge_certificates["plain.example.com"], None)
    monkeypatch.delattr(os, "memfd_create")
    ctx = stdlib.host_context(pki.edge_certificates["plain.example.com"], None)
    assert isinstance(ctx, ssl.SSLContext) and ctx.cert_store_stats() is not None
    assert _edge_temp_files() == before
    server, _ = memory_handshake(ctx, client_context(ssl.TLSVersion.TLSv1_3), "plain.example.com")
    assert server.version() == "TLSv1.3"


def test_context_key_is_content_based(pki: PKI) -> None:
    factory = TLSContextFactory()
    cert = pki.edge_certificates["plain.example.com"]
    names = (b"\x30\x00",)
    assert factory.context_key(cert, names) == factory.context_key(replace(cert), tuple(names))
    assert factory.context_key(cert, names) != factory.context_key(cert, None)
    assert factory.context_key(cert, ()) != factory.context_key(cert, None)
    other = TLSContextFactory(TLSSettings(minimum_version=ssl.TLSVersion.TLSv1_3))
    assert factory.context_key(cert, None) != other.context_key(cert, None)


def test_self_check_passes(engine: str) -> None:
    tls.self_check(TLSSettings(engine=engine))  # type: ignore[arg-type]
    tls.self_check(TLSSettings(minimum_version=ssl.TLSVersion.TLSv1_3, engine=engine))  # type: ignore[arg-type]


def test_self_check_fails_loudly_without_the_binding(monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulate a binding that silently does nothing: the stdlib then never asks for a certificate.
    monkeypatch.setattr(_openssl, "configure_client_auth", lambda ctx, **_: None)
    with pytest.raises(TLSSelfCheckError):
        tls.self_check(TLSSettings(engine="stdlib"))


def test_self_check_fails_when_the_handshake_rejects_untrusted_certificates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Plain stdlib CERT_OPTIONAL without the accept-any callback: the handshake aborts.
    def stdlib_only(ctx: ssl.SSLContext, *, request: bool, ca_names_der: object) -> None:
        ctx.verify_mode = ssl.CERT_OPTIONAL if request else ssl.CERT_NONE

    monkeypatch.setattr(_openssl, "configure_client_auth", stdlib_only)
    with pytest.raises(TLSSelfCheckError):
        tls.self_check(TLSSettings(engine="stdlib"))


def test_layout_check_reads_the_verify_mode_back() -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for mode, bits in ((ssl.CERT_NONE, 0), (ssl.CERT_OPTIONAL, 1), (ssl.CERT_REQUIRED, 3)):
        ctx.verify_mode = mode
        assert _openssl.verify_mode(ctx) == bits


# ------------------------------------------------------------------------------------------------
# loopback with uvloop


class StatusEcho(asyncio.Protocol):
    """A stand-in for the HTTP engine: answers each line with the connection's current verdict."""

    def __init__(self, edge: Edge) -> None:
        self.edge = edge

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's does not subclass it
        ssl_object = transport.get_extra_info("ssl_object")
        self.sni = self.edge.router.server_name(ssl_object)
        self.peer = peer_certificates(ssl_object)

    def data_received(self, data: bytes) -> None:
        for _ in range(data.count(b"\n")):
            host = self.edge.state.host(self.sni or "")
            status = "no-host"
            if host is not None:
                auth = self.edge.authenticator.authenticate(self.edge.state, host, *self.peer, now=NOW)
                status = auth.cert_status
            self.transport.write(status.encode() + b"\n")


def run_on_uvloop(coroutine: Coroutine[Any, Any, None]) -> None:
    """Loopback tests run on uvloop, the edge's production loop (not pytest-asyncio's default)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coroutine)


@asynccontextmanager
async def _serve(edge: Edge) -> AsyncIterator[int]:
    """Serve ``StatusEcho`` with the edge's engine on a loopback port; yields the port."""
    loop = asyncio.get_running_loop()
    assert "uvloop" in type(loop).__module__
    listening = edge.router.listening_context
    if isinstance(listening, ssl.SSLContext):
        server = await loop.create_server(lambda: StatusEcho(edge), "127.0.0.1", 0, ssl=listening)
        async with server:
            yield server.sockets[0].getsockname()[1]
        return
    sock = socket.create_server(("127.0.0.1", 0))
    tls_server = bundledtls.BundledTLSServer(
        loop, sock, lambda: StatusEcho(edge), listening, handshake_timeout=5, max_intermediates=8
    )
    await tls_server.start()
    try:
        yield sock.getsockname()[1]
    finally:
        tls_server.close()


async def _ask(port: int, host: str, ctx: ssl.SSLContext, times: int = 1) -> list[str]:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=host), 5
    )
    try:
        answers = []
        for _ in range(times):
            writer.write(b"?\n")
            answers.append((await asyncio.wait_for(reader.readline(), 5)).decode().strip())
        return answers
    finally:
        writer.close()
        await writer.wait_closed()


def test_loopback_matrix_with_uvloop(edge: Edge, pki: PKI) -> None:
    async def scenario() -> None:
        async with _serve(edge) as port:
            for version in VERSIONS:
                for host, client, expected in MATRIX:
                    ctx = client_context(version, pki.clients[client] if client else None)
                    assert await _ask(port, host, ctx) == [expected], (version, host, client)

    run_on_uvloop(scenario())


def test_revocation_reaches_an_open_keep_alive_connection(edge: Edge, pki: PKI, revoked_serial: str) -> None:
    valid = pki.clients["valid"]
    valid_serial = format(valid.chain[0].serial_number, "x")

    async def scenario() -> None:
        async with _serve(edge) as port:
            ctx = client_context(ssl.TLSVersion.TLSv1_3, valid)
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname="managed.example.com"
            )
            try:
                writer.write(b"?\n")
                assert await asyncio.wait_for(reader.readline(), 5) == b"valid\n"
                edge.swap(pki.snapshot(version=2, revoked=(revoked_serial, valid_serial)))
                writer.write(b"?\n")
                assert await asyncio.wait_for(reader.readline(), 5) == b"revoked\n"
                edge.swap(pki.snapshot(version=3, revoked=(revoked_serial,)))
                writer.write(b"?\n")
                assert await asyncio.wait_for(reader.readline(), 5) == b"valid\n"
            finally:
                writer.close()
                await writer.wait_closed()

    run_on_uvloop(scenario())
    assert edge.authenticator.misses == 1  # one chain verification served all three answers


async def _s_client_certificate_request(port: int, servername: str, version_flag: str) -> list[str] | None:
    """What ``openssl s_client`` saw: None without a CertificateRequest, else the CA names listed."""
    openssl = shutil.which("openssl")
    assert openssl is not None, "the openssl CLI is required (CI installs it)"
    process = await asyncio.create_subprocess_exec(
        openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", servername, version_flag,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 10)
    text = output.decode(errors="replace")
    assert f"New, TLSv1.{version_flag[-1]}, Cipher is" in text, text
    # s_client prints the requested signature algorithms only when a CertificateRequest came.
    if "Requested Signature Algorithms" not in text:
        return None
    if "No client certificate CA names sent" in text:
        return []
    block = text.split("Acceptable client certificate CA names\n", 1)[1]
    names = []
    for line in block.splitlines():
        if line.startswith(("Client Certificate Types", "Requested Signature Algorithms")):
            break
        names.append(line.strip())
    return names


def test_openssl_client_sees_the_hosts_ca_names(edge: Edge) -> None:
    async def scenario() -> None:
        async with _serve(edge) as port:
            for flag in ("-tls1_2", "-tls1_3"):
                request = _s_client_certificate_request
                assert await request(port, "managed.example.com", flag) == ["CN = Managed CA"]
                both = await request(port, "both.example.com", flag)
                assert both is not None
                assert sorted(both) == ["CN = Custom Root", "CN = Managed CA"]
                assert await request(port, "plain.example.com", flag) is None

    run_on_uvloop(scenario())
