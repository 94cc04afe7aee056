"""The demo of ``certgate up --demo``: a tiny origin that echoes what it received, and the demo
configuration (account, site, record, client certificate, binding, the seed's WAF rule).

The origin answers every request with JSON naming the method, path and the headers the edge
forwarded, so the RFC 9440 ``Client-Cert`` and ``Client-Cert-Status`` headers can be seen.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from starlette.types import Receive, Scope, Send

from certgate.errors import AlreadyExists
from certgate.ids import AccountId, SiteId
from certgate.services import accounts, ca_certificates, certificates, rules, sites
from certgate.services.context import ServiceContext

DEMO_SITE = "example.com"
DEMO_HOST = "api.example.com"
SEED_RULE = f'(http.host eq "{DEMO_HOST}" and not tls.client_auth.cert_verified)'


async def origin_app(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI echo origin (HTTP only; lifespan events are acknowledged)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:  # drain the request body
        message = await receive()
        more = message.get("more_body", False)
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    body = (
        json.dumps(
            {
                "origin": "certgate demo origin",
                "method": scope["method"],
                "path": scope["path"],
                "client_cert_status": headers.get("client-cert-status"),
                "client_cert": headers.get("client-cert"),
                "headers": headers,
            },
            indent=2,
        ).encode()
        + b"\n"
    )
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True, slots=True)
class DemoFiles:
    certificate: Path
    private_key: Path
    account: Path


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def set_up_demo(ctx: ServiceContext, directory: Path, *, origin_port: int) -> DemoFiles:
    """Create (once) the demo account and its configuration; point the origin rule at the port.

    The client certificate's key is written to ``directory`` with mode 0600: the one time it is
    shown. Running again reuses the account and certificate and only re-points the origin.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = DemoFiles(directory / "client.crt", directory / "client.key", directory / "account.json")
    if files.account.exists():
        saved = json.loads(files.account.read_text())
        account_id, site_id = AccountId(saved["AccountId"]), SiteId(saved["SiteId"])
    else:
        try:
            new = accounts.create_account(ctx, "demo")
        except AlreadyExists:
            raise AlreadyExists(
                f"an account named 'demo' exists but {files.account} is missing; use a fresh --data-dir",
                reason="demo.exists",
            ) from None
        account_id = new.account.id
        site = sites.create_site(
            ctx,
            account_id,
            name=DEMO_SITE,
            access_type="NS",
            coverage="global",
            instance_id=new.account.instance_id,
        )
        site_id = site.id
        sites.create_record(
            ctx, account_id, site_id, name=DEMO_HOST, rtype="A/AAAA", ttl=1, value="127.0.0.1", proxied=True
        )
        issued = certificates.issue_client_certificate(
            ctx, account_id, site_id, validity_days=365, key_type="ECDSA"
        )
        assert issued.private_key_pem is not None
        files.certificate.write_text(issued.certificate.cert.certificate_pem)
        _write_private(files.private_key, issued.private_key_pem)
        ca_certificates.set_hostnames(ctx, account_id, site_id, None, [DEMO_HOST])
        rules.create_waf_rule(
            ctx,
            account_id,
            site_id,
            phase="http_custom",
            data=rules.WafRuleInput(name="mTLS required", expression=SEED_RULE, action="deny"),
        )
        _write_private(
            files.account,
            json.dumps(
                {
                    "AccountId": account_id,
                    "AccessKeyId": new.access_key_id,
                    "AccessKeySecret": new.access_key_secret,
                    "InstanceId": new.account.instance_id,
                    "SiteId": site_id,
                },
                indent=2,
            ),
        )
    _, existing = rules.list_origin_rules(ctx, account_id, site_id)
    for rule in existing:
        rules.delete_origin_rule(ctx, account_id, site_id, rule.id)
    rules.create_origin_rule(
        ctx,
        account_id,
        site_id,
        rules.OriginRuleInput(
            name="demo origin port", expression=f'http.host eq "{DEMO_HOST}"', origin_http_port=origin_port
        ),
    )
    return files
