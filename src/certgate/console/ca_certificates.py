"""Custom CA certificates of a site: details, hostname bindings and delete.

Upload stays API-only, as the seed says (UploadClientCaCertificate); the console shows what was
uploaded. Deleting a CA that is still bound is refused by the use case, naming the hostnames.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from certgate.console.certificates import list_path
from certgate.console.web import Principal, call, read_form, redirect, render, require_login, status_for
from certgate.errors import CertGateError
from certgate.ids import CACertificateId, SiteId
from certgate.services import ca_certificates


def _ids(request: Request) -> tuple[SiteId, CACertificateId]:
    return SiteId(request.path_params["site_id"]), CACertificateId(request.path_params["ca_id"])


async def detail_page(request: Request) -> Response:
    who = await require_login(request)
    return await _show_detail(request, who)


async def _show_detail(request: Request, who: Principal, error: CertGateError | None = None) -> Response:
    site_id, ca_id = _ids(request)
    site, ca = await call(request, ca_certificates.get_ca_certificate, who.account_id, site_id, ca_id)
    _, binding = await call(request, ca_certificates.get_hostnames, who.account_id, site_id, ca_id)
    return render(
        request,
        "ca_certificate.html",
        principal=who,
        section="client-certificates",
        site=site,
        ca=ca,
        hostnames=binding.hostnames,
        error=error.message if error else None,
        status=status_for(error) if error else 200,
    )


async def delete(request: Request) -> Response:
    await read_form(request)
    who = await require_login(request)
    site_id, ca_id = _ids(request)
    try:
        await call(request, ca_certificates.delete_ca_certificate, who.account_id, site_id, ca_id)
    except CertGateError as exc:
        if status_for(exc) == 404:
            raise
        return await _show_detail(request, who, exc)
    return redirect(request, list_path(site_id), notice="ca-deleted")
