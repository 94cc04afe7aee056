"""Login with an access key, logout, session lifetime."""

from __future__ import annotations

from tests.console.conftest import ConsoleClient, World, text_of

from certgate.console.auth import LOGIN_FAILED


async def test_login_page_has_labelled_fields(anonymous: ConsoleClient) -> None:
    page = await anonymous.get("/console/login")
    assert page.status_code == 200
    assert '<label for="access_key_id">AccessKey ID</label>' in page.text
    assert '<label for="access_key_secret">AccessKey secret</label>' in page.text


async def test_wrong_secret_and_unknown_key_fail_alike(world: World, anonymous: ConsoleClient) -> None:
    await anonymous.get("/console/login")
    wrong_secret = await anonymous.post(
        "/console/login", {"access_key_id": world.alice.key_id, "access_key_secret": world.alice.secret + "x"}
    )
    unknown_key = await anonymous.post(
        "/console/login", {"access_key_id": "LTAInosuchkey", "access_key_secret": world.alice.secret}
    )
    empty = await anonymous.post("/console/login", {"access_key_id": "", "access_key_secret": ""})
    for response in (wrong_secret, unknown_key, empty):
        assert response.status_code == 401
        assert LOGIN_FAILED in text_of(response.text)
        assert "set-cookie" not in response.headers
    # The secret typed is never echoed back.
    assert world.alice.secret not in wrong_secret.text


async def test_login_starts_a_new_session(world: World, anonymous: ConsoleClient) -> None:
    await anonymous.get("/console/login")
    before = anonymous.page_fields["csrf_token"]
    response = await anonymous.post(
        "/console/login", {"access_key_id": world.alice.key_id, "access_key_secret": world.alice.secret}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/console/sites"
    assert "set-cookie" in response.headers
    page = await anonymous.get("/console/sites")
    assert page.status_code == 200
    assert anonymous.page_fields["csrf_token"] != before  # a planted pre-login token is worthless
    assert "alice" in text_of(page.text)


async def test_an_unsafe_next_is_ignored(world: World, anonymous: ConsoleClient) -> None:
    await anonymous.get("/console/login")
    response = await anonymous.post(
        "/console/login",
        {
            "access_key_id": world.alice.key_id,
            "access_key_secret": world.alice.secret,
            "next": "//evil.example/",
        },
    )
    assert response.headers["location"] == "/console/sites"


async def test_logged_in_users_skip_the_login_page(alice: ConsoleClient) -> None:
    response = await alice.get("/console/login")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/sites"
    home = await alice.get("/console/")
    assert home.headers["location"] == "/console/sites"


async def test_logout_ends_the_session(world: World, alice: ConsoleClient) -> None:
    await alice.get("/console/sites")
    token = alice.page_fields["csrf_token"]
    response = await alice.post("/console/logout")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?notice=logged-out"
    page = await alice.get(response.headers["location"])
    assert "You have logged out." in text_of(page.text)
    assert alice.page_fields["csrf_token"] != token
    assert (await alice.get("/console/sites")).status_code == 303


async def test_sessions_end_after_their_max_age(world: World, alice: ConsoleClient) -> None:
    world.clock.advance(hours=8, seconds=-1)
    assert (await alice.get("/console/sites")).status_code == 200
    world.clock.advance(seconds=1)
    response = await alice.get("/console/sites")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/login")


async def _login(client: ConsoleClient, key_id: str, secret: str) -> int:
    if (await client.get("/console/login")).status_code == 303:  # logged in: log out first
        await client.get("/console/sites")
        await client.post("/console/logout")
        await client.get("/console/login")
    response = await client.post("/console/login", {"access_key_id": key_id, "access_key_secret": secret})
    return response.status_code


async def test_repeated_failures_lock_the_key_id_out_even_for_the_right_secret(
    world: World, anonymous: ConsoleClient
) -> None:
    for _ in range(10):
        assert await _login(anonymous, world.alice.key_id, "wrong") == 401
    await anonymous.get("/console/login")
    locked = await anonymous.post(
        "/console/login", {"access_key_id": world.alice.key_id, "access_key_secret": world.alice.secret}
    )
    assert locked.status_code == 429
    assert "Too many failed logins. Try again in 15 minutes." in text_of(locked.text)
    assert locked.headers["retry-after"] == "900"
    assert "set-cookie" not in locked.headers
    assert (await anonymous.get("/console/sites")).status_code == 303  # not logged in
    # Another account's key is not affected by alice's lockout.
    assert await _login(anonymous, world.bob.key_id, world.bob.secret) == 303
    # The lockout ends when the oldest counted failure leaves the 15-minute window.
    world.clock.advance(minutes=14, seconds=59)
    assert await _login(anonymous, world.alice.key_id, world.alice.secret) == 429
    world.clock.advance(seconds=1)
    assert await _login(anonymous, world.alice.key_id, world.alice.secret) == 303


async def test_a_success_clears_the_key_ids_failures(world: World, anonymous: ConsoleClient) -> None:
    for _ in range(9):
        assert await _login(anonymous, world.alice.key_id, "wrong") == 401
    assert await _login(anonymous, world.alice.key_id, world.alice.secret) == 303
    for _ in range(9):
        assert await _login(anonymous, world.alice.key_id, "wrong") == 401
    assert await _login(anonymous, world.alice.key_id, world.alice.secret) == 303


async def test_one_address_trying_many_key_ids_is_locked_out(world: World, anonymous: ConsoleClient) -> None:
    for n in range(30):
        assert await _login(anonymous, f"LTAIguess{n}", "wrong") == 401
    assert await _login(anonymous, world.alice.key_id, world.alice.secret) == 429
    world.clock.advance(minutes=15)
    assert await _login(anonymous, world.alice.key_id, world.alice.secret) == 303
