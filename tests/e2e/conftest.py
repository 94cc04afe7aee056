"""A whole installation on loopback for end-to-end tests: control plane, edge, origins, TLS clients.

``build_world(tmp)`` starts a real control plane (`create_app` over SQLite, served by uvicorn on
its own thread) with one account and site ``example.com``, records, bindings, rules and a set
of client certificates covering every verdict; real origin servers (an echo server returning
the request it received as JSON, one that accepts and never answers, and a closed port); and
a real edge (`EdgeThread`, uvloop) pulling snapshots from the control plane. Clients are
stdlib ``ssl`` sockets that verify the edge certificate against the installation's edge CA.

Certificates with dates in the past or the future are issued with `certgate.pki` from the
account's managed CA (unsealed with `services.accounts.unseal_authority`); the managed CA is
created while the control plane's clock is moved 400 days back so that it was valid then.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import h11
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certgate.api.app import create_app
from certgate.api.auth import sign_acs3
from certgate.api.server import BackgroundServer
from certgate.bootstrap import RuleLanguageValidator
from certgate.edge.server import EdgeThread
from certgate.edge.settings import EdgeSettings
from certgate.ids import RandomIdFactory
from certgate.pki.authority import CertificateAuthority, create_certificate_authority
from certgate.pki.keys import KeyType, private_key_to_pem
from certgate.pki.pem import certificate_to_pem
from certgate.services import accounts, ca_certificates, certificates, rules, sites
from certgate.services.context import ServiceContext
from certgate.settings import ControlPlaneSettings
from certgate.storage import open_store
from certgate.storage.keystore import AESGCMSealer

EDGE_TOKEN = "edge-token-e2e-" + "k" * 30
SITE = "example.com"
UTC = dt.UTC


class OffsetClock:
    """The real time plus an offset the test can move (the API signs with the real clock)."""

    def __init__(self) -> None:
        self.offset = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC).replace(microsecond=0) + self.offset


# --- origins -------------------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def get(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


class EchoOrigin:
    """HTTP/1.1 keep-alive server answering every request with the request it saw, as JSON."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _echo(self) -> None:
                if self.path.startswith("/delay/"):  # /delay/SECONDS/...: a slow origin
                    time.sleep(float(self.path.split("/")[2]))
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, list(self.headers.items()), body)
                origin.seen.append(seen)
                payload = json.dumps(
                    {"method": seen.method, "path": seen.path, "headers": seen.headers, "body": body.decode()}
                ).encode()
                # One write: a separate small body segment would wait for the edge's delayed ACK
                # (Nagle), ~40 ms per request.
                self.wfile.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                    % (len(payload), payload)
                )

            do_GET = do_POST = do_PUT = do_DELETE = _echo  # noqa: N815 (http.server's names)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class HangingOrigin:
    """Accepts connections, reads nothing, answers nothing (until closed)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port: int = s.getsockname()[1]
    return port


# --- control plane -------------------------------------------------------------------------------


@dataclass
class Tenant:
    account_id: Any
    key_id: str
    secret: str
    site_id: Any
    managed_ca: Any  # model Authority


class ControlPlane:
    def __init__(self, tmp: Path) -> None:
        self.clock = OffsetClock()
        url = f"sqlite:///{tmp / 'certgate.db'}"
        self.store = open_store(url)
        self.ctx = ServiceContext(
            store=self.store,
            sealer=AESGCMSealer(secrets.token_bytes(32)),
            clock=self.clock,
            ids=RandomIdFactory(),
            expressions=RuleLanguageValidator(),
        )
        self.settings = ControlPlaneSettings(data_dir=tmp, database_url=url)
        self.server = BackgroundServer(create_app(self.ctx, self.settings, edge_token=EDGE_TOKEN))
        self.server.start()
        self.http = httpx.Client(timeout=10)

    def version(self) -> int:
        return self.store.current_version()

    def call(self, tenant: Tenant, action: str, query: list[tuple[str, str]], method: str = "GET") -> Any:
        """One signed ESA RPC call; returns the JSON body (raises on an error status)."""
        headers = sign_acs3(
            method=method,
            host=self.server.endpoint,
            action=action,
            query=query,
            body=b"",
            access_key_id=tenant.key_id,
            secret=tenant.secret,
            date=dt.datetime.now(UTC),
            nonce=secrets.token_hex(16),
        )
        response = self.http.request(
            method, self.server.url + "/?" + str(httpx.QueryParams(query)), headers=headers
        )
        assert response.status_code == 200, response.text
        return response.json()

    def stop(self) -> None:
        self.server.stop()

    def close(self) -> None:
        self.http.close()
        self.store.close()


# --- certificates --------------------------------------------------------------------------------


@dataclass
class ClientCert:
    """A client certificate as files for ``ssl.load_cert_chain``: leaf then what the client sends."""

    name: str
    leaf: x509.Certificate
    chain_path: Path
    key_path: Path
    intermediates: tuple[x509.Certificate, ...] = ()
    id: str = ""  # the control plane's id, for certificates issued through it

    @property
    def serial_hex(self) -> str:
        return format(self.leaf.serial_number, "x")


def write_client_cert(
    tmp: Path,
    name: str,
    leaf: x509.Certificate,
    key_pem: str,
    inters: tuple[x509.Certificate, ...] = (),
    cert_id: str = "",
) -> ClientCert:
    chain = tmp / f"{name}.crt"
    key = tmp / f"{name}.key"
    chain.write_text(certificate_to_pem(leaf) + "".join(certificate_to_pem(c) for c in inters))
    key.write_text(key_pem)
    return ClientCert(name, leaf, chain, key, inters, cert_id)


def _ca_pair(
    cn: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    now: dt.datetime,
    *,
    path_length: int | None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    signer_cert, signer_key = issuer if issuer else (None, key)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(signer_cert.subject if signer_cert is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), critical=False
        )
        .sign(signer_key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    cn: str,
    issuer_cert: x509.Certificate,
    issuer_key: Any,
    now: dt.datetime,
    eku: x509.ObjectIdentifier = ExtendedKeyUsageOID.CLIENT_AUTH,
) -> tuple[x509.Certificate, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
        .sign(issuer_key, hashes.SHA256())
    )
    return cert, private_key_to_pem(key)


# --- TLS clients ---------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def origin_header(self, name: str) -> list[str]:
        """Values of ``name`` in the request the echo origin received."""
        return [v for k, v in self.json()["headers"] if k.lower() == name.lower()]


class Client:
    """One TLS connection to the edge speaking HTTP/1.1 through h11 (keep-alive)."""

    def __init__(
        self,
        port: int,
        sni: str,
        edge_ca_pem: str,
        *,
        cert: ClientCert | None = None,
        version: ssl.TLSVersion | None = None,
    ) -> None:
        ctx = ssl.create_default_context(cadata=edge_ca_pem)
        if version is not None:
            ctx.minimum_version = ctx.maximum_version = version
        if cert is not None:
            ctx.load_cert_chain(cert.chain_path, cert.key_path)
        raw = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.sock = ctx.wrap_socket(raw, server_hostname=sni)
        self.h11 = h11.Connection(h11.CLIENT)

    @property
    def version(self) -> str | None:
        return self.sock.version()

    def request(
        self,
        host: str,
        path: str = "/",
        headers: list[tuple[str, str]] | None = None,
        method: str = "GET",
        body: bytes = b"",
    ) -> Response:
        if self.h11.our_state is h11.DONE:
            self.h11.start_next_cycle()
        all_headers = [("host", host), *(headers or [])]
        if body:
            all_headers.append(("content-length", str(len(body))))
        out = self.h11.send(h11.Request(method=method, target=path, headers=all_headers))
        out += self.h11.send(h11.Data(data=body)) if body else b""
        out += self.h11.send(h11.EndOfMessage())
        self.sock.sendall(out)
        status = 0
        resp_headers: dict[str, str] = {}
        data = bytearray()
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(self.sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                resp_headers = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                data += event.data
            elif isinstance(event, h11.EndOfMessage):
                return Response(status, resp_headers, bytes(data))
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the edge closed the connection")

    def raw(self, data: bytes) -> bytes:
        """Send raw bytes; return the first response (head and Content-Length body)."""
        self.sock.sendall(data)
        out = bytearray()
        while True:
            head_end = out.find(b"\r\n\r\n")
            if head_end >= 0:
                length = 0
                for line in bytes(out[:head_end]).split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if len(out) >= head_end + 4 + length:
                    return bytes(out[: head_end + 4 + length])
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                break
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the world -----------------------------------------------------------------------------------

HOSTS = ("api", "mgd", "open", "late", "down", "slow")


@dataclass
class World:
    tmp: Path
    cp: ControlPlane
    tenant: Tenant
    echo: EchoOrigin
    hanging: HangingOrigin
    edge_ca_pem: str
    certs: dict[str, ClientCert]
    rule_ids: dict[str, int]
    edge: EdgeThread | None = None
    edge_settings: EdgeSettings | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self.edge is not None
        return self.edge.port

    def client(self, sni: str, *, cert: str | None = None, version: ssl.TLSVersion | None = None) -> Client:
        return Client(
            self.port, sni, self.edge_ca_pem, cert=self.certs[cert] if cert else None, version=version
        )

    def get(
        self,
        sni: str,
        host: str | None = None,
        path: str = "/",
        *,
        cert: str | None = None,
        version: ssl.TLSVersion | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> Response:
        with self.client(sni, cert=cert, version=version) as c:
            return c.request(host or sni, path, headers)

    def start_edge(self, **overrides: Any) -> EdgeThread:
        settings = EdgeSettings(
            control_plane=self.cp.server.url,
            token=EDGE_TOKEN,
            listen="127.0.0.1:0",
            state_dir=self.tmp / "edge-state",
            access_log=str(self.tmp / "access.log"),
            shutdown_grace_seconds=2,
            backoff_max_seconds=1,
            **overrides,
        )
        self.edge_settings = settings
        self.edge = EdgeThread(settings).start()
        return self.edge

    def sync_edge(self, timeout: float = 10) -> int:
        """Wait until the edge serves the control plane's current version."""
        version = self.cp.version()
        assert self.edge is not None and self.edge.wait_for_version(version, timeout), version
        return version

    def log(self) -> list[dict[str, Any]]:
        path = self.tmp / "access.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def log_entry(self, uri: str, timeout: float = 3) -> dict[str, Any]:
        """The access-log line of the one request for ``uri`` (waits for the log's flush)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.log() if e.get("uri") == uri]
            if found:
                assert len(found) == 1, found
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no access-log line for {uri}")
            time.sleep(0.02)

    def wait_log(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 3) -> None:
        """Wait until ``predicate(all access-log lines)`` holds (the log is flushed every 50 ms)."""
        deadline = time.monotonic() + timeout
        while not predicate(self.log()):
            if time.monotonic() > deadline:
                raise AssertionError("the access log never showed what was expected")
            time.sleep(0.02)

    def revoke(self, cert: ClientCert) -> None:
        self.cp.call(
            self.tenant, "RevokeClientCertificate", [("Id", cert.id), ("SiteId", str(self.tenant.site_id))]
        )

    def close(self) -> None:
        if self.edge is not None:
            self.edge.stop()
        for closer in reversed(self._closers):
            closer()


def build_world(tmp: Path) -> World:
    cp = ControlPlane(tmp)
    echo = EchoOrigin()
    hanging = HangingOrigin()
    ctx = cp.ctx
    edge_authority = accounts.ensure_edge_authority(ctx)
    # The managed CA must have been valid 100 days ago to issue the expired certificate.
    cp.clock.offset = -dt.timedelta(days=400)
    new = accounts.create_account(ctx, "alice")
    cp.clock.offset = dt.timedelta(0)
    account = new.account.id
    site = sites.create_site(
        ctx, account, name=SITE, access_type="NS", coverage="global", instance_id=new.account.instance_id
    )
    tenant = Tenant(account, new.access_key_id, new.access_key_secret, site.id, new.managed_ca)
    for label in HOSTS:
        sites.create_record(
            ctx,
            account,
            site.id,
            name=f"{label}.{SITE}",
            rtype="A/AAAA",
            ttl=1,
            value="127.0.0.1",
            proxied=True,
        )
    # Origin rules: one for the whole site, then overrides (later rules win field by field).
    for name, expression, port, timeout in (
        ("all", 'ends_with(http.host, ".example.com")', echo.port, None),
        ("down", 'http.host eq "down.example.com"', closed_port(), None),
        ("slow", 'http.host eq "slow.example.com"', hanging.port, 1),
    ):
        rules.create_origin_rule(
            ctx,
            account,
            site.id,
            rules.OriginRuleInput(
                name=name, expression=expression, origin_http_port=port, origin_read_timeout=timeout
            ),
        )
    seed = rules.create_waf_rule(
        ctx,
        account,
        site.id,
        phase="http_custom",
        data=rules.WafRuleInput(
            name="mTLS",
            expression='(http.host eq "api.example.com" and not tls.client_auth.cert_verified)',
            action="deny",
        ),
    )
    monitor = rules.create_waf_rule(
        ctx,
        account,
        site.id,
        phase="http_custom",
        data=rules.WafRuleInput(
            name="watch mgd", expression='http.host eq "mgd.example.com"', action="monitor"
        ),
    )

    # A custom CA: root (uploaded and bound to api only) → intermediate (sent by the client) → leaf.
    now = dt.datetime.now(UTC)
    root = _ca_pair("Custom Root", None, now, path_length=1)
    intermediate = _ca_pair("Custom Intermediate", root, now, path_length=0)
    custom = ca_certificates.upload_ca_certificate(
        ctx, account, site.id, certificate_pem=certificate_to_pem(root[0]), name="custom"
    )
    ca_certificates.set_hostnames(ctx, account, site.id, None, ["api.example.com", "mgd.example.com"])
    ca_certificates.set_hostnames(ctx, account, site.id, custom.id, ["api.example.com"])

    certs_dir = tmp / "certs"
    certs_dir.mkdir()
    certs: dict[str, ClientCert] = {}
    for name in ("valid", "revoked", "keepalive", "bench"):
        issued = certificates.issue_client_certificate(
            ctx, account, site.id, validity_days=30, key_type="ECDSA"
        )
        assert issued.private_key_pem is not None
        leaf = x509.load_pem_x509_certificate(issued.certificate.cert.certificate_pem.encode())
        certs[name] = write_client_cert(
            certs_dir, name, leaf, issued.private_key_pem, cert_id=issued.certificate.id
        )
    certificates.revoke_client_certificate(ctx, account, site.id, certs["revoked"].id)
    managed: CertificateAuthority = accounts.unseal_authority(ctx, new.managed_ca)
    for name, when in (
        ("expired", now - dt.timedelta(days=100)),
        ("not_yet_valid", now + dt.timedelta(days=10)),
    ):
        issued_pki = managed.issue_client_certificate(
            now=when, validity_days=30, key_type=KeyType.ECDSA_P256, common_name=name
        )
        assert issued_pki.private_key is not None
        certs[name] = write_client_cert(
            certs_dir, name, issued_pki.certificate, private_key_to_pem(issued_pki.private_key)
        )
    wrong_eku, wrong_eku_key = _leaf(
        "server only", managed.certificate, managed.private_key, now, ExtendedKeyUsageOID.SERVER_AUTH
    )
    certs["wrong_eku"] = write_client_cert(certs_dir, "wrong_eku", wrong_eku, wrong_eku_key)
    rogue = create_certificate_authority("Rogue CA", now=now)
    rogue_leaf = rogue.issue_client_certificate(
        now=now, validity_days=30, key_type=KeyType.ECDSA_P256, common_name="rogue"
    )
    assert rogue_leaf.private_key is not None
    certs["untrusted"] = write_client_cert(
        certs_dir, "untrusted", rogue_leaf.certificate, private_key_to_pem(rogue_leaf.private_key)
    )
    custom_leaf, custom_key = _leaf("custom device", intermediate[0], intermediate[1], now)
    certs["custom"] = write_client_cert(certs_dir, "custom", custom_leaf, custom_key, (intermediate[0],))

    world = World(
        tmp=tmp,
        cp=cp,
        tenant=tenant,
        echo=echo,
        hanging=hanging,
        edge_ca_pem=edge_authority.certificate_pem,
        certs=certs,
        rule_ids={"seed": int(seed.id), "monitor": int(monitor.id)},
    )
    world._closers += [cp.close, cp.stop, echo.close, hanging.close]
    return world


def pem_of(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def free_ports(count: int) -> int:
    """A port P such that P .. P+count-1 are free now (for --listen and --metrics-listen)."""
    for _ in range(50):
        with socket.create_server(("127.0.0.1", 0)) as first:
            base: int = first.getsockname()[1]
            others = []
            try:
                for i in range(1, count):
                    others.append(socket.create_server(("127.0.0.1", base + i)))
            except OSError:
                continue
            finally:
                for s in others:
                    s.close()
            return base
    raise RuntimeError("no free port range")


def iter_lines(path: Path) -> Iterator[dict[str, Any]]:
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                yield json.loads(line)
