"""Concurrent writers of one SQL store: isolation and durability of every unit of work.

SQLite commits the units of writers that queue up together under one ``fdatasync`` (group
commit, ``storage.sql._Writers``); PostgreSQL commits each unit on its own. Either way every
unit is isolated (one that fails changes nothing and undoes nothing of the others), the version
stays gap-free, and a writer returns only once its unit is committed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError
from tests.storage.test_store_contract import World, make_world, record

from certgate.ids import SiteId
from certgate.services.ports import Transaction
from certgate.storage import open_store
from certgate.storage.sql import SQLStore


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_world(request: pytest.FixtureRequest) -> Iterator[World]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_store_url")
    store = open_store(url)
    try:
        yield make_world(store)
    finally:
        store.close()


def _queued(store: Any) -> int:
    writers = getattr(store, "_writers", None)
    return -1 if writers is None else int(writers.queued)


def _commits(store: Any) -> int:
    writers = getattr(store, "_writers", None)
    return -1 if writers is None else int(writers.commits)


class _Outcome:
    def __init__(self) -> None:
        self.version: int | None = None
        self.error: BaseException | None = None
        self.visible_after_return: bool | None = None


def _run_together(world: World, bodies: list[Callable[[Transaction], None]]) -> list[_Outcome]:
    """Run ``bodies`` as units of work in threads, all queued behind a first unit that holds the
    writer lock until the others wait (SQLite: they then share one commit). Each outcome says
    what the unit's ``config_version()`` was, what it raised, and whether, right after its
    ``with`` block ended, a reader on another connection already saw that version."""
    store = world.store
    others = len(bodies) - 1
    outcomes = [_Outcome() for _ in bodies]
    first_inside = threading.Event()

    def hold(tx: Transaction) -> None:
        first_inside.set()
        deadline = time.monotonic() + 10
        if _queued(store) < 0:  # PostgreSQL: no queue to watch; the others wait for the row lock
            time.sleep(0.3)
        while _queued(store) >= 0 and _queued(store) < others and time.monotonic() < deadline:
            time.sleep(0.001)
        bodies[0](tx)

    def unit(i: int, body: Callable[[Transaction], None]) -> None:
        outcome = outcomes[i]
        try:
            with store.transaction() as tx:
                body(tx)
                outcome.version = tx.config_version()
            outcome.visible_after_return = store.current_version() >= outcome.version
        except BaseException as exc:
            outcome.error = exc

    threads = [threading.Thread(target=unit, args=(0, hold))]
    threads += [threading.Thread(target=unit, args=(i, body)) for i, body in enumerate(bodies) if i > 0]
    threads[0].start()
    assert first_inside.wait(10)
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


def _add(n: int, world: World) -> Callable[[Transaction], None]:
    def body(tx: Transaction) -> None:
        tx.add_record(record(n, world.site_a.id, f"r{n}.example.com"))

    return body


def _names(world: World) -> set[str]:
    with world.store.read_transaction() as tx:
        return {r.name for r in tx.list_all_records()}


def test_a_unit_that_fails_among_concurrent_writers_changes_nothing_and_undoes_nothing(
    sql_world: World,
) -> None:
    world = sql_world
    start, commits = world.store.current_version(), _commits(world.store)

    def fail(tx: Transaction) -> None:
        tx.add_record(record(2, world.site_a.id, "r2.example.com"))
        raise ValueError("the unit's own failure")

    outcomes = _run_together(world, [_add(1, world), fail, _add(3, world), _add(4, world)])
    assert isinstance(outcomes[1].error, ValueError)
    ok = [o for i, o in enumerate(outcomes) if i != 1]
    assert all(o.error is None and o.visible_after_return for o in ok), [o.error for o in ok]
    assert sorted(o.version for o in ok if o.version is not None) == [start + 1, start + 2, start + 3]
    assert world.store.current_version() == start + 3
    assert _names(world) == {"r1.example.com", "r3.example.com", "r4.example.com"}
    if commits >= 0:  # SQLite: the four units shared one commit
        assert _commits(world.store) == commits + 1


def test_every_writer_returns_only_once_its_unit_is_committed(sql_world: World) -> None:
    world = sql_world
    start, commits = world.store.current_version(), _commits(world.store)
    outcomes = _run_together(world, [_add(n, world) for n in range(1, 9)])
    assert [o.error for o in outcomes] == [None] * 8
    assert all(o.visible_after_return for o in outcomes)
    assert sorted(o.version for o in outcomes if o.version is not None) == list(range(start + 1, start + 9))
    assert _names(world) == {f"r{n}.example.com" for n in range(1, 9)}
    if commits >= 0:
        assert _commits(world.store) == commits + 1


def test_a_unit_that_breaks_the_shared_commit_fails_every_unit_of_the_group(sqlite_url: str) -> None:
    world = make_world(open_store(sqlite_url))
    try:
        start, commits = world.store.current_version(), _commits(world.store)

        def dangling(tx: Transaction) -> None:
            # Deferred foreign keys are only checked by COMMIT: the group's commit fails.
            tx._run_sql("PRAGMA defer_foreign_keys = ON")  # type: ignore[attr-defined]
            tx.add_record(record(2, SiteId(987654321), "r2.example.com"))

        outcomes = _run_together(world, [_add(1, world), dangling, _add(3, world)])
        assert all(isinstance(o.error, IntegrityError) for o in outcomes), [o.error for o in outcomes]
        assert world.store.current_version() == start
        assert _names(world) == set()
        assert _commits(world.store) == commits
        # and the store carries on
        with world.store.transaction() as tx:
            _add(5, world)(tx)
        assert _names(world) == {"r5.example.com"}
        assert world.store.current_version() == start + 1
    finally:
        world.store.close()


def test_a_lone_writer_commits_each_unit_at_once_without_a_savepoint(sqlite_url: str) -> None:
    store = SQLStore(sqlite_url)
    world = make_world(store)
    try:
        commits = _commits(store)
        for n in range(3):
            with store.transaction() as tx:
                _add(n, world)(tx)
                assert tx._savepoint is False
            assert _commits(store) == commits + n + 1
        with pytest.raises(ValueError), store.transaction() as tx:  # the first unit fails alone
            _add(9, world)(tx)
            raise ValueError("undo")
        assert _names(world) == {"r0.example.com", "r1.example.com", "r2.example.com"}
    finally:
        store.close()


def test_grouping_can_be_turned_off_and_groups_have_a_limit(sqlite_url: str) -> None:
    off = SQLStore(sqlite_url, sqlite_group_commit=0)
    assert off._writers is None
    off.close()
    store = SQLStore(sqlite_url, sqlite_group_commit=2)
    world = make_world(store)
    try:
        commits = _commits(store)
        outcomes = _run_together(world, [_add(n, world) for n in range(1, 7)])
        assert [o.error for o in outcomes] == [None] * 6
        assert all(o.visible_after_return for o in outcomes)
        assert _commits(store) - commits == 3  # six units, at most two per commit
    finally:
        store.close()


def test_a_writer_queued_in_the_process_longer_than_the_lock_timeout_fails(sqlite_url: str) -> None:
    store = SQLStore(sqlite_url, lock_timeout=0.3)
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.transaction():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert inside.wait(10)
        started = time.monotonic()
        with pytest.raises(OperationalError, match="database is locked"), store.transaction():
            pass
        assert 0.2 < time.monotonic() - started < 20
        assert _queued(store) == 0
    finally:
        release.set()
        thread.join(10)
    with store.transaction() as tx:  # nothing was left open
        assert tx.config_version() == 0
    store.close()
