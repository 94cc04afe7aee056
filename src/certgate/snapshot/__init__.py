"""The edge configuration snapshot: immutable, versioned, canonically encoded.

A snapshot is the *only* way configuration reaches an edge node. ``format`` defines the shape,
its canonical JSON encoding and upgrade-on-read; ``build`` compiles it from model objects.
"""

from certgate.snapshot.build import build_snapshot
from certgate.snapshot.format import (
    SCHEMA_VERSION,
    EdgeTLSCertificate,
    HostPolicy,
    OriginPolicy,
    OriginRuleSpec,
    SitePolicy,
    Snapshot,
    SnapshotError,
    TrustAnchor,
    WafRuleSpec,
    decode_snapshot,
    encode_snapshot,
)

__all__ = [
    "SCHEMA_VERSION",
    "EdgeTLSCertificate",
    "HostPolicy",
    "OriginPolicy",
    "OriginRuleSpec",
    "SitePolicy",
    "Snapshot",
    "SnapshotError",
    "TrustAnchor",
    "WafRuleSpec",
    "build_snapshot",
    "decode_snapshot",
    "encode_snapshot",
]
