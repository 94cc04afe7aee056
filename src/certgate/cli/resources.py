"""``certgate configure|sites|records|certs|cas|hostnames|waf|origin-rules``: resource commands
that call the API exactly as the ESA SDK does (signed RPC requests, see ``cli/client.py``).

Each command maps to one ESA action (ESA-API.md §2). Output is a table or a ``key: value``
block by default and the API's JSON with ``--json``. Failures end in ONE stderr line,
``certgate: error: <Code>: <Message>``: exit status 1 for API and network errors, 2 for usage
errors (bad flags, missing profile, unreadable input file).

Secrets: the AccessKeySecret is never printed. A server-generated private key is shown at most
once — written 0600 to ``--out-key``, or printed with a warning when no file was given.
"""

from __future__ import annotations

import argparse
import getpass
import os
import ssl
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO

from certgate.cli import profile as profiles
from certgate.cli.client import ApiError, Client, Credentials, Endpoint, TransportError
from certgate.cli.output import Column, Progress, dump_json, fields, table

PROG = "certgate"
MAX_INPUT_FILE_BYTES = 1 << 20
"""Input files (CSR, CA PEM) larger than this are refused before sending (the server's limits
are far lower; this only stops an accidental upload of a wrong, huge file)."""

KEY_TYPES = ("RSA", "RSA2048", "RSA3072", "RSA4096", "ECDSA", "ECDSA384")
WAF_ACTIONS = ("deny", "monitor")
ON_OFF = ("on", "off")


class UsageError(Exception):
    """The command line cannot be executed as given (exit status 2)."""


class CommandParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit status 2) like every other error."""

    def error(self, message: str) -> NoReturn:
        name = self.prog.removeprefix(f"{PROG} ")
        self.exit(2, f"{PROG}: error: {name}: {message} (see '{self.prog} --help')\n")


# -- invocation plumbing ---------------------------------------------------------------------


@dataclass
class Invocation:
    """What a command handler works with: its arguments, a signed client and the two streams."""

    args: argparse.Namespace
    client: Client
    profile: profiles.Resolved
    out: TextIO
    err: TextIO

    @property
    def json(self) -> bool:
        return bool(self.args.json)

    def call(
        self,
        action: str,
        method: str,
        *,
        query: Mapping[str, object] | None = None,
        body: Mapping[str, object] | None = None,
        progress: str | None = None,
    ) -> dict[str, Any]:
        with Progress(progress or f"Waiting for {action}", self.err):
            return self.client.call(action, method=method, query=query, body=body)

    def print(self, text: str = "") -> None:
        print(text, file=self.out)

    def note(self, text: str) -> None:
        print(text, file=self.err)

    def show(self, data: Mapping[str, Any], render: Callable[[Mapping[str, Any]], str]) -> None:
        self.print(dump_json(data) if self.json else render(data))


Handler = Callable[[Invocation], int]


def _fail(err: TextIO, message: str, status: int) -> int:
    print(f"{PROG}: error: {message}", file=err)
    return status


def _ssl_context(profile: profiles.Resolved) -> ssl.SSLContext | bool:
    if not profile.ca_file:
        return True
    try:
        return ssl.create_default_context(cafile=profile.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise profiles.ProfileError(f"cannot load CA file {profile.ca_file}: {exc}") from None


def profile_path(args: argparse.Namespace, env: Mapping[str, str]) -> Path:
    return Path(args.profile).expanduser() if args.profile else profiles.default_path(env)


def open_client(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[profiles.Resolved, Client]:
    """Resolve the profile (file < environment < flags) and build a client; ProfileError if unusable."""
    profile = profiles.resolve(profile_path(args, env), env, {"endpoint": args.endpoint})
    try:
        endpoint = Endpoint.parse(profile.endpoint)
    except ValueError as exc:
        raise profiles.ProfileError(str(exc)) from None
    credentials = Credentials(profile.access_key_id, profile.access_key_secret)
    return profile, Client(endpoint, credentials, timeout=args.timeout, verify=_ssl_context(profile))


def run(handler: Handler, args: argparse.Namespace) -> int:
    """Run one resource command and turn every expected failure into one line and an exit status."""
    out, err = sys.stdout, sys.stderr
    try:
        profile, client = open_client(args, os.environ)
    except profiles.ProfileError as exc:
        return _fail(err, str(exc), 2)
    warning = profiles.permission_warning(profile_path(args, os.environ))
    if warning:
        print(f"{PROG}: warning: {warning}", file=err)
    with client:
        try:
            return handler(Invocation(args, client, profile, out, err))
        except ApiError as exc:
            return _fail(err, f"{exc.code}: {_one_line(exc.message)}", 1)
        except TransportError as exc:
            return _fail(err, _one_line(str(exc)), 1)
        except UsageError as exc:
            return _fail(err, str(exc), 2)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- small helpers -----------------------------------------------------------------------------


def read_input_file(path: str, what: str) -> str:
    """A text file given on the command line (``-`` = stdin); UsageError if it cannot be read."""
    if path == "-":
        return sys.stdin.read()
    try:
        p = Path(path)
        if p.is_file() and p.stat().st_size > MAX_INPUT_FILE_BYTES:
            raise UsageError(f"{what} file {path} is larger than {MAX_INPUT_FILE_BYTES} bytes")
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{what} file {path} is not UTF-8 text (PEM expected)") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None


def _check_writable(path: str, what: str, *, must_not_exist: bool) -> None:
    p = Path(path)
    if must_not_exist and (p.exists() or p.is_symlink()):
        raise UsageError(f"{what} {path} already exists; refusing to overwrite it")
    if not p.parent.is_dir():
        raise UsageError(f"directory {p.parent} for {what} {path} does not exist")


def write_private_file(path: str, text: str) -> None:
    """Create ``path`` with mode 0600; never overwrite, never follow a planted symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def write_public_file(path: str, text: str) -> None:
    Path(path).write_text(text, encoding="utf-8")


def _page_hint(inv: Invocation, data: Mapping[str, Any], shown: int) -> None:
    total, page, size = data.get("TotalCount"), data.get("PageNumber"), data.get("PageSize")
    if inv.json or not isinstance(total, int) or not isinstance(page, int) or not isinstance(size, int):
        return
    if page * size < total:
        inv.note(f"showing {shown} of {total}; next page: --page {page + 1}")


def _list(inv: Invocation, data: Mapping[str, Any], key: str, columns: Sequence[Column]) -> int:
    rows = data.get(key) or []
    if inv.json:
        inv.print(dump_json(data))
        return 0
    inv.print(table(rows, columns))
    _page_hint(inv, data, len(rows))
    return 0


def _paging(args: argparse.Namespace) -> dict[str, object]:
    return {"PageNumber": args.page, "PageSize": args.page_size}


# -- configure -------------------------------------------------------------------------------


def cmd_configure(args: argparse.Namespace) -> int:
    err = sys.stderr
    path = profile_path(args, os.environ)
    try:
        current = profiles.read_file(path)
    except profiles.ProfileError as exc:
        return _fail(err, str(exc), 2)
    if args.show:
        shown = current.merged(profiles.env_overrides(os.environ))
        print(f"profile:           {path}{'' if path.exists() else ' (not created yet)'}")
        print(f"endpoint:          {shown.endpoint or '-'}")
        print(f"access key id:     {shown.access_key_id or '-'}")
        print(f"access key secret: {'(set)' if shown.access_key_secret else '-'}")
        print(f"instance id:       {shown.instance_id or '-'}")
        print(f"CA file:           {shown.ca_file or '-'}")
        return 0
    secret = args.access_key_secret
    if secret == "-":
        secret = sys.stdin.readline().strip()
    elif secret is None and not current.access_key_secret and sys.stdin.isatty():
        secret = getpass.getpass("AccessKeySecret: ").strip()
    updated = current.merged(
        {
            "endpoint": args.endpoint,
            "access_key_id": args.access_key_id,
            "access_key_secret": secret,
            "instance_id": args.instance_id,
            "ca_file": str(Path(args.ca_file).resolve()) if args.ca_file else None,
        }
    )
    missing = updated.missing()
    if missing:
        flags = ", ".join("--" + m.replace("_", "-") for m in missing)
        return _fail(err, f"configure: missing {flags}", 2)
    assert updated.endpoint is not None
    try:
        Endpoint.parse(updated.endpoint)
    except ValueError as exc:
        return _fail(err, f"configure: {exc}", 2)
    try:
        profiles.write_file(path, updated)
    except OSError as exc:
        return _fail(err, f"cannot write profile {path}: {exc.strerror or exc}", 1)
    print(f"Profile saved to {path} (endpoint {updated.endpoint}, AccessKeyId {updated.access_key_id}).")
    return 0


# -- sites -----------------------------------------------------------------------------------

SITE_COLUMNS = [
    Column("SiteId", "SiteId"),
    Column("SiteName", "SiteName"),
    Column("Status", "Status"),
    Column("AccessType", "AccessType"),
    Column("Coverage", "Coverage"),
    Column("CreateTime", "CreateTime"),
]


def sites_create(inv: Invocation) -> int:
    a = inv.args
    instance_id = a.instance_id or inv.profile.instance_id
    if not instance_id:
        raise UsageError(
            "sites create: --instance-id is required (the InstanceId printed by "
            "'certgate admin create-account'; or save it with 'certgate configure --instance-id ID')"
        )
    data = inv.call(
        "CreateSite",
        "POST",
        query={
            "SiteName": a.name,
            "AccessType": a.access_type,
            "Coverage": a.coverage,
            "InstanceId": instance_id,
        },
    )
    inv.show(
        data,
        lambda d: fields(
            d,
            [
                Column("SiteId", "SiteId"),
                Column("VerifyCode", "VerifyCode"),
                Column("NameServerList", "NameServerList"),
            ],
        ),
    )
    return 0


def sites_list(inv: Invocation) -> int:
    a = inv.args
    query = {"SiteName": a.name, "SiteSearchType": a.search, **_paging(a)}
    return _list(inv, inv.call("ListSites", "GET", query=query), "Sites", SITE_COLUMNS)


def sites_get(inv: Invocation) -> int:
    data = inv.call("GetSite", "GET", query={"SiteId": inv.args.site_id})
    inv.show(
        data,
        lambda d: fields(
            d.get("SiteModel") or {},
            [*SITE_COLUMNS, Column("InstanceId", "InstanceId"), Column("VerifyCode", "VerifyCode")],
        ),
    )
    return 0


def sites_delete(inv: Invocation) -> int:
    data = inv.call("DeleteSite", "POST", query={"SiteId": inv.args.site_id})
    inv.show(data, lambda d: f"Site {inv.args.site_id} deleted.")
    return 0


# -- records ---------------------------------------------------------------------------------

RECORD_COLUMNS = [
    Column("RecordId", "RecordId"),
    Column("RecordName", "RecordName"),
    Column("Type", "RecordType"),
    Column("Value", "Data.Value"),
    Column("Proxied", "Proxied"),
    Column("Ttl", "Ttl"),
    Column("BizName", "BizName"),
]


def records_create(inv: Invocation) -> int:
    a = inv.args
    query: dict[str, object] = {
        "SiteId": a.site_id,
        "RecordName": a.name,
        "Type": a.type,
        "Ttl": a.ttl,
        "Data": {"Value": a.value},
        "Proxied": a.proxied,
        "BizName": a.biz_name if a.biz_name else ("web" if a.proxied else None),
        "Comment": a.comment,
    }
    data = inv.call("CreateRecord", "POST", query=query)
    inv.show(data, lambda d: fields(d, [Column("RecordId", "RecordId")]))
    return 0


def records_list(inv: Invocation) -> int:
    a = inv.args
    query = {"SiteId": a.site_id, "RecordName": a.name, "Type": a.type, **_paging(a)}
    return _list(inv, inv.call("ListRecords", "GET", query=query), "Records", RECORD_COLUMNS)


def records_delete(inv: Invocation) -> int:
    data = inv.call("DeleteRecord", "POST", query={"RecordId": inv.args.record_id})
    inv.show(data, lambda d: f"Record {inv.args.record_id} deleted.")
    return 0


# -- client certificates ---------------------------------------------------------------------

CERT_COLUMNS = [
    Column("Id", "Id"),
    Column("Status", "Status"),
    Column("CommonName", "CommonName"),
    Column("Key", "PubkeyAlgorithm"),
    Column("NotBefore", "NotBefore"),
    Column("NotAfter", "NotAfter"),
]
CERT_DETAIL = [
    Column("Id", "Id"),
    Column("Status", "Status"),
    Column("CommonName", "CommonName"),
    Column("SAN", "SAN"),
    Column("Issuer", "Issuer"),
    Column("SerialNumber", "SerialNumber"),
    Column("FingerprintSha256", "FingerprintSha256"),
    Column("SignatureAlgorithm", "SignatureAlgorithm"),
    Column("PubkeyAlgorithm", "PubkeyAlgorithm"),
    Column("CACertificateId", "CACertificateId"),
    Column("NotBefore", "NotBefore"),
    Column("NotAfter", "NotAfter"),
]
CREATED_CERT = [c for c in CERT_DETAIL if c.header not in ("SAN", "PubkeyAlgorithm")] + [
    Column("ValidityDays", "ValidityDays")
]

KEY_SHOWN_ONCE = (
    "this private key is shown ONCE: the server does not keep it and cannot show it again. "
    "Save it now (next time, use --out-key FILE)."
)


def certs_create(inv: Invocation) -> int:
    a = inv.args
    if a.csr and a.out_key:
        raise UsageError("certs create: --out-key only applies to a server-generated key (not with --csr)")
    if a.out_cert:
        _check_writable(a.out_cert, "certificate file", must_not_exist=False)
    if a.out_key:
        _check_writable(a.out_key, "key file", must_not_exist=True)
    body: dict[str, object] = {"ValidityDays": a.validity_days}
    if a.csr:
        body["CSR"] = read_input_file(a.csr, "CSR")
        progress = "Issuing client certificate for the CSR"
    else:
        body["PkeyType"] = a.key_type or "RSA"
        progress = f"Generating the {body['PkeyType']} key and issuing the client certificate"
    data = inv.call(
        "CreateClientCertificate", "POST", query={"SiteId": a.site_id}, body=body, progress=progress
    )

    certificate = data.get("Certificate")
    private_key = data.get("PrivateKey")
    status = 0
    key_saved = False
    if a.out_cert and isinstance(certificate, str):
        try:
            write_public_file(a.out_cert, certificate)
        except OSError as exc:
            inv.note(f"{PROG}: error: cannot write {a.out_cert}: {exc.strerror or exc}")
            status = 1
    if private_key and a.out_key:
        try:
            write_private_file(a.out_key, private_key)
            key_saved = True
        except OSError as exc:
            # The key exists nowhere else: print it rather than lose it.
            reason = exc.strerror or exc
            inv.note(f"{PROG}: error: cannot write {a.out_key}: {reason}; printing the key instead")
            status = 1

    if inv.json:
        shown = {k: v for k, v in data.items() if not (k == "PrivateKey" and key_saved)}
        inv.print(dump_json(shown))
    else:
        inv.print(fields(data, CREATED_CERT))
        if a.out_cert and status == 0:
            inv.print(f"Certificate written to {a.out_cert}")
        elif isinstance(certificate, str):
            inv.print()
            inv.print(certificate.rstrip("\n"))
        if key_saved:
            inv.print(f"Private key written to {a.out_key} (mode 0600); the server keeps no copy.")
        elif private_key:
            inv.print()
            inv.print(str(private_key).rstrip("\n"))
    if private_key and not key_saved:
        inv.note(f"{PROG}: warning: {KEY_SHOWN_ONCE}")
    return status


def certs_list(inv: Invocation) -> int:
    a = inv.args
    data = inv.call("ListClientCertificates", "GET", query={"SiteId": a.site_id, **_paging(a)})
    return _list(inv, data, "Result", CERT_COLUMNS)


def certs_get(inv: Invocation) -> int:
    a = inv.args
    data = inv.call("GetClientCertificate", "GET", query={"SiteId": a.site_id, "Id": a.id})
    certificate = data.get("Certificate")
    if a.out_cert and isinstance(certificate, str):
        try:
            write_public_file(a.out_cert, certificate)
        except OSError as exc:
            return _fail(inv.err, f"cannot write {a.out_cert}: {exc.strerror or exc}", 1)
    inv.show(data, lambda d: fields(d.get("Result") or {}, CERT_DETAIL))
    if a.out_cert and not inv.json:
        inv.print(f"Certificate written to {a.out_cert}")
    return 0


def _cert_transition(action: str, verb: str) -> Handler:
    def handler(inv: Invocation) -> int:
        a = inv.args
        data = inv.call(action, "GET", query={"SiteId": a.site_id, "Id": a.id})
        inv.show(data, lambda d: f"Client certificate {a.id} {verb}.")
        return 0

    return handler


# -- client CA certificates -------------------------------------------------------------------

CA_COLUMNS = [
    Column("Id", "Id"),
    Column("Name", "Name"),
    Column("CommonName", "CommonName"),
    Column("Status", "Status"),
    Column("NotAfter", "NotAfter"),
    Column("FingerprintSha256", "FingerprintSha256"),
]
CA_DETAIL = [
    Column("Id", "Id"),
    Column("Name", "Name"),
    Column("CommonName", "CommonName"),
    Column("Issuer", "Issuer"),
    Column("Status", "Status"),
    Column("Type", "Type"),
    Column("SerialNumber", "SerialNumber"),
    Column("FingerprintSha256", "FingerprintSha256"),
    Column("SignatureAlgorithm", "SignatureAlgorithm"),
    Column("PubkeyAlgorithm", "PubkeyAlgorithm"),
    Column("NotBefore", "NotBefore"),
    Column("NotAfter", "NotAfter"),
]


def cas_upload(inv: Invocation) -> int:
    a = inv.args
    body = {"Certificate": read_input_file(a.file, "CA certificate"), "Name": a.name}
    data = inv.call("UploadClientCaCertificate", "POST", query={"SiteId": a.site_id}, body=body)
    inv.show(data, lambda d: fields(d, [c for c in CA_DETAIL if c.key in d or c.header == "Id"]))
    return 0


def cas_list(inv: Invocation) -> int:
    a = inv.args
    data = inv.call("ListClientCaCertificates", "GET", query={"SiteId": a.site_id, **_paging(a)})
    return _list(inv, data, "Result", CA_COLUMNS)


def cas_get(inv: Invocation) -> int:
    a = inv.args
    data = inv.call("GetClientCaCertificate", "GET", query={"SiteId": a.site_id, "Id": a.id})
    inv.show(data, lambda d: fields(d.get("Result") or {}, CA_DETAIL))
    return 0


def cas_delete(inv: Invocation) -> int:
    a = inv.args
    data = inv.call("DeleteClientCaCertificate", "GET", query={"SiteId": a.site_id, "Id": a.id})
    inv.show(data, lambda d: f"Client CA certificate {a.id} deleted.")
    return 0


# -- hostname bindings ------------------------------------------------------------------------


def _render_binding(data: Mapping[str, Any], ca_id: str | None) -> str:
    names = data.get("Hostnames") or []
    # Without --ca-id the binding is the managed CA's (the server may still name its Id).
    managed_id = data.get("Id")
    who = f"client CA {ca_id}" if ca_id else "the managed CA" + (f" ({managed_id})" if managed_id else "")
    if not names:
        return f"No hostnames are bound to {who}."
    return f"Hostnames bound to {who}:\n" + "\n".join(f"  {n}" for n in names)


def hostnames_set(inv: Invocation) -> int:
    a = inv.args
    if a.clear and a.names:
        raise UsageError("hostnames set: give hostnames or --clear, not both")
    if not a.clear and not a.names:
        raise UsageError("hostnames set: give at least one hostname, or --clear to unbind all")
    names: list[str] = [] if a.clear else list(a.names)
    data = inv.call(
        "SetClientCaCertificateHostnames",
        "POST",
        query={"SiteId": a.site_id},
        body={"Hostnames": names, "Id": a.ca_id},
    )
    inv.show(data, lambda d: _render_binding(d, a.ca_id))
    return 0


def hostnames_get(inv: Invocation) -> int:
    a = inv.args
    data = inv.call("GetClientCaCertificateHostnames", "POST", query={"SiteId": a.site_id, "Id": a.ca_id})
    inv.show(data, lambda d: _render_binding(d, a.ca_id))
    return 0


# -- WAF custom rules -------------------------------------------------------------------------

WAF_COLUMNS = [
    Column("Id", "Id"),
    Column("Name", "Name"),
    Column("Action", lambda r: r.get("Action") or (r.get("Config") or {}).get("Action")),
    Column("Status", "Status"),
    Column("Position", "Position"),
    Column("Expression", "Config.Expression"),
]
WAF_DETAIL = [
    Column("Id", "Id"),
    Column("Name", "Name"),
    Column("Phase", "Phase"),
    Column("Status", "Status"),
    Column("Position", "Position"),
    Column("Action", "Config.Action"),
    Column("Expression", "Config.Expression"),
    Column("RulesetId", "RulesetId"),
    Column("UpdateTime", "UpdateTime"),
]


def waf_create(inv: Invocation) -> int:
    a = inv.args
    config = {"Name": a.name, "Expression": a.expression, "Action": a.action, "Status": a.status}
    body: dict[str, object] = {"Phase": a.phase, "Config": config, "RulesetId": a.ruleset_id}
    data = inv.call("CreateWafRule", "POST", query={"SiteId": a.site_id}, body=body)
    inv.show(data, lambda d: fields(d, [Column("Id", "Id"), Column("RulesetId", "RulesetId")]))
    return 0


def waf_list(inv: Invocation) -> int:
    a = inv.args
    query: dict[str, object] = {"SiteId": a.site_id, "Phase": a.phase, **_paging(a)}
    if a.name_like:
        query["QueryArgs"] = {"NameLike": a.name_like}
    return _list(inv, inv.call("ListWafRules", "POST", query=query), "Rules", WAF_COLUMNS)


def waf_get(inv: Invocation) -> int:
    a = inv.args
    data = inv.call("GetWafRule", "POST", query={"SiteId": a.site_id, "Id": a.id})
    inv.show(data, lambda d: fields(d, WAF_DETAIL))
    return 0


def waf_update(inv: Invocation) -> int:
    a = inv.args
    given = {"Name": a.name, "Expression": a.expression, "Action": a.action}
    config = {k: v for k, v in given.items() if v is not None}
    if not config and a.status is None and a.position is None:
        raise UsageError(
            "waf update: nothing to change (give --name, --expression, --action, --status or --position)"
        )
    body: dict[str, object] = {
        "Id": a.id,
        "Config": config or None,
        "Status": a.status,
        "Position": a.position,
    }
    data = inv.call("UpdateWafRule", "POST", query={"SiteId": a.site_id}, body=body)
    inv.show(data, lambda d: f"WAF rule {a.id} updated.")
    return 0


def waf_delete(inv: Invocation) -> int:
    a = inv.args
    data = inv.call("DeleteWafRule", "POST", query={"SiteId": a.site_id}, body={"Id": a.id})
    inv.show(data, lambda d: f"WAF rule {a.id} deleted.")
    return 0


# -- origin rules ----------------------------------------------------------------------------

ORIGIN_COLUMNS = [
    Column("ConfigId", "ConfigId"),
    Column("RuleName", "RuleName"),
    Column("Enabled", "RuleEnable"),
    Column("Sequence", "Sequence"),
    Column("Scheme", "OriginScheme"),
    Column("Host", "OriginHost"),
    Column("HttpPort", "OriginHttpPort"),
    Column("HttpsPort", "OriginHttpsPort"),
    Column("Rule", "Rule"),
]


def origin_rules_create(inv: Invocation) -> int:
    a = inv.args
    query: dict[str, object] = {
        "SiteId": a.site_id,
        "RuleName": a.name,
        "Rule": a.expression,
        "RuleEnable": "off" if a.disable else "on",
        "OriginScheme": a.origin_scheme,
        "OriginHost": a.origin_host,
        "OriginSni": a.origin_sni,
        "OriginHttpPort": a.origin_http_port,
        "OriginHttpsPort": a.origin_https_port,
        "OriginReadTimeout": a.origin_read_timeout,
        "DnsRecord": a.dns_record,
        "Sequence": a.sequence,
    }
    data = inv.call("CreateOriginRule", "POST", query=query)
    inv.show(data, lambda d: fields(d, [Column("ConfigId", "ConfigId")]))
    return 0


def origin_rules_list(inv: Invocation) -> int:
    a = inv.args
    data = inv.call("ListOriginRules", "GET", query={"SiteId": a.site_id, **_paging(a)})
    return _list(inv, data, "Configs", ORIGIN_COLUMNS)


def origin_rules_delete(inv: Invocation) -> int:
    a = inv.args
    data = inv.call("DeleteOriginRule", "POST", query={"SiteId": a.site_id, "ConfigId": a.config_id})
    inv.show(data, lambda d: f"Origin rule {a.config_id} deleted.")
    return 0


# -- registration ----------------------------------------------------------------------------


def _connection_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("connection and output")
    g.add_argument("--json", action="store_true", help="print the API's JSON response (for scripts)")
    g.add_argument(
        "--profile",
        metavar="FILE",
        help="profile file (default: $CERTGATE_PROFILE or ~/.config/certgate/profile.json)",
    )
    g.add_argument(
        "--endpoint",
        metavar="URL",
        help="API endpoint for this call (overrides profile and $CERTGATE_ENDPOINT)",
    )
    g.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="give up waiting for the API after this long (default: 120)",
    )
    return common


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _group(sub: Any, name: str, help_text: str) -> Any:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    return parser.add_subparsers(
        dest=f"{name}_command", required=True, metavar="ACTION", parser_class=CommandParser
    )


def _leaf(group: Any, name: str, help_text: str, handler: Handler, common: argparse.ArgumentParser) -> Any:
    parser = group.add_parser(name, help=help_text, description=help_text, parents=[common])
    parser.set_defaults(handler=lambda args: run(handler, args))
    return parser


def _site_id(p: argparse.ArgumentParser) -> None:
    p.add_argument("--site-id", type=int, required=True, help="the site's SiteId")


def _pages(p: argparse.ArgumentParser) -> None:
    p.add_argument("--page", type=_positive_int, default=1, help="page number (default: 1)")
    p.add_argument("--page-size", type=_positive_int, default=20, help="rows per page (default: 20)")


def register(sub: Any) -> None:
    common = _connection_options()

    p = sub.add_parser(
        "configure",
        help="save the API endpoint and access key used by the resource commands",
        description="Save (or update) the profile: endpoint, AccessKeyId, AccessKeySecret. The file is "
        "written with mode 0600. Environment variables CERTGATE_ENDPOINT, CERTGATE_ACCESS_KEY_ID, "
        "CERTGATE_ACCESS_KEY_SECRET (and CERTGATE_INSTANCE_ID, CERTGATE_CA_FILE) override it.",
    )
    p.add_argument("--endpoint", metavar="URL", help="API endpoint, e.g. http://127.0.0.1:8080")
    p.add_argument("--access-key-id", metavar="ID")
    p.add_argument(
        "--access-key-secret",
        metavar="SECRET",
        help="the secret; '-' reads it from stdin; omitted on a terminal: prompted",
    )
    p.add_argument("--instance-id", metavar="ID", help="default InstanceId for 'sites create'")
    p.add_argument("--ca-file", metavar="PEM", help="CA bundle to trust for an https:// endpoint")
    p.add_argument(
        "--profile",
        metavar="FILE",
        help="profile file (default: $CERTGATE_PROFILE or ~/.config/certgate/profile.json)",
    )
    p.add_argument("--show", action="store_true", help="show the effective profile (never the secret)")
    p.set_defaults(handler=cmd_configure)

    # sites
    g = _group(sub, "sites", "sites (apex domains): create, list, get, delete")
    p = _leaf(g, "create", "create a site (CreateSite)", sites_create, common)
    p.add_argument("--name", required=True, help="the apex domain, e.g. example.com")
    p.add_argument("--access-type", default="NS", choices=("NS", "CNAME"), help="default: NS")
    p.add_argument(
        "--coverage", default="global", choices=("domestic", "global", "overseas"), help="default: global"
    )
    p.add_argument("--instance-id", help="the account's plan InstanceId (default: from the profile)")
    p = _leaf(g, "list", "list sites (ListSites)", sites_list, common)
    p.add_argument("--name", help="filter by site name")
    p.add_argument("--search", choices=("exact", "prefix", "suffix", "fuzzy"), help="how --name matches")
    _pages(p)
    for name, fn, text in (
        ("get", sites_get, "show a site (GetSite)"),
        ("delete", sites_delete, "delete a site (DeleteSite)"),
    ):
        p = _leaf(g, name, text, fn, common)
        p.add_argument("site_id", type=int, metavar="SITE_ID")

    # records
    g = _group(sub, "records", "DNS records (proxied hostnames and their origin): create, list, delete")
    p = _leaf(g, "create", "create a record (CreateRecord)", records_create, common)
    _site_id(p)
    p.add_argument("--name", required=True, help="the full hostname, e.g. api.example.com")
    p.add_argument("--type", default="A/AAAA", help="A/AAAA (default), CNAME, TXT, ...")
    p.add_argument("--value", required=True, help="the origin: an IP address for A/AAAA, a host for CNAME")
    p.add_argument(
        "--proxied",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="serve the hostname through the edge (default: --proxied)",
    )
    p.add_argument("--ttl", type=int, default=1, help="TTL in seconds; 1 = automatic (default)")
    p.add_argument(
        "--biz-name",
        choices=("web", "api", "image_video"),
        help="business type (default for proxied records: web)",
    )
    p.add_argument("--comment")
    p = _leaf(g, "list", "list a site's records (ListRecords)", records_list, common)
    _site_id(p)
    p.add_argument("--name", help="filter by record name")
    p.add_argument("--type", help="filter by type")
    _pages(p)
    p = _leaf(g, "delete", "delete a record (DeleteRecord)", records_delete, common)
    p.add_argument("record_id", type=int, metavar="RECORD_ID")

    # client certificates
    g = _group(sub, "certs", "client certificates issued by the account's managed CA")
    p = _leaf(g, "create", "issue a client certificate (CreateClientCertificate)", certs_create, common)
    _site_id(p)
    how = p.add_mutually_exclusive_group()
    how.add_argument("--csr", metavar="FILE", help="your own CSR (PEM; '-' = stdin); the key stays with you")
    how.add_argument(
        "--key-type",
        type=str.upper,
        choices=KEY_TYPES,
        help="let the server generate the key (default: RSA = RSA2048)",
    )
    p.add_argument(
        "--validity-days", type=_positive_int, default=365, metavar="DAYS", help="1-3650 (default: 365)"
    )
    p.add_argument("--out-cert", metavar="FILE", help="write the certificate PEM here instead of printing it")
    p.add_argument(
        "--out-key",
        metavar="FILE",
        help="write the server-generated private key here (mode 0600; must not exist)",
    )
    p = _leaf(g, "list", "list client certificates (ListClientCertificates)", certs_list, common)
    _site_id(p)
    _pages(p)
    p = _leaf(g, "get", "show a client certificate (GetClientCertificate)", certs_get, common)
    _site_id(p)
    p.add_argument("id", metavar="CERT_ID")
    p.add_argument("--out-cert", metavar="FILE", help="also write the certificate PEM to FILE")
    for name, action, verb, text in (
        ("revoke", "RevokeClientCertificate", "revoked", "revoke an active certificate"),
        ("activate", "ActivateClientCertificate", "activated", "re-activate a revoked certificate"),
        ("delete", "DeleteClientCertificate", "deleted", "delete a revoked certificate"),
    ):
        p = _leaf(g, name, f"{text} ({action})", _cert_transition(action, verb), common)
        _site_id(p)
        p.add_argument("id", metavar="CERT_ID")

    # client CA certificates
    g = _group(sub, "cas", "custom (bring-your-own) client CA certificates")
    p = _leaf(g, "upload", "upload a CA certificate (UploadClientCaCertificate)", cas_upload, common)
    _site_id(p)
    p.add_argument("--file", required=True, metavar="PEM", help="the CA certificate (PEM; '-' = stdin)")
    p.add_argument("--name", help="a name to recognise it by")
    p = _leaf(g, "list", "list custom CAs (ListClientCaCertificates)", cas_list, common)
    _site_id(p)
    _pages(p)
    for name, fn, text in (
        ("get", cas_get, "show a custom CA (GetClientCaCertificate)"),
        ("delete", cas_delete, "delete a custom CA (DeleteClientCaCertificate)"),
    ):
        p = _leaf(g, name, text, fn, common)
        _site_id(p)
        p.add_argument("id", metavar="CA_ID")

    # hostname bindings
    g = _group(sub, "hostnames", "hostnames that require client certificates (mTLS), per CA")
    p = _leaf(
        g,
        "set",
        "replace the hostnames bound to a CA (SetClientCaCertificateHostnames)",
        hostnames_set,
        common,
    )
    _site_id(p)
    p.add_argument("--ca-id", help="a custom CA's Id (default: the account's managed CA)")
    p.add_argument("--clear", action="store_true", help="unbind every hostname from the CA")
    p.add_argument("names", nargs="*", metavar="HOSTNAME", help="up to 50 hostnames of the site")
    p = _leaf(
        g, "get", "show the hostnames bound to a CA (GetClientCaCertificateHostnames)", hostnames_get, common
    )
    _site_id(p)
    p.add_argument("--ca-id", help="a custom CA's Id (default: the account's managed CA)")

    # WAF rules
    g = _group(sub, "waf", "WAF custom rules, e.g. deny requests without a verified client certificate")
    p = _leaf(g, "create", "create a rule (CreateWafRule)", waf_create, common)
    _site_id(p)
    p.add_argument("--name", required=True)
    p.add_argument(
        "--expression",
        required=True,
        help='e.g. (http.host eq "api.example.com" and not tls.client_auth.cert_verified)',
    )
    p.add_argument("--action", required=True, choices=WAF_ACTIONS)
    p.add_argument("--status", default="on", choices=ON_OFF, help="default: on")
    p.add_argument("--phase", default="http_custom", help=argparse.SUPPRESS)
    p.add_argument("--ruleset-id", type=int, help=argparse.SUPPRESS)
    p = _leaf(g, "list", "list rules (ListWafRules)", waf_list, common)
    _site_id(p)
    p.add_argument("--phase", default="http_custom", help="default: http_custom")
    p.add_argument("--name-like", help="only rules whose name contains this")
    _pages(p)
    p = _leaf(g, "get", "show a rule (GetWafRule)", waf_get, common)
    _site_id(p)
    p.add_argument("id", type=int, metavar="RULE_ID")
    p = _leaf(g, "update", "change a rule (UpdateWafRule)", waf_update, common)
    _site_id(p)
    p.add_argument("id", type=int, metavar="RULE_ID")
    p.add_argument("--name")
    p.add_argument("--expression")
    p.add_argument("--action", choices=WAF_ACTIONS)
    p.add_argument("--status", choices=ON_OFF)
    p.add_argument("--position", type=_positive_int)
    p = _leaf(g, "delete", "delete a rule (DeleteWafRule)", waf_delete, common)
    _site_id(p)
    p.add_argument("id", type=int, metavar="RULE_ID")

    # origin rules
    g = _group(sub, "origin-rules", "origin rules: per-request origin scheme, host, port, SNI, timeout")
    p = _leaf(g, "create", "create an origin rule (CreateOriginRule)", origin_rules_create, common)
    _site_id(p)
    p.add_argument("--name", required=True)
    p.add_argument(
        "--expression", required=True, help='which requests, e.g. (http.host eq "api.example.com")'
    )
    p.add_argument("--origin-scheme", choices=("http", "https", "follow"))
    p.add_argument("--origin-host", help="Host header sent to the origin")
    p.add_argument("--origin-sni", help="SNI sent to the origin")
    p.add_argument("--origin-http-port", type=int)
    p.add_argument("--origin-https-port", type=int)
    p.add_argument("--origin-read-timeout", type=int, metavar="SECONDS")
    p.add_argument("--dns-record", help="send matching requests to this origin address instead")
    p.add_argument("--sequence", type=_positive_int, help="evaluation order (default: last)")
    p.add_argument("--disable", action="store_true", help="create the rule switched off")
    p = _leaf(g, "list", "list origin rules (ListOriginRules)", origin_rules_list, common)
    _site_id(p)
    _pages(p)
    p = _leaf(g, "delete", "delete an origin rule (DeleteOriginRule)", origin_rules_delete, common)
    _site_id(p)
    p.add_argument("config_id", type=int, metavar="CONFIG_ID")
