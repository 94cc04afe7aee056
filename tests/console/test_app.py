"""The console's routes as a whole: every POST is CSRF-checked, the app mounts anywhere."""

from __future__ import annotations

import pytest
from starlette.routing import Mount, Route
from tests.console.conftest import ConsoleClient, World, text_of

from certgate.console import create_console
from certgate.console.app import console_routes


def _post_routes() -> list[str]:
    paths = []
    for route in console_routes():
        if isinstance(route, Route) and route.methods and "POST" in route.methods:
            paths.append(route.path)
    return paths


def _concrete(path: str, world: World) -> str:
    """A real URL for a route pattern, pointing at alice's objects."""
    return "/console" + (
        path.replace("{site_id:int}", str(world.alice.site_id))
        .replace("{cert_id:str}", "0" * 32)
        .replace("{ca_id:str}", "0" * 32)
        .replace("{rule_id:int}", "1")
    )


def test_every_post_route_is_listed() -> None:
    # If this list changes, the CSRF test below covers the new route automatically; this
    # assertion only makes sure the enumeration itself finds the routes.
    assert len(_post_routes()) == 14


async def test_every_post_route_refuses_a_missing_or_wrong_csrf_token(
    world: World, alice: ConsoleClient
) -> None:
    for path in _post_routes():
        url = _concrete(path, world)
        missing = await alice.post(url, {"confirm": "yes"}, csrf=False)
        assert missing.status_code == 403, url
        assert "security token" in text_of(missing.text)
        wrong = await alice.post(url, {"confirm": "yes", "csrf_token": "x" * 43})
        assert wrong.status_code == 403, url


def test_mount_points_are_relative() -> None:
    static = [r for r in console_routes() if isinstance(r, Mount)]
    assert [m.path for m in static] == ["/static"]


def test_create_console_refuses_a_weak_secret(world: World) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        create_console(world.ctx, secret_key=b"too short", secure_cookies=True)
