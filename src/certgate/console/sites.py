"""Websites: the account's sites, and a site's overview with its proxied hostnames."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from certgate.console.web import call, console_of, query_int, render, require_login
from certgate.ids import SiteId
from certgate.services import sites


async def sites_page(request: Request) -> Response:
    who = await require_login(request)
    size = console_of(request).settings.page_size
    page = query_int(request, "page", default=1)
    items, total = await call(request, sites.list_sites, who.account_id, page=page, size=size)
    return render(
        request,
        "sites.html",
        principal=who,
        section="websites",
        sites=items,
        page=page,
        pages=max(1, -(-total // size)),
        total=total,
    )


async def site_page(request: Request) -> Response:
    who = await require_login(request)
    site_id = SiteId(request.path_params["site_id"])
    site, records, total = await call(request, sites.list_records, who.account_id, site_id, size=500)
    return render(
        request, "site.html", principal=who, section="overview", site=site, records=records, total=total
    )
