"""Domain Names → Configure: the hostnames bound to the managed CA (the seed's "Bind a domain
name") or to one custom CA. A save replaces the whole list through the same use case as the API
(``SetClientCaCertificateHostnames``), so it refuses what the API refuses, with its messages."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from certgate.console.expressions import split_hostnames
from certgate.console.web import (
    Principal,
    call,
    field,
    fields,
    read_form,
    redirect,
    render,
    require_login,
    status_for,
)
from certgate.errors import CertGateError
from certgate.ids import AccountId, CACertificateId, SiteId
from certgate.model import ClientCACertificate, Site
from certgate.services import ca_certificates, sites
from certgate.services.context import ServiceContext


@dataclass(frozen=True, slots=True)
class BindingView:
    site: Site
    ca: ClientCACertificate | None  # None: the managed CA
    site_hostnames: list[str]
    bound: tuple[str, ...]


def load_binding(
    ctx: ServiceContext, account_id: AccountId, site_id: SiteId, ca_id: CACertificateId | None
) -> BindingView:
    site, records, _ = sites.list_records(ctx, account_id, site_id, size=500)
    ca = ca_certificates.get_ca_certificate(ctx, account_id, site_id, ca_id)[1] if ca_id else None
    _, binding = ca_certificates.get_hostnames(ctx, account_id, site_id, ca_id)
    return BindingView(site, ca, sorted(r.name for r in records), binding.hostnames)


def chosen_hostnames(checked: list[str], typed: str) -> list[str]:
    """Checked names then typed ones, exact repeats folded (the service folds the rest)."""
    return list(dict.fromkeys(name.strip() for name in [*checked, *split_hostnames(typed)] if name.strip()))


def _ids(request: Request) -> tuple[SiteId, CACertificateId | None]:
    ca = request.path_params.get("ca_id")
    return SiteId(request.path_params["site_id"]), CACertificateId(ca) if ca else None


def _back_path(site_id: SiteId, ca_id: CACertificateId | None) -> str:
    if ca_id:
        return f"/sites/{site_id}/ssl/ca-certificates/{ca_id}"
    return f"/sites/{site_id}/ssl/client-certificates"


async def _show(
    request: Request,
    who: Principal,
    *,
    checked: list[str] | None = None,
    typed: str | None = None,
    error: CertGateError | None = None,
) -> Response:
    site_id, ca_id = _ids(request)
    view = await call(request, load_binding, who.account_id, site_id, ca_id)
    if checked is None:
        checked = [h for h in view.bound if h in view.site_hostnames]
    if typed is None:
        typed = "\n".join(h for h in view.bound if h not in view.site_hostnames)
    return render(
        request,
        "hostnames.html",
        principal=who,
        section="client-certificates",
        site=view.site,
        ca=view.ca,
        site_hostnames=view.site_hostnames,
        bound=view.bound,
        checked=set(checked),
        typed=typed,
        limit=who.account.plan.hostnames_per_call,
        back=_back_path(site_id, ca_id),
        error=error.message if error else None,
        status=status_for(error) if error else 200,
    )


async def hostnames_page(request: Request) -> Response:
    who = await require_login(request)
    return await _show(request, who)


async def save_hostnames(request: Request) -> Response:
    form = await read_form(request)
    who = await require_login(request)
    site_id, ca_id = _ids(request)
    checked, typed = fields(form, "hostname"), field(form, "other_hostnames")
    try:
        await call(
            request,
            ca_certificates.set_hostnames,
            who.account_id,
            site_id,
            ca_id,
            chosen_hostnames(checked, typed),
        )
    except CertGateError as exc:
        if status_for(exc) == 404:
            raise
        return await _show(request, who, checked=checked, typed=typed, error=exc)
    return redirect(request, _back_path(site_id, ca_id), notice="hostnames")
