"""Snapshot shape, canonical encoding and upgrade-on-read.

Encoding: UTF-8 JSON with sorted keys and no insignificant whitespace, wrapped in an envelope
``{"schema": N, "version": V, "digest": sha256(body), "body": {...}}``. The digest lets an edge
refuse a truncated or altered file before it replaces a good configuration; the schema number
lets a newer reader upgrade an older snapshot (``_UPGRADES``) and an older reader refuse a newer one.

The snapshot carries the private keys of edge server certificates: whoever stores it (the
edge's last-good file) must keep it private (0600).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from certgate.errors import InvalidArgument

SCHEMA_VERSION = 1


class SnapshotError(InvalidArgument):
    default_reason = "snapshot.invalid"


@dataclass(frozen=True, slots=True)
class TrustAnchor:
    """A CA that client certificates may chain to on the hostnames bound to it."""

    id: str
    kind: str  # "managed" | "custom"
    certificate_pem: str
    revoked_serials: tuple[str, ...] = ()  # lowercase hex, managed CAs only


@dataclass(frozen=True, slots=True)
class WafRuleSpec:
    id: int
    name: str
    expression: str
    action: str  # "deny" | "monitor"
    position: int


@dataclass(frozen=True, slots=True)
class OriginRuleSpec:
    id: int
    name: str
    expression: str
    sequence: int
    scheme: str | None = None
    http_port: int | None = None
    https_port: int | None = None
    host: str | None = None
    sni: str | None = None
    read_timeout: int | None = None
    address: str | None = None


@dataclass(frozen=True, slots=True)
class SitePolicy:
    id: int
    account_id: str
    name: str
    waf_rules: tuple[WafRuleSpec, ...] = ()  # http_custom, enabled only, in position order
    origin_rules: tuple[OriginRuleSpec, ...] = ()  # enabled only, in sequence order


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    address: str  # IP or domain of the origin (record Data.Value)
    scheme: str = "http"
    http_port: int = 80
    https_port: int = 443


@dataclass(frozen=True, slots=True)
class EdgeTLSCertificate:
    chain_pem: str
    key_pem: str
    uploaded: bool = False


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """Everything the edge needs for one served hostname (exact name or ``*.`` wildcard)."""

    hostname: str
    site_id: int
    origin: OriginPolicy
    certificate: EdgeTLSCertificate
    trust: tuple[str, ...] = ()  # TrustAnchor ids bound to this hostname; empty = no mTLS

    @property
    def mtls(self) -> bool:
        return bool(self.trust)


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    generated_at: int  # Unix seconds
    anchors: Mapping[str, TrustAnchor] = field(default_factory=dict)
    sites: Mapping[int, SitePolicy] = field(default_factory=dict)
    hosts: Mapping[str, HostPolicy] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    def host(self, name: str) -> HostPolicy | None:
        """Exact match first, then a one-label wildcard (``a.example.com`` → ``*.example.com``)."""
        policy = self.hosts.get(name)
        if policy is None and "." in name:
            policy = self.hosts.get("*." + name.split(".", 1)[1])
        return policy


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _body(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "generated_at": snapshot.generated_at,
        "anchors": {k: asdict(v) for k, v in snapshot.anchors.items()},
        "sites": {str(k): asdict(v) for k, v in snapshot.sites.items()},
        "hosts": {k: asdict(v) for k, v in snapshot.hosts.items()},
    }


def encode_snapshot(snapshot: Snapshot) -> bytes:
    body = _body(snapshot)
    digest = hashlib.sha256(_canonical(body)).hexdigest()
    return _canonical({"schema": SCHEMA_VERSION, "version": snapshot.version, "digest": digest, "body": body})


# schema N -> function turning a schema-N body into a schema-(N+1) body.
_UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def decode_snapshot(data: bytes) -> Snapshot:
    """Parse and check an encoded snapshot; raise SnapshotError on anything unexpected."""
    try:
        envelope = json.loads(data)
        schema = envelope["schema"]
        version = envelope["version"]
        body = envelope["body"]
        digest = envelope["digest"]
    except (ValueError, TypeError, KeyError) as exc:
        raise SnapshotError(f"snapshot is not a valid envelope: {exc}") from None
    if not isinstance(schema, int) or not isinstance(version, int) or not isinstance(body, dict):
        raise SnapshotError("snapshot envelope has wrong types")
    if hashlib.sha256(_canonical(body)).hexdigest() != digest:
        raise SnapshotError("snapshot digest does not match its body", reason="snapshot.digest")
    if schema > SCHEMA_VERSION:
        raise SnapshotError(f"snapshot schema {schema} is newer than this reader ({SCHEMA_VERSION})")
    while schema < SCHEMA_VERSION:
        upgrade = _UPGRADES.get(schema)
        if upgrade is None:
            raise SnapshotError(f"no upgrade from snapshot schema {schema}")
        body = upgrade(body)
        schema += 1
    try:
        return _from_body(version, body)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotError(f"snapshot body is malformed: {exc!r}") from None


def _from_body(version: int, body: dict[str, Any]) -> Snapshot:
    anchors = {
        k: TrustAnchor(
            id=v["id"],
            kind=v["kind"],
            certificate_pem=v["certificate_pem"],
            revoked_serials=tuple(v["revoked_serials"]),
        )
        for k, v in body["anchors"].items()
    }
    sites = {
        int(k): SitePolicy(
            id=v["id"],
            account_id=v["account_id"],
            name=v["name"],
            waf_rules=tuple(WafRuleSpec(**r) for r in v["waf_rules"]),
            origin_rules=tuple(OriginRuleSpec(**r) for r in v["origin_rules"]),
        )
        for k, v in body["sites"].items()
    }
    hosts = {
        k: HostPolicy(
            hostname=v["hostname"],
            site_id=v["site_id"],
            origin=OriginPolicy(**v["origin"]),
            certificate=EdgeTLSCertificate(**v["certificate"]),
            trust=tuple(v["trust"]),
        )
        for k, v in body["hosts"].items()
    }
    for host in hosts.values():
        if host.site_id not in sites:
            raise SnapshotError(f"host {host.hostname} names unknown site {host.site_id}")
        missing = [a for a in host.trust if a not in anchors]
        if missing:
            raise SnapshotError(f"host {host.hostname} trusts unknown anchors {missing}")
    return Snapshot(
        version=version,
        generated_at=int(body["generated_at"]),
        anchors=anchors,
        sites=sites,
        hosts=hosts,
    )
