"""Entities and value objects of certgate: plain frozen dataclasses, no behaviour beyond invariants.

Pure: imports only the standard library and certgate's root modules. Persisted shapes live in
``storage``; wire shapes live in ``api``. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field

from certgate.ids import AccountId, CACertificateId, CertificateId, RecordId, RuleId, SiteId


class CertificateStatus(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class AuthorityKind(enum.StrEnum):
    MANAGED = "managed"  # the account's own CA, issues client certificates
    EDGE = "edge"  # the installation's CA for edge server certificates


class RuleAction(enum.StrEnum):
    DENY = "deny"
    MONITOR = "monitor"


class RuleStatus(enum.StrEnum):
    ON = "on"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class Plan:
    """Quotas of an account (PRODUCT §1, §6); the admin may change them per account."""

    custom_ca_limit: int = 5
    hostnames_per_call: int = 50
    sites_limit: int = 100
    waf_rules_per_site: int = 200
    name: str = "enterprise"


@dataclass(frozen=True, slots=True)
class Account:
    id: AccountId
    name: str
    instance_id: str
    plan: Plan
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class AccessKey:
    """An API credential. The secret is kept sealed (encrypted) because HMAC needs it back."""

    id: str
    account_id: AccountId
    sealed_secret: bytes
    created_at: dt.datetime
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Authority:
    """A CA certgate holds the key of: an account's managed CA, or the installation's edge CA."""

    id: CACertificateId
    kind: AuthorityKind
    account_id: AccountId | None
    certificate_pem: str
    sealed_key: bytes
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Site:
    id: SiteId
    account_id: AccountId
    name: str
    access_type: str
    coverage: str
    instance_id: str
    status: str
    verify_code: str
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Record:
    id: RecordId
    site_id: SiteId
    name: str  # full hostname, lowercase, punycode
    type: str
    ttl: int
    value: str  # origin: IP or domain (ESA Data.Value)
    proxied: bool
    biz_name: str
    comment: str
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class CertificateSummary:
    """What certgate keeps of any certificate it shows: the PEM plus the facts users list by."""

    certificate_pem: str
    common_name: str
    subject_dn: str
    issuer_dn: str
    issuer_common_name: str
    serial_hex: str
    fingerprint_sha256: str
    signature_algorithm: str
    public_key_algorithm: str
    san: str
    not_before: dt.datetime
    not_after: dt.datetime


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """Issued by an account's managed CA. The private key is never part of this object."""

    id: CertificateId
    account_id: AccountId
    site_id: SiteId
    authority_id: CACertificateId
    status: CertificateStatus
    validity_days: int
    cert: CertificateSummary
    created_at: dt.datetime
    updated_at: dt.datetime
    revoked_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class ClientCACertificate:
    """A customer's own CA uploaded to a site (UploadClientCaCertificate)."""

    id: CACertificateId
    account_id: AccountId
    site_id: SiteId
    name: str
    cert: CertificateSummary
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class RevokedSerial:
    """A revocation that outlives its certificate: deleting a revoked certificate must not
    make it valid again, so the serial stays listed until the certificate would have expired."""

    authority_id: CACertificateId
    serial_hex: str
    revoked_at: dt.datetime
    not_after: dt.datetime


@dataclass(frozen=True, slots=True)
class Binding:
    """The hostnames of one site bound to one CA (managed or custom). Replaced as a whole."""

    site_id: SiteId
    ca_id: CACertificateId
    hostnames: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class WafRule:
    id: RuleId
    site_id: SiteId
    ruleset_id: int
    phase: str
    name: str
    expression: str
    action: RuleAction
    status: RuleStatus
    position: int
    config_json: str  # the full WafRuleConfig as the client sent it (canonical JSON), for Get/List
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class OriginRule:
    id: RuleId
    site_id: SiteId
    name: str
    expression: str
    enabled: bool
    sequence: int
    origin_scheme: str | None  # "http" | "https" | "follow" | None (= record default)
    origin_http_port: int | None
    origin_https_port: int | None
    origin_host: str | None
    origin_sni: str | None
    origin_read_timeout: int | None  # seconds
    dns_record: str | None  # origin address override
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class EdgeCertificate:
    """The server certificate the edge shows for one hostname (uploaded, or issued by the edge CA)."""

    site_id: SiteId
    hostname: str
    chain_pem: str
    sealed_key: bytes
    uploaded: bool
    not_after: dt.datetime
    updated_at: dt.datetime
