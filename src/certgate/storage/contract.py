"""What every store adapter does the same way where ``services/ports.py`` leaves room.

The ports say what a store must do; this module pins down the rest, once, for the memory, SQLite
and PostgreSQL adapters alike (``tests/storage/test_store_contract.py`` checks all three):

- **Duplicates**: an ``add_*`` whose key (or unique name: account name, site name, record name)
  already exists raises ``AlreadyExists(reason="storage.already_exists")`` and changes nothing.
- **Dangling references**: adding an object whose parent is missing (a site of an unknown account,
  a certificate of an unknown site or authority, ...) raises
  ``NotFound(reason="storage.parent_not_found")``. On PostgreSQL the transaction cannot be used
  after that error: let it propagate (it is a bug in the caller, not a user error).
- **Updates** (``update_*``, ``set_account_plan``) of a missing object raise
  ``NotFound(reason="storage.not_found")``; so does moving a client certificate to another
  site (they never move; the per-site counts rely on it). **Deletes** of a missing object do
  nothing.
- **Dirty**: every mutating call except ``claim_nonce`` marks the transaction dirty, even if it
  turned out to change nothing; ``config_version()`` inside a dirty transaction already returns
  the number the commit will publish (committed + 1), so a snapshot built in the same
  transaction carries the right version.
- **Orders**: accounts, access keys and authorities oldest first; sites and records by name;
  client and custom CA certificates newest first; WAF rules by position and origin rules by
  sequence (id breaks ties); the ``list_all_*`` calls by site, then as above, or by id.
- **Matching** (``list_sites``, ``list_records``): ``exact`` | ``prefix`` | ``suffix`` |
  ``fuzzy`` (substring), ASCII case-insensitive; ``name=None`` or ``""`` lists everything.
- **Nesting**: a second ``transaction()`` on the same store in the same thread raises
  ``RuntimeError`` instead of deadlocking on the writer lock.
- **Read-only units** (``read_transaction()``, an extension beyond the ports): a consistent view
  of the last commit that never takes the writer lock on SQL stores (so pages and snapshot
  builds do not queue behind writers or each other); every mutating call, ``claim_nonce``
  included, raises ``ReadOnlyTransaction``; ``config_version()`` is the version of the view.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from certgate.errors import AlreadyExists, InvalidArgument, NotFound
from certgate.model import Binding

MATCH_MODES = ("exact", "prefix", "suffix", "fuzzy")


def check_page(offset: int, limit: int) -> None:
    if offset < 0 or limit < 0:
        raise InvalidArgument(f"bad page: offset={offset} limit={limit}", reason="storage.page")


def check_match(match: str) -> None:
    if match not in MATCH_MODES:
        raise InvalidArgument(f"match must be one of {', '.join(MATCH_MODES)}", reason="storage.match")


def name_matches(value: str, name: str | None, match: str) -> bool:
    """The in-memory twin of the SQL ``lower(column) LIKE ...`` filters."""
    if not name:
        return True
    value, name = value.lower(), name.lower()
    if match == "exact":
        return value == name
    if match == "prefix":
        return value.startswith(name)
    if match == "suffix":
        return value.endswith(name)
    return name in value


def check_binding(binding: Binding) -> None:
    if len(set(binding.hostnames)) != len(binding.hostnames):
        raise InvalidArgument("a binding names a hostname twice", reason="storage.duplicate_hostname")


def already_exists(what: str, key: object) -> AlreadyExists:
    return AlreadyExists(f"{what} {key} already exists", reason="storage.already_exists")


def not_found(what: str, key: object) -> NotFound:
    return NotFound(f"{what} {key} does not exist", reason="storage.not_found")


def parent_not_found(what: str) -> NotFound:
    return NotFound(f"{what} refers to an object that does not exist", reason="storage.parent_not_found")


class TransactionGuard:
    """Refuses nested transactions per thread (they would wait for their own writer lock)."""

    def __init__(self) -> None:
        self._local = threading.local()

    @contextmanager
    def enter(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def acquire(self) -> None:
        if getattr(self._local, "active", False):
            raise RuntimeError("a transaction is already open on this store in this thread")
        self._local.active = True

    def release(self) -> None:
        self._local.active = False


class ReadOnlyTransaction(RuntimeError):
    """A mutating call on a transaction from ``read_transaction()``."""

    def __init__(self) -> None:
        super().__init__("this transaction is read-only")


class FinishedTransaction(RuntimeError):
    """A ``Transaction`` object was used after its ``with`` block ended."""

    def __init__(self) -> None:
        super().__init__("this transaction has already ended")
