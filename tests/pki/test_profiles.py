from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from certgate.pki.errors import PKIError
from certgate.pki.profiles import (
    DEFAULT_CLIENT_PROFILE,
    DEFAULT_MAX_CA_BYTES,
    DEFAULT_MAX_CSR_BYTES,
    ClientCertificateProfile,
    validate_validity_days,
)


def test_documented_defaults() -> None:
    assert DEFAULT_CLIENT_PROFILE.min_validity_days == 1
    assert DEFAULT_CLIENT_PROFILE.max_validity_days == 3650
    assert DEFAULT_CLIENT_PROFILE.backdate == dt.timedelta(seconds=60)
    assert DEFAULT_MAX_CSR_BYTES == 65536
    assert DEFAULT_MAX_CA_BYTES == 16384


@pytest.mark.parametrize("days", [1, 2, 365, 3649, 3650])
def test_validity_days_inside_the_range(days: int) -> None:
    assert validate_validity_days(days) == days
    assert validate_validity_days(days, DEFAULT_CLIENT_PROFILE) == days


@pytest.mark.parametrize("days", [0, 3651, -1, -365, 10**12])
def test_validity_days_outside_the_range(days: int) -> None:
    with pytest.raises(PKIError) as err:
        validate_validity_days(days)
    assert err.value.reason == "validity.out_of_range"
    assert "between 1 and 3650" in err.value.message


@pytest.mark.parametrize("days", [True, False, 365.0, "365", None, [365]])
def test_validity_days_must_be_an_int(days: object) -> None:
    with pytest.raises(PKIError) as err:
        validate_validity_days(days)
    assert err.value.reason == "validity.not_an_integer"


def test_custom_profile_bounds() -> None:
    profile = ClientCertificateProfile(min_validity_days=7, max_validity_days=90)
    assert validate_validity_days(7, profile) == 7
    assert validate_validity_days(90, profile) == 90
    for days in (6, 91):
        with pytest.raises(PKIError) as err:
            validate_validity_days(days, profile)
        assert err.value.reason == "validity.out_of_range"
        assert "between 7 and 90" in err.value.message


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_validity_days": 0},
        {"min_validity_days": 10, "max_validity_days": 9},
        {"backdate": dt.timedelta(seconds=-1)},
        {"backdate": dt.timedelta(days=2)},
    ],
)
def test_profile_misuse_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ClientCertificateProfile(**kwargs)  # type: ignore[arg-type]


def test_profile_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_CLIENT_PROFILE.max_validity_days = 1  # type: ignore[misc]
