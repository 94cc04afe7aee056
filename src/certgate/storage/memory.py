"""``MemoryStore``: the in-memory adapter of ``services.ports.Store``, first-class, not a mock.

One lock serialises transactions (like SQLite's ``BEGIN IMMEDIATE``): a transaction changes the
live dictionaries in place and records an undo step for every change, so a rollback replays the
undo log backwards and leaves nothing behind. Entities are frozen dataclasses, so handing out the
stored objects themselves is safe. It follows ``storage.contract`` exactly like the SQL adapter.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import heapq
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

from certgate.ids import AccountId, CACertificateId, CertificateId, RecordId, RuleId, SiteId
from certgate.model import (
    AccessKey,
    Account,
    Authority,
    AuthorityKind,
    Binding,
    ClientCACertificate,
    ClientCertificate,
    EdgeCertificate,
    OriginRule,
    Plan,
    Record,
    RevokedSerial,
    Site,
    WafRule,
)
from certgate.storage.contract import (
    FinishedTransaction,
    ReadOnlyTransaction,
    TransactionGuard,
    already_exists,
    check_binding,
    check_match,
    check_page,
    name_matches,
    not_found,
    parent_not_found,
)

K = TypeVar("K")
V = TypeVar("V")

_MISSING: Any = object()
_CertKey = tuple[dt.datetime, str]  # (created_at, id): ascending; lists read it backwards


def _restore(d: dict[Any, Any], key: object, old: object) -> None:
    if old is _MISSING:
        d.pop(key, None)
    else:
        d[key] = old


def _utc(obj: V) -> V:
    """``obj`` with every datetime (nested dataclasses included) in UTC, as the SQL stores return
    them; a naive datetime is refused as it is there."""
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                raise ValueError(f"a timezone-aware datetime is required for {f.name}")
            if value.tzinfo is not dt.UTC:
                changes[f.name] = value.astimezone(dt.UTC)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            converted = _utc(value)
            if converted is not value:
                changes[f.name] = converted
    return dataclasses.replace(obj, **changes) if changes else obj  # type: ignore[type-var]


def _page(items: list[V], offset: int, limit: int) -> tuple[list[V], int]:
    return items[offset : offset + limit], len(items)


class _State:
    def __init__(self) -> None:
        self.version = 0
        self.nonces: dict[str, dt.datetime] = {}
        self.nonce_heap: list[tuple[dt.datetime, str]] = []  # may hold stale entries
        self.accounts: dict[AccountId, Account] = {}
        self.account_names: dict[str, AccountId] = {}
        self.access_keys: dict[str, AccessKey] = {}
        self.authorities: dict[CACertificateId, Authority] = {}
        self.sites: dict[SiteId, Site] = {}
        self.site_names: dict[str, SiteId] = {}
        self.records: dict[RecordId, Record] = {}
        self.record_names: dict[str, RecordId] = {}
        self.client_certs: dict[CertificateId, ClientCertificate] = {}
        self.certs_by_site: dict[SiteId, list[_CertKey]] = {}
        self.revoked: dict[tuple[CACertificateId, str], RevokedSerial] = {}
        self.ca_certs: dict[CACertificateId, ClientCACertificate] = {}
        self.bindings: dict[tuple[SiteId, CACertificateId], tuple[str, ...]] = {}
        self.waf_rules: dict[RuleId, WafRule] = {}
        self.origin_rules: dict[RuleId, OriginRule] = {}
        self.edge_certs: dict[str, EdgeCertificate] = {}


class MemoryStore:
    """``Store`` kept in process memory; everything is lost on ``close``."""

    def __init__(self) -> None:
        self._state = _State()
        self._lock = threading.Lock()
        self._guard = TransactionGuard()
        self._closed = False

    @contextmanager
    def transaction(self) -> Iterator[MemoryTransaction]:
        if self._closed:
            raise RuntimeError("the store is closed")
        with self._guard.enter(), self._lock:
            tx = MemoryTransaction(self._state)
            try:
                yield tx
            except BaseException:
                tx._rollback()
                raise
            finally:
                tx._finished = True
            if tx._dirty:
                self._state.version += 1

    @contextmanager
    def read_transaction(self) -> Iterator[MemoryTransaction]:
        """A read-only unit of work (``storage.contract``). In memory it still takes the lock:
        writers change the dictionaries in place."""
        if self._closed:
            raise RuntimeError("the store is closed")
        with self._guard.enter(), self._lock:
            tx = MemoryTransaction(self._state, read_only=True)
            try:
                yield tx
            finally:
                tx._finished = True

    def current_version(self) -> int:
        return self._state.version

    def close(self) -> None:
        self._closed = True


class MemoryTransaction:
    """One unit of work on a ``MemoryStore``; only valid inside its ``with`` block."""

    def __init__(self, state: _State, *, read_only: bool = False) -> None:
        self._s = state
        self._undo: list[Callable[[], None]] = []
        self._dirty = False
        self._finished = False
        self._read_only = read_only

    # -- undo log ---------------------------------------------------------------------------------

    def _rollback(self) -> None:
        for step in reversed(self._undo):
            step()
        self._undo.clear()

    def _put(self, d: dict[K, V], key: K, value: V) -> None:
        old = d.get(key, _MISSING)
        d[key] = value
        self._undo.append(lambda: _restore(d, key, old))

    def _pop(self, d: dict[K, V], key: K) -> None:
        if key in d:
            old = d.pop(key)
            self._undo.append(lambda: _restore(d, key, old))

    def _insort(self, items: list[_CertKey], key: _CertKey) -> None:
        bisect.insort(items, key)
        self._undo.append(lambda: items.__delitem__(bisect.bisect_left(items, key)))

    def _unsort(self, items: list[_CertKey], key: _CertKey) -> None:
        i = bisect.bisect_left(items, key)
        if i < len(items) and items[i] == key:
            del items[i]
            self._undo.append(lambda: bisect.insort(items, key))

    def _read(self) -> _State:
        if self._finished:
            raise FinishedTransaction()
        return self._s

    def _write(self) -> _State:
        state = self._read()
        if self._read_only:
            raise ReadOnlyTransaction()
        self._dirty = True
        return state

    # -- installation -----------------------------------------------------------------------------

    def config_version(self) -> int:
        return self._read().version + (1 if self._dirty else 0)

    def claim_nonce(self, nonce: str, *, now: dt.datetime, expires_at: dt.datetime) -> bool:
        s = self._read()
        if self._read_only:
            raise ReadOnlyTransaction()
        while s.nonce_heap and s.nonce_heap[0][0] < now:
            entry = heapq.heappop(s.nonce_heap)
            self._undo.append(partial(heapq.heappush, s.nonce_heap, entry))
            if s.nonces.get(entry[1]) == entry[0]:
                self._pop(s.nonces, entry[1])
        if nonce in s.nonces:
            return False
        self._put(s.nonces, nonce, expires_at)
        heapq.heappush(s.nonce_heap, (expires_at, nonce))  # a rolled-back entry is stale: harmless
        return True

    def add_authority(self, authority: Authority) -> None:
        s = self._write()
        authority = _utc(authority)
        if authority.id in s.authorities:
            raise already_exists("authority", authority.id)
        if authority.account_id is not None and authority.account_id not in s.accounts:
            raise parent_not_found("authority")
        self._put(s.authorities, authority.id, authority)

    def _newest_authority(self, kind: AuthorityKind, account_id: AccountId | None) -> Authority | None:
        found = [
            a
            for a in self._read().authorities.values()
            if a.kind == kind and (kind == AuthorityKind.EDGE or a.account_id == account_id)
        ]
        return max(found, key=lambda a: (a.created_at, a.id), default=None)

    def get_edge_authority(self) -> Authority | None:
        return self._newest_authority(AuthorityKind.EDGE, None)

    def get_managed_authority(self, account_id: AccountId) -> Authority | None:
        return self._newest_authority(AuthorityKind.MANAGED, account_id)

    def list_managed_authorities(self) -> list[Authority]:
        found = [a for a in self._read().authorities.values() if a.kind == AuthorityKind.MANAGED]
        return sorted(found, key=lambda a: (a.created_at, a.id))

    # -- accounts ---------------------------------------------------------------------------------

    def add_account(self, account: Account) -> None:
        s = self._write()
        account = _utc(account)
        if account.id in s.accounts:
            raise already_exists("account", account.id)
        if account.name in s.account_names:
            raise already_exists("account named", account.name)
        self._put(s.accounts, account.id, account)
        self._put(s.account_names, account.name, account.id)

    def get_account(self, account_id: AccountId) -> Account | None:
        return self._read().accounts.get(account_id)

    def get_account_by_name(self, name: str) -> Account | None:
        s = self._read()
        account_id = s.account_names.get(name)
        return None if account_id is None else s.accounts[account_id]

    def list_accounts(self) -> list[Account]:
        return sorted(self._read().accounts.values(), key=lambda a: (a.created_at, a.id))

    def set_account_plan(self, account_id: AccountId, plan: Plan) -> None:
        s = self._write()
        account = s.accounts.get(account_id)
        if account is None:
            raise not_found("account", account_id)
        self._put(
            s.accounts,
            account_id,
            Account(account.id, account.name, account.instance_id, plan, account.created_at),
        )

    def add_access_key(self, key: AccessKey) -> None:
        s = self._write()
        key = _utc(key)
        if key.id in s.access_keys:
            raise already_exists("access key", key.id)
        if key.account_id not in s.accounts:
            raise parent_not_found("access key")
        self._put(s.access_keys, key.id, key)

    def get_access_key(self, key_id: str) -> AccessKey | None:
        return self._read().access_keys.get(key_id)

    def list_access_keys(self, account_id: AccountId) -> list[AccessKey]:
        found = [k for k in self._read().access_keys.values() if k.account_id == account_id]
        return sorted(found, key=lambda k: (k.created_at, k.id))

    # -- sites and records ------------------------------------------------------------------------

    def add_site(self, site: Site) -> None:
        s = self._write()
        site = _utc(site)
        if site.id in s.sites:
            raise already_exists("site", site.id)
        if site.name in s.site_names:
            raise already_exists("site named", site.name)
        if site.account_id not in s.accounts:
            raise parent_not_found("site")
        self._put(s.sites, site.id, site)
        self._put(s.site_names, site.name, site.id)

    def get_site(self, account_id: AccountId, site_id: SiteId) -> Site | None:
        site = self._read().sites.get(site_id)
        return site if site is not None and site.account_id == account_id else None

    def get_site_by_name(self, name: str) -> Site | None:
        s = self._read()
        site_id = s.site_names.get(name)
        return None if site_id is None else s.sites[site_id]

    def list_sites(
        self, account_id: AccountId, *, name: str | None, match: str, offset: int, limit: int
    ) -> tuple[list[Site], int]:
        check_match(match)
        check_page(offset, limit)
        found = [
            site
            for site in self._read().sites.values()
            if site.account_id == account_id and name_matches(site.name, name, match)
        ]
        return _page(sorted(found, key=lambda site: (site.name, site.id)), offset, limit)

    def delete_site(self, site_id: SiteId) -> None:
        s = self._write()
        site = s.sites.get(site_id)
        if site is None:
            return
        for record in [r for r in s.records.values() if r.site_id == site_id]:
            self._delete_record(s, record)
        for cert_key in s.certs_by_site.get(site_id, ()):
            self._pop(s.client_certs, CertificateId(cert_key[1]))
        self._pop(s.certs_by_site, site_id)  # the index goes as a whole: no per-entry removal
        for ca_id in [c.id for c in s.ca_certs.values() if c.site_id == site_id]:
            self._pop(s.ca_certs, ca_id)
        for key in [k for k in s.bindings if k[0] == site_id]:
            self._pop(s.bindings, key)
        for rule_id in [r.id for r in s.waf_rules.values() if r.site_id == site_id]:
            self._pop(s.waf_rules, rule_id)
        for rule_id in [r.id for r in s.origin_rules.values() if r.site_id == site_id]:
            self._pop(s.origin_rules, rule_id)
        for hostname in [h for h, c in s.edge_certs.items() if c.site_id == site_id]:
            self._pop(s.edge_certs, hostname)
        self._pop(s.site_names, site.name)
        self._pop(s.sites, site_id)

    def list_all_sites(self) -> list[Site]:
        return sorted(self._read().sites.values(), key=lambda site: site.id)

    def add_record(self, record: Record) -> None:
        s = self._write()
        record = _utc(record)
        if record.id in s.records:
            raise already_exists("record", record.id)
        if record.name in s.record_names:
            raise already_exists("record named", record.name)
        if record.site_id not in s.sites:
            raise parent_not_found("record")
        self._put(s.records, record.id, record)
        self._put(s.record_names, record.name, record.id)

    def get_record(self, site_id: SiteId, record_id: RecordId) -> Record | None:
        record = self._read().records.get(record_id)
        return record if record is not None and record.site_id == site_id else None

    def get_record_by_name(self, name: str) -> Record | None:
        s = self._read()
        record_id = s.record_names.get(name)
        return None if record_id is None else s.records[record_id]

    def list_records(
        self, site_id: SiteId, *, name: str | None, match: str, offset: int, limit: int
    ) -> tuple[list[Record], int]:
        check_match(match)
        check_page(offset, limit)
        found = [
            r
            for r in self._read().records.values()
            if r.site_id == site_id and name_matches(r.name, name, match)
        ]
        return _page(sorted(found, key=lambda r: (r.name, r.id)), offset, limit)

    def _delete_record(self, s: _State, record: Record) -> None:
        self._pop(s.record_names, record.name)
        self._pop(s.records, record.id)

    def delete_record(self, record_id: RecordId) -> None:
        s = self._write()
        record = s.records.get(record_id)
        if record is not None:
            self._delete_record(s, record)

    def list_all_records(self) -> list[Record]:
        return sorted(self._read().records.values(), key=lambda r: r.id)

    # -- client certificates ----------------------------------------------------------------------

    def add_client_certificate(self, cert: ClientCertificate) -> None:
        s = self._write()
        cert = _utc(cert)
        if cert.id in s.client_certs:
            raise already_exists("client certificate", cert.id)
        self._check_certificate_parents(s, cert)
        self._put(s.client_certs, cert.id, cert)
        self._index_certificate(s, cert)

    def _check_certificate_parents(self, s: _State, cert: ClientCertificate) -> None:
        if (
            cert.site_id not in s.sites
            or cert.account_id not in s.accounts
            or cert.authority_id not in s.authorities
        ):
            raise parent_not_found("client certificate")

    def _index_certificate(self, s: _State, cert: ClientCertificate) -> None:
        keys = s.certs_by_site.get(cert.site_id)
        if keys is None:
            keys = []
            self._put(s.certs_by_site, cert.site_id, keys)
        self._insort(keys, (cert.created_at, cert.id))

    def get_client_certificate(
        self, account_id: AccountId, site_id: SiteId, cert_id: CertificateId
    ) -> ClientCertificate | None:
        cert = self._read().client_certs.get(cert_id)
        if cert is None or cert.account_id != account_id or cert.site_id != site_id:
            return None
        return cert

    def list_client_certificates(
        self, site_id: SiteId, *, offset: int, limit: int
    ) -> tuple[list[ClientCertificate], int]:
        check_page(offset, limit)
        s = self._read()
        keys = s.certs_by_site.get(site_id, [])
        end = max(len(keys) - offset, 0)
        start = max(end - limit, 0)
        return [s.client_certs[CertificateId(k[1])] for k in reversed(keys[start:end])], len(keys)

    def update_client_certificate(self, cert: ClientCertificate) -> None:
        s = self._write()
        cert = _utc(cert)
        old = s.client_certs.get(cert.id)
        if old is None or old.site_id != cert.site_id:  # certificates never move between sites
            raise not_found("client certificate", cert.id)
        self._check_certificate_parents(s, cert)
        self._unsort(s.certs_by_site[old.site_id], (old.created_at, old.id))
        self._put(s.client_certs, cert.id, cert)
        self._index_certificate(s, cert)

    def _delete_client_certificate(self, s: _State, cert_id: CertificateId) -> None:
        cert = s.client_certs.get(cert_id)
        if cert is not None:
            self._unsort(s.certs_by_site[cert.site_id], (cert.created_at, cert.id))
            self._pop(s.client_certs, cert_id)

    def delete_client_certificate(self, cert_id: CertificateId) -> None:
        self._delete_client_certificate(self._write(), cert_id)

    def add_revoked_serial(self, entry: RevokedSerial) -> None:
        s = self._write()
        entry = _utc(entry)
        key = (entry.authority_id, entry.serial_hex)
        if key in s.revoked:
            raise already_exists("revoked serial", entry.serial_hex)
        if entry.authority_id not in s.authorities:
            raise parent_not_found("revoked serial")
        self._put(s.revoked, key, entry)

    def remove_revoked_serial(self, authority_id: CACertificateId, serial_hex: str) -> None:
        self._pop(self._write().revoked, (authority_id, serial_hex))

    def list_revoked_serials(self) -> list[RevokedSerial]:
        s = self._read()
        return [s.revoked[key] for key in sorted(s.revoked)]

    # -- custom client CAs ------------------------------------------------------------------------

    def add_ca_certificate(self, ca: ClientCACertificate) -> None:
        s = self._write()
        ca = _utc(ca)
        if ca.id in s.ca_certs:
            raise already_exists("CA certificate", ca.id)
        if ca.site_id not in s.sites or ca.account_id not in s.accounts:
            raise parent_not_found("CA certificate")
        self._put(s.ca_certs, ca.id, ca)

    def get_ca_certificate(
        self, account_id: AccountId, site_id: SiteId, ca_id: CACertificateId
    ) -> ClientCACertificate | None:
        ca = self._read().ca_certs.get(ca_id)
        if ca is None or ca.account_id != account_id or ca.site_id != site_id:
            return None
        return ca

    def list_ca_certificates(
        self, site_id: SiteId, *, offset: int, limit: int
    ) -> tuple[list[ClientCACertificate], int]:
        check_page(offset, limit)
        found = [c for c in self._read().ca_certs.values() if c.site_id == site_id]
        return _page(sorted(found, key=lambda c: (c.created_at, c.id), reverse=True), offset, limit)

    def count_ca_certificates(self, account_id: AccountId) -> int:
        return sum(1 for c in self._read().ca_certs.values() if c.account_id == account_id)

    def delete_ca_certificate(self, ca_id: CACertificateId) -> None:
        s = self._write()
        self._pop(s.ca_certs, ca_id)
        for key in [k for k in s.bindings if k[1] == ca_id]:
            self._pop(s.bindings, key)

    def list_all_ca_certificates(self) -> list[ClientCACertificate]:
        return sorted(self._read().ca_certs.values(), key=lambda c: c.id)

    # -- bindings ---------------------------------------------------------------------------------

    def get_binding(self, site_id: SiteId, ca_id: CACertificateId) -> Binding:
        return Binding(site_id, ca_id, self._read().bindings.get((site_id, ca_id), ()))

    def set_binding(self, binding: Binding) -> None:
        s = self._write()
        check_binding(binding)
        key = (binding.site_id, binding.ca_id)
        if not binding.hostnames:
            self._pop(s.bindings, key)
            return
        if binding.site_id not in s.sites:
            raise parent_not_found("binding")
        self._put(s.bindings, key, tuple(binding.hostnames))

    def list_bindings(self, site_id: SiteId | None = None) -> list[Binding]:
        s = self._read()
        return [
            Binding(key[0], key[1], hostnames)
            for key, hostnames in sorted(s.bindings.items())
            if site_id is None or key[0] == site_id
        ]

    # -- WAF and origin rules ---------------------------------------------------------------------

    def add_waf_rule(self, rule: WafRule) -> None:
        s = self._write()
        rule = _utc(rule)
        if rule.id in s.waf_rules:
            raise already_exists("WAF rule", rule.id)
        if rule.site_id not in s.sites:
            raise parent_not_found("WAF rule")
        self._put(s.waf_rules, rule.id, rule)

    def get_waf_rule(self, site_id: SiteId, rule_id: RuleId) -> WafRule | None:
        rule = self._read().waf_rules.get(rule_id)
        return rule if rule is not None and rule.site_id == site_id else None

    def list_waf_rules(
        self, site_id: SiteId, *, phase: str | None, offset: int, limit: int
    ) -> tuple[list[WafRule], int]:
        check_page(offset, limit)
        found = [
            r
            for r in self._read().waf_rules.values()
            if r.site_id == site_id and (phase is None or r.phase == phase)
        ]
        return _page(sorted(found, key=lambda r: (r.position, r.id)), offset, limit)

    def count_waf_rules(self, site_id: SiteId) -> int:
        return sum(1 for r in self._read().waf_rules.values() if r.site_id == site_id)

    def update_waf_rule(self, rule: WafRule) -> None:
        s = self._write()
        rule = _utc(rule)
        if rule.id not in s.waf_rules:
            raise not_found("WAF rule", rule.id)
        if rule.site_id not in s.sites:
            raise parent_not_found("WAF rule")
        self._put(s.waf_rules, rule.id, rule)

    def delete_waf_rule(self, rule_id: RuleId) -> None:
        self._pop(self._write().waf_rules, rule_id)

    def list_all_waf_rules(self) -> list[WafRule]:
        return sorted(self._read().waf_rules.values(), key=lambda r: (r.site_id, r.position, r.id))

    def add_origin_rule(self, rule: OriginRule) -> None:
        s = self._write()
        rule = _utc(rule)
        if rule.id in s.origin_rules:
            raise already_exists("origin rule", rule.id)
        if rule.site_id not in s.sites:
            raise parent_not_found("origin rule")
        self._put(s.origin_rules, rule.id, rule)

    def get_origin_rule(self, site_id: SiteId, rule_id: RuleId) -> OriginRule | None:
        rule = self._read().origin_rules.get(rule_id)
        return rule if rule is not None and rule.site_id == site_id else None

    def list_origin_rules(self, site_id: SiteId) -> list[OriginRule]:
        found = [r for r in self._read().origin_rules.values() if r.site_id == site_id]
        return sorted(found, key=lambda r: (r.sequence, r.id))

    def delete_origin_rule(self, rule_id: RuleId) -> None:
        self._pop(self._write().origin_rules, rule_id)

    def list_all_origin_rules(self) -> list[OriginRule]:
        return sorted(self._read().origin_rules.values(), key=lambda r: (r.site_id, r.sequence, r.id))

    # -- edge certificates ------------------------------------------------------------------------

    def put_edge_certificate(self, cert: EdgeCertificate) -> None:
        s = self._write()
        cert = _utc(cert)
        if cert.site_id not in s.sites:
            raise parent_not_found("edge certificate")
        self._put(s.edge_certs, cert.hostname, cert)

    def get_edge_certificate(self, hostname: str) -> EdgeCertificate | None:
        return self._read().edge_certs.get(hostname)

    def delete_edge_certificate(self, hostname: str) -> None:
        self._pop(self._write().edge_certs, hostname)

    def list_edge_certificates(self) -> list[EdgeCertificate]:
        s = self._read()
        return [s.edge_certs[h] for h in sorted(s.edge_certs)]
