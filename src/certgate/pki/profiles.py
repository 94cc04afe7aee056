"""Issuance limits and the named defaults of the X.509 core (PRODUCT §2, §6).

Every limit here is a named setting with a documented default; the composition root may pass
other values, the core never reads configuration itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Final

from certgate.pki.errors import PKIError

#: ValidityDays bounds of CreateClientCertificate (ESA: 1..3650; the console defaults to 365).
MIN_VALIDITY_DAYS: Final = 1
MAX_VALIDITY_DAYS: Final = 3650
DEFAULT_VALIDITY_DAYS: Final = 365
#: Largest CSR accepted (PEM text or DER), in bytes.
DEFAULT_MAX_CSR_BYTES: Final = 64 * 1024
#: Largest custom-CA upload accepted, in bytes.
DEFAULT_MAX_CA_BYTES: Final = 16 * 1024
#: Lifetime of a managed (per-account) CA and of the installation's edge CA: 20 years, so that a
#: 10-year client certificate issued in the CA's first decade never outlives it.
DEFAULT_CA_VALIDITY_DAYS: Final = 3650 * 2
#: notBefore is set this far before "now" so that a certificate is already valid on machines
#: whose clock runs slightly behind ours (an edge node, a device). smallstep backdates by 1 min.
DEFAULT_BACKDATE: Final = dt.timedelta(seconds=60)


@dataclasses.dataclass(frozen=True, slots=True)
class ClientCertificateProfile:
    """Limits applied when issuing a client certificate."""

    min_validity_days: int = MIN_VALIDITY_DAYS
    max_validity_days: int = MAX_VALIDITY_DAYS
    backdate: dt.timedelta = DEFAULT_BACKDATE

    def __post_init__(self) -> None:
        if not 1 <= self.min_validity_days <= self.max_validity_days:
            raise ValueError("need 1 <= min_validity_days <= max_validity_days")
        if not dt.timedelta(0) <= self.backdate <= dt.timedelta(days=1):
            raise ValueError("backdate must be between 0 and 1 day")


DEFAULT_CLIENT_PROFILE: Final = ClientCertificateProfile()


def validate_validity_days(days: object, profile: ClientCertificateProfile = DEFAULT_CLIENT_PROFILE) -> int:
    """Return ``days`` as an int if the profile allows it; raise ``validity.*`` otherwise."""
    # bool is an int subclass; ValidityDays=True is a client bug, not one day.
    if isinstance(days, bool) or not isinstance(days, int):
        raise PKIError("ValidityDays must be an integer number of days", reason="validity.not_an_integer")
    if not profile.min_validity_days <= days <= profile.max_validity_days:
        raise PKIError(
            f"ValidityDays must be between {profile.min_validity_days} and {profile.max_validity_days}; "
            f"got {days}",
            reason="validity.out_of_range",
        )
    return days
