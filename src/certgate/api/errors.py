"""THE table from errors to ESA error responses (code, HTTP status, message).

Domain errors carry no transport detail (``certgate.errors``); this module is the one place that
decides how each of them looks on the wire. Lookup is by the error's dotted ``reason`` first
(``REASONS``), then by its class (``CLASSES``); anything else is an internal error: a 500 with a
generic message and the request id, the details only in the server log. The body always has
ESA's shape ``{RequestId, HostId, Code, Message, Recommend}``, so the SDK can raise it.

It also defines the wire-level errors of the API itself (``RequestError``): missing or malformed
parameters, unknown actions, oversized bodies. Authentication failures are
``certgate.errors.Unauthenticated`` with ``auth.*`` reasons raised by ``api.auth``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

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

INTERNAL_MESSAGE: Final = "The request processing has failed due to some unknown error."
DOCS_ANCHOR: Final = "docs/api.md#error-codes"


class RequestError(InvalidArgument):
    """The HTTP request itself is unusable (before any use case runs).

    ``param`` (in ``details``) names the offending parameter where there is one; the table turns
    it into ESA's ``Missing<Param>`` / ``InvalidParameter.<Param>`` codes.
    """

    default_reason = "api.invalid_request"


def missing_parameter(name: str) -> RequestError:
    return RequestError(
        f"The input parameter {name} that is mandatory for processing this request is not supplied.",
        reason="api.missing_parameter",
        param=name,
    )


def invalid_parameter(name: str, why: str) -> RequestError:
    return RequestError(f"The parameter {name} is invalid: {why}", reason="api.invalid_parameter", param=name)


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """How one kind of error is reported. ``code`` may name ``{param}`` from the error details."""

    code: str
    status: int
    expose_message: bool = True  # False: the caller gets INTERNAL_MESSAGE, the log gets the rest
    summary: str = ""  # for the generated reference


def _s(code: str, status: int = 400, summary: str = "", *, expose: bool = True) -> ErrorSpec:
    return ErrorSpec(code, status, expose, summary)


INTERNAL: Final = _s(
    "InternalError", 500, "unexpected failure; see the server log for the request id", expose=False
)

#: Reason → wire error. Every ``reason=`` a service, the PKI core, storage or the API raises is
#: listed (a test scans the sources), so nothing reaches a caller through a vague fallback.
REASONS: Final[Mapping[str, ErrorSpec]] = MappingProxyType(
    {
        # -- the API's own request checks ------------------------------------------------------
        "api.missing_parameter": _s("Missing{param}", 400, "a required parameter is absent or empty"),
        "api.invalid_parameter": _s(
            "InvalidParameter.{param}", 400, "a parameter has the wrong type or value"
        ),
        "api.invalid_request": _s("InvalidParameter", 400, "the request cannot be read"),
        "api.missing_action": _s("MissingAction", 400, "no x-acs-action header (or Action parameter)"),
        "api.unknown_action": _s("InvalidApi.NotFound", 404, "the action does not exist in 2024-09-10"),
        "api.missing_version": _s("MissingVersion", 400, "no x-acs-version header (or Version parameter)"),
        "api.unsupported_version": _s("InvalidVersion", 400, "only API version 2024-09-10 is served"),
        "api.body_too_large": _s("RequestEntityTooLarge", 413, "the request body exceeds the limit"),
        "api.unsupported_content_type": _s(
            "InvalidParameter.ContentType", 400, "a body that is not application/x-www-form-urlencoded"
        ),
        "api.not_found": _s("InvalidApi.NotFound", 404, "no such path"),
        "api.method_not_allowed": _s("MethodNotAllowed", 405, "the path does not accept this HTTP method"),
        # -- authentication (api.auth) ---------------------------------------------------------
        "auth.missing": _s("Missing{param}", 400, "a signature element (header or V2 parameter) is absent"),
        "auth.incomplete_signature": _s(
            "IncompleteSignature", 400, "Authorization is malformed or leaves a required header unsigned"
        ),
        "auth.signature_mismatch": _s(
            "SignatureDoesNotMatch", 400, "the signature, or x-acs-content-sha256, does not match the request"
        ),
        "auth.unknown_key": _s(
            "InvalidAccessKeyId.NotFound", 404, "the AccessKeyId does not exist or is disabled"
        ),
        "auth.timestamp_format": _s(
            "InvalidTimeStamp.Format", 400, "x-acs-date / Timestamp is not yyyy-MM-ddTHH:mm:ssZ"
        ),
        "auth.timestamp_expired": _s(
            "InvalidTimeStamp.Expired",
            400,
            "x-acs-date / Timestamp is more than 15 minutes off the server clock",
        ),
        "auth.nonce_used": _s("SignatureNonceUsed", 400, "the signature nonce was already used"),
        "auth.edge_token": _s(
            "Unauthorized", 401, "the edge snapshot endpoint needs the installation's edge token"
        ),
        # -- accounts and installation ---------------------------------------------------------
        "account.not_found": _s("Account.NotFound", 404, "the caller's account no longer exists"),
        "account.exists": _s("Account.AlreadyExists", 400, "an account of that name exists"),
        "account.name": _s("InvalidParameter.Name", 400, "account name out of range"),
        "account.no_ca": _s(
            "InternalError", 500, "the account has no managed CA (installation not initialised)"
        ),
        "edge.no_ca": _s("InternalError", 500, "the installation has no edge CA (run certgate admin init)"),
        # -- sites and records -----------------------------------------------------------------
        "site.not_found": _s("SiteNotFound", 404, "no such site in the caller's account"),
        "site.exists": _s("Site.AlreadyExists", 400, "the site name is taken in this installation"),
        "site.instance_not_found": _s(
            "Instance.NotFound", 404, "InstanceId is not the account's plan instance"
        ),
        "site.access_type": _s("InvalidParameter.AccessType", 400, "AccessType is not NS or CNAME"),
        "site.coverage": _s("InvalidParameter.Coverage", 400, "Coverage is not domestic, global or overseas"),
        "site.search": _s("InvalidParameter.SiteSearchType", 400, "unknown SiteSearchType"),
        "site.quota_exceeded": _s("QuotaExceeded.Site", 400, "the plan's site limit is reached"),
        "record.not_found": _s("Record.NotFound", 404, "no such record in the caller's account"),
        "record.exists": _s("Record.AlreadyExists", 400, "a record of that name exists"),
        "record.type": _s("InvalidParameter.Type", 400, "unsupported record Type"),
        "record.proxied": _s("InvalidParameter.Proxied", 400, "this record type cannot be proxied"),
        "record.ttl": _s("InvalidParameter.Ttl", 400, "Ttl outside 1..86400"),
        "record.comment": _s("InvalidParameter.Comment", 400, "Comment longer than 100 characters"),
        "record.value": _s("InvalidParameter.Data", 400, "Data.Value does not fit the record type"),
        "record.search": _s("InvalidParameter.RecordMatchType", 400, "unknown RecordMatchType"),
        "hostname.malformed": _s("InvalidParameter.Hostname", 400, "a hostname is malformed"),
        "hostname.port_or_path": _s(
            "InvalidParameter.Hostname", 400, "a hostname carries a scheme, port or path"
        ),
        "hostname.foreign_site": _s(
            "Hostname.NotInSite", 400, "a hostname is neither the site apex nor under it"
        ),
        "hostname.too_many": _s(
            "QuotaExceeded.Hostnames", 400, "more hostnames than the plan allows per call"
        ),
        # -- client certificates ---------------------------------------------------------------
        "certificate.not_found": _s("Certificate.NotFound", 404, "no such client certificate in the site"),
        "certificate.status": _s(
            "Certificate.StatusError", 400, "the certificate's status forbids the operation"
        ),
        "certificate.no_key_source": _s("MissingPkeyType", 400, "neither CSR nor PkeyType was given"),
        "validity.out_of_range": _s(
            "InvalidParameter.ValidityDays", 400, "ValidityDays outside the allowed range"
        ),
        "validity.not_an_integer": _s("InvalidParameter.ValidityDays", 400, "ValidityDays is not an integer"),
        "validity.exceeds_issuer": _s(
            "InvalidParameter.ValidityDays", 400, "the certificate would outlive the issuing CA"
        ),
        "issuer.not_valid": _s(
            "Certificate.IssuerNotValid", 400, "the managed CA is expired or not yet valid"
        ),
        "name.invalid": _s("InvalidParameter.Name", 400, "a name is empty, too long or malformed"),
        "csr.too_large": _s("InvalidParameter.CSR", 400, "the CSR exceeds the size limit"),
        "csr.empty": _s("InvalidParameter.CSR", 400, "no CSR found"),
        "csr.malformed": _s("InvalidParameter.CSR", 400, "the CSR cannot be parsed"),
        "csr.is_certificate": _s("InvalidParameter.CSR", 400, "a certificate was sent as CSR"),
        "csr.is_private_key": _s("InvalidParameter.CSR", 400, "a private key was sent as CSR"),
        "csr.multiple": _s("InvalidParameter.CSR", 400, "more than one CSR"),
        "csr.bad_signature": _s("InvalidParameter.CSR", 400, "the CSR's self-signature does not verify"),
        "csr.weak_signature": _s(
            "InvalidParameter.CSR", 400, "the CSR is signed with a hash weaker than SHA-256"
        ),
        "csr.empty_subject": _s("InvalidParameter.CSR", 400, "the CSR has neither subject nor SAN"),
        "key.unsupported_type": _s(
            "InvalidParameter.KeyType", 400, "unsupported key type (PkeyType or CSR key)"
        ),
        "key.rsa_too_small": _s("InvalidParameter.KeyType", 400, "RSA key shorter than 2048 bits"),
        "key.rsa_too_large": _s("InvalidParameter.KeyType", 400, "RSA key longer than 8192 bits"),
        "key.rsa_bad_exponent": _s("InvalidParameter.KeyType", 400, "RSA public exponent even or < 3"),
        "key.unsupported_curve": _s("InvalidParameter.KeyType", 400, "elliptic curve not allowed"),
        "key.malformed": _s("InvalidParameter.PrivateKey", 400, "the private key PEM cannot be parsed"),
        "key.encrypted": _s("InvalidParameter.PrivateKey", 400, "the private key PEM is password-protected"),
        # -- client CA certificates and bindings -----------------------------------------------
        "ca.not_found": _s("CaCertificate.NotFound", 404, "no such client CA certificate in the site"),
        "ca.duplicate": _s(
            "CaCertificate.Duplicated", 400, "the same CA (SHA-256) is already uploaded to the site"
        ),
        "ca.quota_exceeded": _s("QuotaExceeded.CaCertificate", 400, "the plan's custom CA limit is reached"),
        "ca.still_bound": _s("CaCertificate.InUse", 400, "the CA is still bound to hostnames"),
        "ca.not_a_ca": _s("CaCertificate.NotCA", 400, "the certificate is not a CA (basicConstraints)"),
        "ca.expired": _s("CaCertificate.Expired", 400, "the CA certificate has expired"),
        "ca.not_yet_valid": _s("CaCertificate.NotYetValid", 400, "the CA certificate is not valid yet"),
        "ca.name": _s("InvalidParameter.Name", 400, "Name longer than 128 characters"),
        "ca.too_large": _s("InvalidParameter.Certificate", 400, "the CA PEM exceeds the size limit"),
        "ca.empty": _s("InvalidParameter.Certificate", 400, "no certificate found"),
        "ca.malformed": _s("InvalidParameter.Certificate", 400, "the certificate cannot be parsed"),
        "ca.multiple_certificates": _s("InvalidParameter.Certificate", 400, "more than one certificate"),
        "ca.contains_private_key": _s("InvalidParameter.Certificate", 400, "the upload holds a private key"),
        "ca.no_cert_sign": _s("InvalidParameter.Certificate", 400, "keyUsage lacks keyCertSign"),
        "ca.no_client_auth": _s("InvalidParameter.Certificate", 400, "extendedKeyUsage excludes clientAuth"),
        "ca.unusable_extension": _s(
            "InvalidParameter.Certificate", 400, "an extension makes the CA unusable"
        ),
        "ca.bad_signature": _s("InvalidParameter.Certificate", 400, "the self-signature does not verify"),
        "ca.weak_signature": _s("InvalidParameter.Certificate", 400, "signed with SHA-1, MD5 or weaker"),
        "pem.empty": _s("InvalidParameter.Certificate", 400, "no PEM data"),
        "pem.malformed": _s("InvalidParameter.Certificate", 400, "broken PEM"),
        "pem.wrong_type": _s("InvalidParameter.Certificate", 400, "a PEM block of another type"),
        "pem.multiple_certificates": _s("InvalidParameter.Certificate", 400, "more than one certificate"),
        "pem.contains_private_key": _s(
            "InvalidParameter.Certificate", 400, "a private key among certificates"
        ),
        "crl.malformed": _s("InvalidParameter.Crl", 400, "the CRL cannot be parsed"),
        "crl.wrong_issuer": _s("InvalidParameter.Crl", 400, "the CRL names another issuer"),
        "crl.bad_signature": _s("InvalidParameter.Crl", 400, "the CRL's signature does not verify"),
        # -- edge server certificates (SetCertificate) -----------------------------------------
        "edge_cert.too_large": _s("InvalidParameter.Certificate", 400, "the certificate chain is too large"),
        "edge_cert.malformed": _s("InvalidParameter.Certificate", 400, "no certificate in Certificate"),
        "edge_cert.key": _s("InvalidParameter.PrivateKey", 400, "PrivateKey is not a PEM private key"),
        "edge_cert.key_mismatch": _s(
            "Certificate.KeyMismatch", 400, "PrivateKey does not match the certificate"
        ),
        "edge_cert.expired": _s("Certificate.Expired", 400, "the certificate is not currently valid"),
        "edge_cert.no_hostname": _s(
            "Certificate.HostnameMismatch", 400, "the certificate covers no record of the site"
        ),
        # -- WAF and origin rules --------------------------------------------------------------
        "rule.parse_error": _s(
            "InvalidParameter.Expression", 400, "the rule expression does not parse (line, column)"
        ),
        "waf.not_found": _s("WafRule.NotFound", 404, "no such WAF rule in the site"),
        "waf.phase": _s("InvalidParameter.Phase", 400, "unknown Phase"),
        "waf.phase_unsupported": _s("InvalidParameter.Phase", 400, "only http_custom is supported"),
        "waf.expression": _s("InvalidParameter.Expression", 400, "Config.Expression is missing"),
        "waf.action": _s("InvalidParameter.Action", 400, "Config.Action missing or not deny/monitor"),
        "waf.action_unsupported": _s("InvalidParameter.Action", 400, "js and captcha are not available"),
        "waf.status": _s("InvalidParameter.Status", 400, "Status is not on/off"),
        "waf.name": _s("InvalidParameter.Name", 400, "Name empty or longer than 128 characters"),
        "waf.position": _s("InvalidParameter.Position", 400, "Position < 1"),
        "waf.quota_exceeded": _s(
            "QuotaExceeded.WafRule", 400, "the plan's WAF rule limit per site is reached"
        ),
        "origin_rule.not_found": _s("OriginRule.NotFound", 404, "no such origin rule in the site"),
        "origin_rule.scheme": _s(
            "InvalidParameter.OriginScheme", 400, "OriginScheme is not http/https/follow"
        ),
        "origin_rule.port": _s("InvalidParameter.OriginPort", 400, "an origin port outside 1..65535"),
        "origin_rule.timeout": _s(
            "InvalidParameter.OriginReadTimeout", 400, "OriginReadTimeout outside 1..600"
        ),
        # -- storage races and invariants ------------------------------------------------------
        "storage.already_exists": _s(
            "Resource.AlreadyExists", 400, "a concurrent request created the same object"
        ),
        "storage.not_found": _s("Resource.NotFound", 404, "the object vanished (concurrent delete)"),
        "storage.parent_not_found": _s(
            "Resource.NotFound", 404, "a parent object vanished (concurrent delete)"
        ),
        "storage.page": _s("InvalidParameter.PageNumber", 400, "a page outside the allowed range"),
        "storage.match": _s("InvalidParameter", 400, "unknown match mode"),
        "storage.duplicate_hostname": _s("InvalidParameter.Hostnames", 400, "a hostname listed twice"),
        # -- installation faults: the operator's business, never the caller's ---------------
        **{
            reason: _s(
                "InternalError", 500, "installation fault (master key, sealed data, schema)", expose=False
            )
            for reason in (
                "master_key.invalid",
                "master_key.length",
                "master_key.not_a_file",
                "master_key.permissions",
                "master_key.no_directory",
                "master_key.encoding",
                "seal.corrupt",
                "seal.truncated",
                "seal.unknown_format",
                "seal.wrong_key",
                "storage.schema",
                "storage.url",
            )
        },
        "pki.invalid": _s("InvalidParameter", 400, "input refused by the X.509 core"),
        "api.listen": _s("InvalidParameter.Listen", 400, "--listen is not HOST:PORT (command line only)"),
        "snapshot.invalid": _s("InternalError", 500, "the snapshot could not be built", expose=False),
        "snapshot.digest": _s("InternalError", 500, "the snapshot could not be built", expose=False),
    }
)

#: Class → wire error, for reasons not listed above (most specific class first).
CLASSES: Final[tuple[tuple[type[CertGateError], ErrorSpec], ...]] = (
    (Unauthenticated, _s("IncompleteSignature", 400, "authentication failed")),
    (PermissionDenied, _s("Forbidden", 403, "the caller may not do this")),
    (NotFound, _s("Resource.NotFound", 404, "the object does not exist for this caller")),
    (AlreadyExists, _s("Resource.AlreadyExists", 400, "the object exists already")),
    (Conflict, _s("IncorrectStatus", 400, "the object's state forbids the operation")),
    (QuotaExceeded, _s("QuotaExceeded", 400, "a plan limit is reached")),
    (InvalidArgument, _s("InvalidParameter", 400, "the input is invalid")),
)


@dataclass(frozen=True, slots=True)
class ErrorReply:
    code: str
    status: int
    message: str
    internal: bool  # log it with its traceback


def spec_for(exc: BaseException) -> ErrorSpec:
    if isinstance(exc, CertGateError):
        spec = REASONS.get(exc.reason)
        if spec is not None:
            return spec
        for cls, by_class in CLASSES:
            if isinstance(exc, cls):
                return by_class
    return INTERNAL


def reply_for(exc: BaseException) -> ErrorReply:
    spec = spec_for(exc)
    details: Mapping[str, Any] = exc.details if isinstance(exc, CertGateError) else {}
    code = spec.code
    if "{param}" in code:
        code = code.replace("{param}", str(details.get("param", "")).strip() or "Parameter")
        if code.endswith("."):
            code = code[:-1]
    if spec.expose_message and isinstance(exc, CertGateError):
        message = exc.message
    else:
        message = INTERNAL_MESSAGE
    return ErrorReply(code, spec.status, message, internal=spec.status >= 500)


def error_body(reply: ErrorReply, *, request_id: str, host_id: str) -> dict[str, str]:
    return {
        "RequestId": request_id,
        "HostId": host_id,
        "Code": reply.code,
        "Message": reply.message,
        "Recommend": f"{DOCS_ANCHOR} ({reply.code}); request id {request_id}",
    }
