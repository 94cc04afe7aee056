from __future__ import annotations

import re
from pathlib import Path

import pytest

from certgate.errors import CertGateError, InvalidArgument
from certgate.pki import errors as pki_errors
from certgate.pki.errors import PKI_REASONS, REJECTION_REASONS, ClientCertificateRejected, PKIError

PKI_SOURCE = Path(pki_errors.__file__).resolve().parent


def test_pki_error_is_an_invalid_argument_with_reason_and_message() -> None:
    err = PKIError("the CSR is too large", reason="csr.too_large", size=70000)
    assert isinstance(err, InvalidArgument)
    assert err.reason == "csr.too_large"
    assert err.message == "the CSR is too large"
    assert err.details == {"size": 70000}
    assert "csr.too_large" in repr(err)


def test_pki_error_refuses_reasons_outside_the_catalogue() -> None:
    with pytest.raises(ValueError, match="unknown PKI error reason"):
        PKIError("oops", reason="csr.tooo_large")


def test_every_catalogued_reason_is_raised_somewhere_and_vice_versa() -> None:
    """The catalogue is the API's error table input: it must match the code exactly."""
    raised: set[str] = set()
    for path in PKI_SOURCE.glob("*.py"):
        if path.name != "errors.py":
            raised |= set(re.findall(r'reason="([a-z_]+\.[a-z_]+)"', path.read_text()))
    assert raised == set(PKI_REASONS)
    for reason, meaning in PKI_REASONS.items():
        assert re.fullmatch(r"[a-z]+\.[a-z_]+", reason)
        assert meaning


@pytest.mark.parametrize("reason", sorted(REJECTION_REASONS))
def test_client_certificate_rejected(reason: str) -> None:
    err = ClientCertificateRejected(reason, detail="candidates exhausted")  # type: ignore[arg-type]
    assert isinstance(err, CertGateError)
    assert not isinstance(err, InvalidArgument)  # not the API caller's mistake
    assert err.reason == reason
    assert err.detail == "candidates exhausted"
    assert err.message and "candidates" not in err.message  # library text stays out of the message


def test_client_certificate_rejected_reasons_are_fixed() -> None:
    assert REJECTION_REASONS == {"untrusted", "expired", "not_yet_valid", "invalid"}
    with pytest.raises(ValueError, match="unknown rejection reason"):
        ClientCertificateRejected("revoked")  # type: ignore[arg-type]
    assert ClientCertificateRejected("expired", "custom text").message == "custom text"
