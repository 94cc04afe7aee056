"""The dependencies and limits every use case receives, built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field

from certgate.clock import Clock
from certgate.ids import IdFactory
from certgate.pki.authority import CertificateAuthority
from certgate.services.ports import ExpressionValidator, KeySealer, Store


@dataclass(frozen=True, slots=True)
class Limits:
    """Every limit of PRODUCT §6 that the services enforce, with its documented default."""

    csr_max_bytes: int = 64 * 1024
    ca_pem_max_bytes: int = 16 * 1024
    edge_certificate_max_bytes: int = 64 * 1024
    validity_days_min: int = 1
    validity_days_max: int = 3650
    page_size_max: int = 100
    page_number_max: int = 10_000
    edge_certificate_days: int = 90
    edge_certificate_renew_days: int = 30
    name_max_chars: int = 128


@dataclass(frozen=True, slots=True)
class ServiceContext:
    store: Store
    sealer: KeySealer
    clock: Clock
    ids: IdFactory
    expressions: ExpressionValidator
    limits: Limits = field(default_factory=Limits)
    # Unsealed CAs, keyed by their sealed blob, so issuance does not decrypt and parse per call.
    authority_cache: dict[bytes, CertificateAuthority] = field(default_factory=dict)
