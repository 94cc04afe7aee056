"""The one error table: complete for every reason the code base raises, and its rendering."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from certgate.api.errors import (
    CLASSES,
    INTERNAL_MESSAGE,
    REASONS,
    RequestError,
    error_body,
    invalid_parameter,
    missing_parameter,
    reply_for,
)
from certgate.errors import (
    AlreadyExists,
    CertGateError,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    Unauthenticated,
)
from certgate.pki.errors import PKI_REASONS

SRC = Path(__file__).resolve().parents[2] / "src" / "certgate"
# Everything whose errors can reach an API caller (the edge and the CLI have their own boundaries).
SCANNED = ("services", "pki", "storage", "api", "snapshot", "bootstrap.py")
# `reason="x.y"`, `default_reason = "x.y"` and api.auth's `_fail("x.y", ...)`.
REASON_LITERAL = re.compile(r"""(?:reason\s*=\s*|_fail\(\s*)["']([a-z0-9_]+\.[a-z0-9_.]+)["']""")


def raised_reasons() -> set[str]:
    found: set[str] = set()
    for entry in SCANNED:
        path = SRC / entry
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            found.update(REASON_LITERAL.findall(file.read_text()))
    return found


def test_scan_finds_reasons() -> None:
    reasons = raised_reasons()
    assert {"site.not_found", "certificate.status", "csr.malformed", "auth.nonce_used"} <= reasons


def test_every_raised_reason_has_an_entry() -> None:
    missing = sorted(raised_reasons() - set(REASONS))
    assert missing == [], f"add these reasons to api/errors.py REASONS: {missing}"


def test_every_pki_reason_has_an_entry() -> None:
    assert sorted(set(PKI_REASONS) - set(REASONS)) == []


def test_table_entries_are_sane() -> None:
    for reason, spec in REASONS.items():
        assert spec.code and " " not in spec.code, reason
        assert spec.status in (400, 401, 403, 404, 405, 413, 500), reason
        assert spec.summary, reason
        if spec.status == 404:
            assert "NotFound" in spec.code, reason


@pytest.mark.parametrize(
    "exc, code, status",
    [
        (missing_parameter("SiteId"), "MissingSiteId", 400),
        (invalid_parameter("PageSize", "too big"), "InvalidParameter.PageSize", 400),
        (RequestError("x", reason="api.missing_parameter"), "MissingParameter", 400),
        (NotFound("site 1 does not exist", reason="site.not_found"), "SiteNotFound", 404),
        (Conflict("no", reason="certificate.status"), "Certificate.StatusError", 400),
        (Unauthenticated("who?", reason="auth.missing", param="Timestamp"), "MissingTimestamp", 400),
        (InvalidArgument("bad", reason="something.new"), "InvalidParameter", 400),
        (NotFound("gone", reason="something.new"), "Resource.NotFound", 404),
        (AlreadyExists("dup", reason="something.new"), "Resource.AlreadyExists", 400),
        (Conflict("state", reason="something.new"), "IncorrectStatus", 400),
        (QuotaExceeded("full", reason="something.new"), "QuotaExceeded", 400),
        (PermissionDenied("no", reason="something.new"), "Forbidden", 403),
        (Unauthenticated("no", reason="something.new"), "IncompleteSignature", 400),
    ],
)
def test_reply_codes(exc: CertGateError, code: str, status: int) -> None:
    reply = reply_for(exc)
    assert (reply.code, reply.status) == (code, status)
    assert reply.message == exc.message and not reply.internal


@pytest.mark.parametrize(
    "exc",
    [RuntimeError("secret detail"), CertGateError("secret detail"), KeyError("secret detail")],
)
def test_unexpected_errors_are_internal_and_opaque(exc: Exception) -> None:
    reply = reply_for(exc)
    assert (reply.code, reply.status, reply.internal) == ("InternalError", 500, True)
    assert reply.message == INTERNAL_MESSAGE


def test_class_fallbacks_cover_the_taxonomy() -> None:
    covered = {cls for cls, _ in CLASSES}
    assert {InvalidArgument, NotFound, AlreadyExists, Conflict, QuotaExceeded, PermissionDenied,
            Unauthenticated} <= covered  # fmt: skip


def test_error_body_shape() -> None:
    body = error_body(reply_for(missing_parameter("Id")), request_id="RID-1", host_id="127.0.0.1:1")
    assert body["Code"] == "MissingId" and body["RequestId"] == "RID-1" and body["HostId"] == "127.0.0.1:1"
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert "RID-1" in body["Recommend"] and "MissingId" in body["Recommend"]
