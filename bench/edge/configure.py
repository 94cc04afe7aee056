"""Build the benchmark's PKI and configuration through certgate's own services.

Everything nginx needs is taken from what certgate made, so both servers do the same job with the
same keys: the edge server certificate certgate issued for the hostname (ECDSA P-256, from the
installation's edge CA), the account's managed CA as the client trust anchor, and a CRL from that
CA listing the one revoked certificate (certgate checks the same revocation in its snapshot).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from certgate.bootstrap import ensure_edge_token, initialize
from certgate.pki import build_crl
from certgate.pki.pem import certificate_to_pem, load_certificate
from certgate.services import accounts, ca_certificates, certificates, rules, sites
from certgate.services.context import ServiceContext
from certgate.services.sites import edge_key_context
from certgate.settings import ControlPlaneSettings

SITE = "example.com"
HOST = "api.example.com"
SEED_RULE = f'(http.host eq "{HOST}" and not tls.client_auth.cert_verified)'


@dataclass(frozen=True, slots=True)
class BenchFiles:
    """Paths (all under one directory) and facts both servers and the clients use."""

    data_dir: Path
    """The control plane's data directory (database, master key, edge token)."""
    client_cert: Path
    """The managed client certificate (leaf; the managed CA signs leaves directly)."""
    client_key: Path
    revoked_cert: Path
    revoked_key: Path
    managed_ca: Path
    """The account's managed CA: trust anchor for the hostname (nginx ``ssl_client_certificate``)."""
    managed_crl: Path
    """CRL of the managed CA naming the revoked certificate (nginx ``ssl_crl``)."""
    edge_chain: Path
    """The edge certificate certgate issued for ``HOST`` (leaf + edge CA)."""
    edge_key: Path
    edge_ca: Path
    """The installation's edge CA (what clients would trust)."""

    @property
    def token_file(self) -> Path:
        return self.data_dir / "edge-token"


def _write(path: Path, text: str, *, private: bool = False) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def configure(
    directory: Path, *, origin_port: int
) -> tuple[ServiceContext, ControlPlaneSettings, BenchFiles]:
    """A fresh installation in ``directory/cp`` serving ``HOST`` with mTLS, the seed WAF rule,
    the origin on ``127.0.0.1:origin_port``, one active and one revoked client certificate."""
    settings = ControlPlaneSettings(data_dir=directory / "cp")
    ctx = initialize(settings)
    ensure_edge_token(settings)
    new = accounts.create_account(ctx, "bench")
    account_id = new.account.id
    site = sites.create_site(
        ctx, account_id, name=SITE, access_type="NS", coverage="global", instance_id=new.account.instance_id
    )
    sites.create_record(
        ctx, account_id, site.id, name=HOST, rtype="A/AAAA", ttl=1, value="127.0.0.1", proxied=True
    )
    good = certificates.issue_client_certificate(
        ctx, account_id, site.id, validity_days=365, key_type="ECDSA"
    )
    bad = certificates.issue_client_certificate(ctx, account_id, site.id, validity_days=365, key_type="ECDSA")
    certificates.revoke_client_certificate(ctx, account_id, site.id, bad.certificate.id)
    ca_certificates.set_hostnames(ctx, account_id, site.id, None, [HOST])
    rules.create_waf_rule(
        ctx,
        account_id,
        site.id,
        phase="http_custom",
        data=rules.WafRuleInput(name="mTLS required", expression=SEED_RULE, action="deny"),
    )
    rules.create_origin_rule(
        ctx,
        account_id,
        site.id,
        rules.OriginRuleInput(
            name="bench origin", expression=f'http.host eq "{HOST}"', origin_http_port=origin_port
        ),
    )
    assert good.private_key_pem is not None and bad.private_key_pem is not None

    with ctx.store.read_transaction() as tx:
        edge_cert = tx.get_edge_certificate(HOST)
        managed = tx.get_managed_authority(account_id)
        edge_authority = tx.get_edge_authority()
    assert edge_cert is not None and managed is not None and edge_authority is not None
    edge_key_pem = ctx.sealer.unseal(edge_cert.sealed_key, context=edge_key_context(HOST)).decode()
    managed_ca = accounts.unseal_authority(ctx, managed)
    now = ctx.clock.now()
    crl = build_crl(
        managed_ca,
        [(int(bad.certificate.cert.serial_hex, 16), now)],
        now=now,
        next_update=now + dt.timedelta(days=7),
    )
    files_dir = directory / "pki"
    files_dir.mkdir(mode=0o700, exist_ok=True)
    files = BenchFiles(
        data_dir=settings.data_dir,
        client_cert=_write(files_dir / "client.crt", good.certificate.cert.certificate_pem),
        client_key=_write(files_dir / "client.key", good.private_key_pem, private=True),
        revoked_cert=_write(files_dir / "revoked.crt", bad.certificate.cert.certificate_pem),
        revoked_key=_write(files_dir / "revoked.key", bad.private_key_pem, private=True),
        managed_ca=_write(files_dir / "managed-ca.pem", managed.certificate_pem),
        managed_crl=_write(files_dir / "managed-ca.crl.pem", crl.public_bytes(Encoding.PEM).decode()),
        edge_chain=_write(files_dir / "edge-chain.pem", edge_cert.chain_pem),
        edge_key=_write(files_dir / "edge.key", edge_key_pem, private=True),
        edge_ca=_write(
            files_dir / "edge-ca.pem", certificate_to_pem(load_certificate(edge_authority.certificate_pem))
        ),
    )
    return ctx, settings, files
