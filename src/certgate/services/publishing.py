"""Builds the edge snapshot for the store's current configuration version.

The snapshot is a pure function of the store at one version, so it is built at most once per
version (``SnapshotPublisher`` caches the last one) and every edge gets byte-identical data.
"""

from __future__ import annotations

import threading

from certgate.services.context import ServiceContext
from certgate.services.sites import edge_key_context
from certgate.snapshot import EdgeTLSCertificate, Snapshot, build_snapshot, encode_snapshot


def build_current_snapshot(ctx: ServiceContext) -> Snapshot:
    now = ctx.clock.now()
    with ctx.store.read_transaction() as tx:
        version = tx.config_version()
        sites = tx.list_all_sites()
        records = tx.list_all_records()
        authorities = tx.list_managed_authorities()
        custom_cas = tx.list_all_ca_certificates()
        bindings = tx.list_bindings()
        revoked = tx.list_revoked_serials()
        waf_rules = tx.list_all_waf_rules()
        origin_rules = tx.list_all_origin_rules()
        edge_certs = tx.list_edge_certificates()
    certificates = {
        c.hostname: EdgeTLSCertificate(
            chain_pem=c.chain_pem,
            key_pem=ctx.sealer.unseal(c.sealed_key, context=edge_key_context(c.hostname)).decode(),
            uploaded=c.uploaded,
        )
        for c in edge_certs
    }
    return build_snapshot(
        version=version,
        now=now,
        sites=sites,
        records=records,
        managed_authorities=authorities,
        custom_cas=custom_cas,
        bindings=bindings,
        revoked=revoked,
        waf_rules=waf_rules,
        origin_rules=origin_rules,
        edge_certificates=certificates,
    )


class SnapshotPublisher:
    """Encoded snapshot of the current version, built once per version, thread-safe."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self._lock = threading.Lock()
        self._cached: tuple[int, bytes] | None = None

    def current(self) -> tuple[int, bytes]:
        version = self._ctx.store.current_version()
        cached = self._cached
        if cached is not None and cached[0] == version:
            return cached
        with self._lock:
            cached = self._cached
            if cached is not None and cached[0] >= self._ctx.store.current_version():
                return cached
            snapshot = build_current_snapshot(self._ctx)
            self._cached = (snapshot.version, encode_snapshot(snapshot))
            return self._cached
