"""Canonical encoding, digest and schema checks of the edge snapshot."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certgate.snapshot import (
    EdgeTLSCertificate,
    HostPolicy,
    OriginPolicy,
    SitePolicy,
    Snapshot,
    SnapshotError,
    TrustAnchor,
    WafRuleSpec,
    decode_snapshot,
    encode_snapshot,
)


def sample() -> Snapshot:
    return Snapshot(
        version=7,
        generated_at=1_800_000_000,
        anchors={
            "ca1": TrustAnchor(id="ca1", kind="managed", certificate_pem="PEM", revoked_serials=("ab",))
        },
        sites={
            1: SitePolicy(
                id=1,
                account_id="acct",
                name="example.com",
                waf_rules=(WafRuleSpec(id=5, name="r", expression="ssl", action="deny", position=1),),
            )
        },
        hosts={
            "api.example.com": HostPolicy(
                hostname="api.example.com",
                site_id=1,
                origin=OriginPolicy(address="127.0.0.1"),
                certificate=EdgeTLSCertificate(chain_pem="C", key_pem="K"),
                trust=("ca1",),
            )
        },
    )


def test_round_trip_is_exact_and_canonical() -> None:
    data = encode_snapshot(sample())
    assert decode_snapshot(data) == sample()
    assert encode_snapshot(decode_snapshot(data)) == data


def test_host_lookup_falls_back_to_one_label_wildcard() -> None:
    snap = sample()
    wild = HostPolicy(
        hostname="*.example.com",
        site_id=1,
        origin=OriginPolicy(address="1.2.3.4"),
        certificate=EdgeTLSCertificate(chain_pem="C", key_pem="K"),
    )
    snap = Snapshot(
        version=1,
        generated_at=0,
        anchors=snap.anchors,
        sites=snap.sites,
        hosts={**snap.hosts, "*.example.com": wild},
    )
    assert snap.host("api.example.com") is snap.hosts["api.example.com"]
    assert snap.host("www.example.com") is wild
    assert snap.host("a.b.example.com") is None


def test_tampered_body_is_refused() -> None:
    envelope = json.loads(encode_snapshot(sample()))
    envelope["body"]["hosts"]["api.example.com"]["trust"] = []
    with pytest.raises(SnapshotError) as err:
        decode_snapshot(json.dumps(envelope).encode())
    assert err.value.reason == "snapshot.digest"


def test_newer_schema_is_refused() -> None:
    envelope = json.loads(encode_snapshot(sample()))
    envelope["schema"] = 99
    with pytest.raises(SnapshotError):
        decode_snapshot(json.dumps(envelope).encode())


@given(st.binary(max_size=300))
def test_garbage_only_raises_snapshot_error(data: bytes) -> None:
    with pytest.raises(SnapshotError):
        decode_snapshot(data)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
        max_leaves=10,
    )
)
def test_wrong_shapes_only_raise_snapshot_error(body: object) -> None:
    import hashlib

    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    envelope = {"schema": 1, "version": 1, "digest": hashlib.sha256(canonical).hexdigest(), "body": body}
    with pytest.raises(SnapshotError):
        decode_snapshot(json.dumps(envelope).encode())
