"""What the services need from the outside world, declared by the services (the consumer).

Storage adapters (memory, SQLite, PostgreSQL) implement ``Store``; one contract-test module runs
them all. A ``Transaction`` is one unit of work: everything in it commits together or not at all.
Every mutating call except ``claim_nonce`` marks the transaction dirty, and committing a dirty
transaction bumps the installation's **configuration version** by exactly one: that number is the
version of the snapshot edges pull.

Lookups that take an ``account_id`` return ``None`` for objects of other accounts: callers cannot
tell "belongs to someone else" from "does not exist".
"""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager
from typing import Protocol

from certgate.ids import AccountId, CACertificateId, CertificateId, RecordId, RuleId, SiteId
from certgate.model import (
    AccessKey,
    Account,
    Authority,
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


class KeySealer(Protocol):
    """Encrypts secrets at rest (CA keys, edge keys, access-key secrets).

    ``context`` is bound into the ciphertext (AEAD associated data), so a sealed blob copied to
    another row does not open there.
    """

    def seal(self, plaintext: bytes, *, context: str) -> bytes: ...

    def unseal(self, blob: bytes, *, context: str) -> bytes: ...


class ExpressionValidator(Protocol):
    """The narrow port the rule language fills: raise ``InvalidArgument`` with position info."""

    def validate(self, expression: str) -> None: ...


class Transaction(Protocol):
    # -- installation ------------------------------------------------------------------------
    def config_version(self) -> int: ...

    def claim_nonce(self, nonce: str, *, now: dt.datetime, expires_at: dt.datetime) -> bool:
        """Remember ``nonce`` until ``expires_at``; False if it is already remembered.
        Also forgets nonces that expired before ``now``. Does not bump the version."""
        ...

    def add_authority(self, authority: Authority) -> None: ...

    def get_edge_authority(self) -> Authority | None: ...

    def get_managed_authority(self, account_id: AccountId) -> Authority | None: ...

    def list_managed_authorities(self) -> list[Authority]: ...

    # -- accounts ----------------------------------------------------------------------------
    def add_account(self, account: Account) -> None: ...

    def get_account(self, account_id: AccountId) -> Account | None: ...

    def get_account_by_name(self, name: str) -> Account | None: ...

    def list_accounts(self) -> list[Account]: ...

    def set_account_plan(self, account_id: AccountId, plan: Plan) -> None: ...

    def add_access_key(self, key: AccessKey) -> None: ...

    def get_access_key(self, key_id: str) -> AccessKey | None: ...

    def list_access_keys(self, account_id: AccountId) -> list[AccessKey]: ...

    # -- sites and records -------------------------------------------------------------------
    def add_site(self, site: Site) -> None: ...

    def get_site(self, account_id: AccountId, site_id: SiteId) -> Site | None: ...

    def get_site_by_name(self, name: str) -> Site | None:
        """Any account's site: site names are unique in an installation, as in ESA."""
        ...

    def list_sites(
        self, account_id: AccountId, *, name: str | None, match: str, offset: int, limit: int
    ) -> tuple[list[Site], int]:
        """``match`` is ``exact`` | ``prefix`` | ``suffix`` | ``fuzzy`` (ESA SiteSearchType)."""
        ...

    def delete_site(self, site_id: SiteId) -> None:
        """Deletes the site and everything under it (records, certificates, CAs, bindings, rules)."""
        ...

    def list_all_sites(self) -> list[Site]: ...

    def add_record(self, record: Record) -> None: ...

    def get_record(self, site_id: SiteId, record_id: RecordId) -> Record | None: ...

    def get_record_by_name(self, name: str) -> Record | None: ...

    def list_records(
        self, site_id: SiteId, *, name: str | None, match: str, offset: int, limit: int
    ) -> tuple[list[Record], int]: ...

    def delete_record(self, record_id: RecordId) -> None: ...

    def list_all_records(self) -> list[Record]: ...

    # -- client certificates -----------------------------------------------------------------
    def add_client_certificate(self, cert: ClientCertificate) -> None: ...

    def get_client_certificate(
        self, account_id: AccountId, site_id: SiteId, cert_id: CertificateId
    ) -> ClientCertificate | None: ...

    def list_client_certificates(
        self, site_id: SiteId, *, offset: int, limit: int
    ) -> tuple[list[ClientCertificate], int]:
        """Newest first (created_at desc, id desc)."""
        ...

    def update_client_certificate(self, cert: ClientCertificate) -> None: ...

    def delete_client_certificate(self, cert_id: CertificateId) -> None: ...

    def add_revoked_serial(self, entry: RevokedSerial) -> None: ...

    def remove_revoked_serial(self, authority_id: CACertificateId, serial_hex: str) -> None: ...

    def list_revoked_serials(self) -> list[RevokedSerial]: ...

    # -- custom client CAs -------------------------------------------------------------------
    def add_ca_certificate(self, ca: ClientCACertificate) -> None: ...

    def get_ca_certificate(
        self, account_id: AccountId, site_id: SiteId, ca_id: CACertificateId
    ) -> ClientCACertificate | None: ...

    def list_ca_certificates(
        self, site_id: SiteId, *, offset: int, limit: int
    ) -> tuple[list[ClientCACertificate], int]: ...

    def count_ca_certificates(self, account_id: AccountId) -> int:
        """Custom CAs of all sites of the account: the plan quota counts them all."""
        ...

    def delete_ca_certificate(self, ca_id: CACertificateId) -> None: ...

    def list_all_ca_certificates(self) -> list[ClientCACertificate]: ...

    # -- bindings ----------------------------------------------------------------------------
    def get_binding(self, site_id: SiteId, ca_id: CACertificateId) -> Binding:
        """The binding, or an empty one."""
        ...

    def set_binding(self, binding: Binding) -> None:
        """Replace the hostnames of (site, CA); an empty tuple removes the binding."""
        ...

    def list_bindings(self, site_id: SiteId | None = None) -> list[Binding]: ...

    # -- WAF and origin rules ----------------------------------------------------------------
    def add_waf_rule(self, rule: WafRule) -> None: ...

    def get_waf_rule(self, site_id: SiteId, rule_id: RuleId) -> WafRule | None: ...

    def list_waf_rules(
        self, site_id: SiteId, *, phase: str | None, offset: int, limit: int
    ) -> tuple[list[WafRule], int]:
        """In position order."""
        ...

    def count_waf_rules(self, site_id: SiteId) -> int: ...

    def update_waf_rule(self, rule: WafRule) -> None: ...

    def delete_waf_rule(self, rule_id: RuleId) -> None: ...

    def list_all_waf_rules(self) -> list[WafRule]: ...

    def add_origin_rule(self, rule: OriginRule) -> None: ...

    def get_origin_rule(self, site_id: SiteId, rule_id: RuleId) -> OriginRule | None: ...

    def list_origin_rules(self, site_id: SiteId) -> list[OriginRule]: ...

    def delete_origin_rule(self, rule_id: RuleId) -> None: ...

    def list_all_origin_rules(self) -> list[OriginRule]: ...

    # -- edge certificates -------------------------------------------------------------------
    def put_edge_certificate(self, cert: EdgeCertificate) -> None: ...

    def get_edge_certificate(self, hostname: str) -> EdgeCertificate | None: ...

    def delete_edge_certificate(self, hostname: str) -> None: ...

    def list_edge_certificates(self) -> list[EdgeCertificate]: ...


class Store(Protocol):
    def transaction(self) -> AbstractContextManager[Transaction]:
        """A read-write unit of work; commits on normal exit, rolls back on an exception.
        Writers are serialised; readers never see a half-done transaction."""
        ...

    def read_transaction(self) -> AbstractContextManager[Transaction]:
        """A read-only unit of work: one consistent view, never blocked by (nor blocking)
        writers; every mutating call raises. Use it for lookups, lists and snapshot builds."""
        ...

    def current_version(self) -> int:
        """The configuration version of the last committed dirty transaction (0 when new)."""
        ...

    def close(self) -> None: ...
