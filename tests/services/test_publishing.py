"""The snapshot compiled from the store: what the edge will enforce."""

from __future__ import annotations

from certgate.services import ca_certificates as cas
from certgate.services import certificates as certs
from certgate.services import rules as svc
from certgate.services.publishing import SnapshotPublisher, build_current_snapshot
from certgate.snapshot import decode_snapshot

SEED_RULE = '(http.host eq "api.example.com" and not tls.client_auth.cert_verified)'


def test_snapshot_reflects_bindings_revocations_and_rules(world) -> None:
    ctx = world.ctx
    snap = build_current_snapshot(ctx)
    assert set(snap.hosts) == {"api.example.com", "www.example.com", "api.other.org"}
    assert not snap.hosts["api.example.com"].mtls
    _, binding = cas.set_hostnames(ctx, world.account, world.site, None, ["api.example.com"])
    issued = certs.issue_client_certificate(
        ctx, world.account, world.site, validity_days=30, key_type="ECDSA"
    )
    certs.revoke_client_certificate(ctx, world.account, world.site, issued.certificate.id)
    svc.create_waf_rule(
        ctx,
        world.account,
        world.site,
        phase="http_custom",
        data=svc.WafRuleInput(name="mtls", expression=SEED_RULE, action="deny"),
    )
    svc.create_waf_rule(
        ctx,
        world.account,
        world.site,
        phase="http_custom",
        data=svc.WafRuleInput(name="off", expression="ssl", action="deny", status="off"),
    )
    snap = build_current_snapshot(ctx)
    host = snap.hosts["api.example.com"]
    assert host.trust == (binding.ca_id,)
    assert not snap.hosts["www.example.com"].mtls
    anchor = snap.anchors[binding.ca_id]
    assert anchor.kind == "managed" and issued.certificate.cert.serial_hex in anchor.revoked_serials
    assert [r.name for r in snap.sites[world.site].waf_rules] == ["mtls"]
    assert "BEGIN" in host.certificate.key_pem  # unsealed for the edge
    assert snap.version == ctx.store.current_version()


def test_wildcard_binding_covers_one_label(world) -> None:
    ctx = world.ctx
    cas.set_hostnames(ctx, world.account, world.site, None, ["*.example.com"])
    snap = build_current_snapshot(ctx)
    assert snap.hosts["api.example.com"].mtls and snap.hosts["www.example.com"].mtls
    assert not snap.hosts["api.other.org"].mtls


def test_publisher_builds_once_per_version_and_round_trips(world) -> None:
    publisher = SnapshotPublisher(world.ctx)
    v1, data1 = publisher.current()
    assert publisher.current()[1] is data1
    cas.set_hostnames(world.ctx, world.account, world.site, None, ["api.example.com"])
    v2, data2 = publisher.current()
    assert v2 == v1 + 1 and data2 != data1
    assert decode_snapshot(data2).hosts["api.example.com"].mtls
