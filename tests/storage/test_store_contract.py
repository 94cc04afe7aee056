"""The one contract every store meets: memory, SQLite and PostgreSQL run this same module.

It covers every method of ``services.ports.Transaction`` and the rules ``storage.contract`` adds
(duplicates, dangling references, orders, matching, dirty tracking, nesting).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from certgate.errors import AlreadyExists, InvalidArgument, NotFound
from certgate.ids import AccountId, CACertificateId, CertificateId, RecordId, RuleId, SiteId
from certgate.model import (
    AccessKey,
    Account,
    Authority,
    AuthorityKind,
    Binding,
    CertificateStatus,
    CertificateSummary,
    ClientCACertificate,
    ClientCertificate,
    EdgeCertificate,
    OriginRule,
    Plan,
    Record,
    RevokedSerial,
    RuleAction,
    RuleStatus,
    Site,
    WafRule,
)
from certgate.services.ports import Store, Transaction
from certgate.storage import open_store
from certgate.storage.contract import ReadOnlyTransaction

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


# -- builders ------------------------------------------------------------------------------------


def account(n: int, *, name: str | None = None, created: float = 0) -> Account:
    return Account(AccountId(f"{n:032x}"), name or f"account-{n}", f"esa-site-{n:012x}", Plan(), at(created))


def authority(
    n: int, account_id: AccountId | None, *, kind: AuthorityKind = AuthorityKind.MANAGED, created: float = 0
) -> Authority:
    return Authority(
        CACertificateId(f"a{n:031x}"),
        kind,
        account_id,
        f"-----BEGIN CERTIFICATE-----\nCA{n}\n-----END CERTIFICATE-----\n",
        bytes([1, n % 256, 0, 255]) + b"sealed\x00key",
        at(created),
    )


def site(n: int, account_id: AccountId, name: str, *, created: float = 0) -> Site:
    return Site(
        SiteId(1_000_000_000_000 + n),
        account_id,
        name,
        "NS",
        "global",
        "esa-site-x",
        "active",
        f"verify_{n}",
        at(created),
        at(created),
    )


def record(n: int, site_id: SiteId, name: str, *, proxied: bool = True) -> Record:
    return Record(
        RecordId(2_000_000_000_000 + n), site_id, name, "A/AAAA", 1, "192.0.2.1", proxied, "web", "c", T0, T0
    )


def summary(n: int, *, serial: str | None = None) -> CertificateSummary:
    return CertificateSummary(
        certificate_pem=f"-----BEGIN CERTIFICATE-----\nC{n}\n-----END CERTIFICATE-----\n",
        common_name=f"device-{n}",
        subject_dn=f"CN=device-{n}",
        issuer_dn="CN=Managed CA",
        issuer_common_name="Managed CA",
        serial_hex=serial or f"{n:040x}",
        fingerprint_sha256=f"{n:064x}",
        signature_algorithm="ecdsa-with-SHA256",
        public_key_algorithm="EC P-256",
        san="DNS:device.example.com",
        not_before=at(-60),
        not_after=at(86400 * 365),
    )


def client_cert(
    n: int, acct: AccountId, site_id: SiteId, authority_id: CACertificateId, *, created: float = 0
) -> ClientCertificate:
    return ClientCertificate(
        id=CertificateId(f"c{n:031x}"),
        account_id=acct,
        site_id=site_id,
        authority_id=authority_id,
        status=CertificateStatus.ACTIVE,
        validity_days=365,
        cert=summary(n),
        created_at=at(created),
        updated_at=at(created),
    )


def ca_cert(n: int, acct: AccountId, site_id: SiteId, *, created: float = 0) -> ClientCACertificate:
    return ClientCACertificate(
        CACertificateId(f"d{n:031x}"), acct, site_id, f"partner CA {n}", summary(n), at(created), at(created)
    )


def waf_rule(n: int, site_id: SiteId, *, position: int, phase: str = "http_custom") -> WafRule:
    return WafRule(
        id=RuleId(3_000_000 + n),
        site_id=site_id,
        ruleset_id=10_000_001,
        phase=phase,
        name=f"rule {n}",
        expression='(http.host eq "a.example.com")',
        action=RuleAction.DENY,
        status=RuleStatus.ON,
        position=position,
        config_json='{"Action":"deny"}',
        updated_at=T0,
    )


def origin_rule(n: int, site_id: SiteId, *, sequence: int) -> OriginRule:
    return OriginRule(
        id=RuleId(4_000_000 + n),
        site_id=site_id,
        name=f"origin {n}",
        expression="true",
        enabled=True,
        sequence=sequence,
        origin_scheme="https",
        origin_http_port=None,
        origin_https_port=8443,
        origin_host="origin.example.net",
        origin_sni=None,
        origin_read_timeout=30,
        dns_record=None,
        updated_at=T0,
    )


def edge_cert(site_id: SiteId, hostname: str, *, days: int = 90) -> EdgeCertificate:
    return EdgeCertificate(
        site_id,
        hostname,
        f"CHAIN {hostname}\n",
        b"\x01sealed-" + hostname.encode(),
        False,
        at(86400 * days),
        T0,
    )


# -- a small world -------------------------------------------------------------------------------


@dataclass
class World:
    store: Store
    alice: Account
    bob: Account
    alice_ca: Authority
    bob_ca: Authority
    edge_ca: Authority
    site_a: Site  # alice's
    site_b: Site  # bob's


@pytest.fixture
def world(store: Store) -> World:
    return make_world(store)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_world(request: pytest.FixtureRequest) -> Iterator[World]:
    """The world on the SQL stores only, for what only they promise."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_store_url")
    store = open_store(url)
    try:
        yield make_world(store)
    finally:
        store.close()


def make_world(store: Store) -> World:
    alice, bob = account(1, name="alice"), account(2, name="bob", created=1)
    alice_ca, bob_ca = authority(1, alice.id), authority(2, bob.id, created=1)
    edge_ca = authority(3, None, kind=AuthorityKind.EDGE)
    site_a, site_b = site(1, alice.id, "example.com"), site(2, bob.id, "other.org")
    with store.transaction() as tx:
        for a in (alice, bob):
            tx.add_account(a)
        for auth in (alice_ca, bob_ca, edge_ca):
            tx.add_authority(auth)
        tx.add_site(site_a)
        tx.add_site(site_b)
    return World(store, alice, bob, alice_ca, bob_ca, edge_ca, site_a, site_b)


@pytest.fixture
def tx(world: World) -> Iterator[Transaction]:
    """A transaction on the world, rolled back at the end so nothing leaks between steps."""
    with pytest.raises(_Rollback), world.store.transaction() as tx:
        yield tx
        raise _Rollback


class _Rollback(Exception):
    pass


# -- installation --------------------------------------------------------------------------------


def test_a_new_store_is_at_version_zero(store: Store) -> None:
    assert store.current_version() == 0
    with store.transaction() as tx:
        assert tx.config_version() == 0
        assert tx.list_accounts() == []
        assert tx.get_edge_authority() is None


def test_authorities_round_trip_and_the_newest_wins(world: World) -> None:
    newer = authority(9, world.alice.id, created=100)
    older_edge = authority(8, None, kind=AuthorityKind.EDGE, created=-100)
    with world.store.transaction() as tx:
        assert tx.get_managed_authority(world.alice.id) == world.alice_ca
        assert tx.get_managed_authority(world.bob.id) == world.bob_ca
        assert tx.get_managed_authority(AccountId("f" * 32)) is None
        assert tx.get_edge_authority() == world.edge_ca
        tx.add_authority(newer)
        tx.add_authority(older_edge)
    with world.store.transaction() as tx:
        assert tx.get_managed_authority(world.alice.id) == newer
        assert tx.get_edge_authority() == world.edge_ca
        assert tx.list_managed_authorities() == [world.alice_ca, world.bob_ca, newer]
        fetched = tx.get_managed_authority(world.alice.id)
        assert fetched is not None and isinstance(fetched.sealed_key, bytes)
        assert fetched.kind is AuthorityKind.MANAGED


def test_authority_duplicates_and_unknown_accounts_are_refused(tx: Transaction, world: World) -> None:
    with pytest.raises(AlreadyExists) as dup:
        tx.add_authority(world.alice_ca)
    assert dup.value.reason == "storage.already_exists"
    with pytest.raises(NotFound) as orphan:
        tx.add_authority(authority(7, AccountId("e" * 32)))
    assert orphan.value.reason == "storage.parent_not_found"


# -- accounts and access keys --------------------------------------------------------------------


def test_accounts(world: World) -> None:
    with world.store.transaction() as tx:
        assert tx.get_account(world.alice.id) == world.alice
        assert tx.get_account(AccountId("0" * 32)) is None
        assert tx.get_account_by_name("bob") == world.bob
        assert tx.get_account_by_name("carol") is None
        assert tx.list_accounts() == [world.alice, world.bob]
        plan = Plan(
            custom_ca_limit=7, hostnames_per_call=10, sites_limit=3, waf_rules_per_site=20, name="pro"
        )
        tx.set_account_plan(world.alice.id, plan)
    with world.store.transaction() as tx:
        assert tx.get_account(world.alice.id) == replace(world.alice, plan=plan)
        assert tx.get_account(world.bob.id) == world.bob


def test_account_duplicates_and_missing_accounts(tx: Transaction, world: World) -> None:
    with pytest.raises(AlreadyExists):
        tx.add_account(replace(world.alice, name="someone-else"))
    with pytest.raises(AlreadyExists):
        tx.add_account(account(5, name="alice"))
    with pytest.raises(NotFound) as missing:
        tx.set_account_plan(AccountId("0" * 32), Plan())
    assert missing.value.reason == "storage.not_found"


def test_access_keys(world: World) -> None:
    k1 = AccessKey("LTAI1", world.alice.id, b"\x01secret-1", at(10))
    k2 = AccessKey("LTAI2", world.alice.id, b"\x01secret-2", at(5), enabled=False)
    k3 = AccessKey("LTAI3", world.bob.id, b"\x01secret-3", at(1))
    with world.store.transaction() as tx:
        for k in (k1, k2, k3):
            tx.add_access_key(k)
        with pytest.raises(AlreadyExists):
            tx.add_access_key(replace(k1, account_id=world.bob.id))
    with world.store.transaction() as tx:
        assert tx.get_access_key("LTAI2") == k2
        assert tx.get_access_key("LTAI9") is None
        assert tx.list_access_keys(world.alice.id) == [k2, k1]
        assert tx.list_access_keys(world.bob.id) == [k3]
    with pytest.raises(NotFound), world.store.transaction() as tx:
        tx.add_access_key(AccessKey("LTAI4", AccountId("0" * 32), b"x", T0))


# -- sites ---------------------------------------------------------------------------------------


def test_sites_are_isolated_by_account(world: World) -> None:
    with world.store.transaction() as tx:
        assert tx.get_site(world.alice.id, world.site_a.id) == world.site_a
        assert tx.get_site(world.bob.id, world.site_a.id) is None
        assert tx.get_site(world.alice.id, SiteId(42)) is None
        assert tx.get_site_by_name("other.org") == world.site_b  # any account's
        assert tx.get_site_by_name("nope.org") is None
        assert tx.list_all_sites() == [world.site_a, world.site_b]


def test_site_duplicates_and_orphans(tx: Transaction, world: World) -> None:
    with pytest.raises(AlreadyExists):
        tx.add_site(replace(world.site_a, name="fresh.com"))
    with pytest.raises(AlreadyExists):
        tx.add_site(site(9, world.bob.id, "example.com"))  # names are unique across accounts
    with pytest.raises(NotFound):
        tx.add_site(site(10, AccountId("0" * 32), "orphan.com"))


@pytest.fixture
def many_sites(world: World) -> World:
    names = ["b.example.net", "a.example.org", "shop.example.com", "Z.test", "100%_sure.net", "example.co"]
    with world.store.transaction() as tx:
        for i, name in enumerate(names):
            tx.add_site(site(100 + i, world.alice.id, name, created=i))
    return world


@pytest.mark.parametrize(
    ("name", "match", "expected"),
    [
        (
            None,
            "exact",
            [
                "100%_sure.net",
                "a.example.org",
                "b.example.net",
                "example.co",
                "example.com",
                "shop.example.com",
                "Z.test",
            ],
        ),
        (
            "",
            "fuzzy",
            [
                "100%_sure.net",
                "a.example.org",
                "b.example.net",
                "example.co",
                "example.com",
                "shop.example.com",
                "Z.test",
            ],
        ),
        ("example.com", "exact", ["example.com"]),
        ("EXAMPLE.COM", "exact", ["example.com"]),
        ("example.c", "exact", []),
        ("example.co", "prefix", ["example.co", "example.com"]),
        ("example.com", "suffix", ["example.com", "shop.example.com"]),
        ("z.TEST", "suffix", ["Z.test"]),
        ("ample.n", "fuzzy", ["b.example.net"]),
        (
            "example",
            "fuzzy",
            ["a.example.org", "b.example.net", "example.co", "example.com", "shop.example.com"],
        ),
        ("%", "fuzzy", ["100%_sure.net"]),  # LIKE wildcards in the search text are literal
        ("_", "fuzzy", ["100%_sure.net"]),
        ("a_example", "fuzzy", []),
        ("other.org", "exact", []),  # bob's site is not alice's
    ],
)
def test_list_sites_match_modes(many_sites: World, name: str | None, match: str, expected: list[str]) -> None:
    with many_sites.store.transaction() as tx:
        found, total = tx.list_sites(many_sites.alice.id, name=name, match=match, offset=0, limit=100)
    assert [s.name for s in found] == sorted(expected)
    assert total == len(expected)


def test_list_sites_pages_with_totals(many_sites: World) -> None:
    with many_sites.store.transaction() as tx:
        everything, total = tx.list_sites(many_sites.alice.id, name=None, match="exact", offset=0, limit=100)
        pages = [
            tx.list_sites(many_sites.alice.id, name=None, match="exact", offset=o, limit=3)
            for o in (0, 3, 6, 9)
        ]
        with pytest.raises(InvalidArgument):
            tx.list_sites(many_sites.alice.id, name="x", match="regex", offset=0, limit=10)
        with pytest.raises(InvalidArgument):
            tx.list_sites(many_sites.alice.id, name=None, match="exact", offset=-1, limit=10)
    assert total == 7
    assert [len(p) for p, _ in pages] == [3, 3, 1, 0]
    assert all(t == 7 for _, t in pages)
    assert [s for p, _ in pages for s in p] == everything


# -- records -------------------------------------------------------------------------------------


def test_records(world: World) -> None:
    a = [
        record(i, world.site_a.id, n)
        for i, n in enumerate(["www.example.com", "api.example.com", "*.dev.example.com"])
    ]
    b = record(9, world.site_b.id, "api.other.org")
    with world.store.transaction() as tx:
        for r in [*a, b]:
            tx.add_record(r)
    with world.store.transaction() as tx:
        assert tx.get_record(world.site_a.id, a[0].id) == a[0]
        assert tx.get_record(world.site_b.id, a[0].id) is None  # another site's record
        assert tx.get_record_by_name("api.other.org") == b
        assert tx.get_record_by_name("nope.example.com") is None
        listed, total = tx.list_records(world.site_a.id, name=None, match="exact", offset=0, limit=10)
        assert (listed, total) == ([a[2], a[1], a[0]], 3)
        assert tx.list_records(world.site_a.id, name="API", match="prefix", offset=0, limit=10) == ([a[1]], 1)
        assert tx.list_records(world.site_a.id, name="example.com", match="suffix", offset=1, limit=1) == (
            [a[1]],
            3,
        )
        assert tx.list_all_records() == sorted([*a, b], key=lambda r: r.id)
        tx.delete_record(a[1].id)
        tx.delete_record(RecordId(12345))  # deleting what is not there is a no-op
    with world.store.transaction() as tx:
        assert tx.get_record_by_name("api.example.com") is None
        assert tx.list_records(world.site_a.id, name=None, match="exact", offset=0, limit=10)[1] == 2


def test_record_names_are_unique_and_need_a_site(tx: Transaction, world: World) -> None:
    tx.add_record(record(1, world.site_a.id, "www.example.com"))
    with pytest.raises(AlreadyExists):
        tx.add_record(record(2, world.site_a.id, "www.example.com"))
    with pytest.raises(AlreadyExists):
        tx.add_record(record(1, world.site_a.id, "other.example.com"))
    with pytest.raises(NotFound):
        tx.add_record(record(3, SiteId(99), "x.example.com"))


# -- client certificates -------------------------------------------------------------------------


def test_client_certificates_round_trip_and_isolation(world: World) -> None:
    cert = client_cert(1, world.alice.id, world.site_a.id, world.alice_ca.id)
    with world.store.transaction() as tx:
        tx.add_client_certificate(cert)
    with world.store.transaction() as tx:
        got = tx.get_client_certificate(world.alice.id, world.site_a.id, cert.id)
        assert got == cert
        assert (
            got is not None
            and got.created_at.tzinfo is not None
            and got.created_at.utcoffset() == dt.timedelta(0)
        )
        assert got.status is CertificateStatus.ACTIVE and got.revoked_at is None
        assert tx.get_client_certificate(world.bob.id, world.site_a.id, cert.id) is None
        assert tx.get_client_certificate(world.alice.id, world.site_b.id, cert.id) is None
        assert tx.get_client_certificate(world.alice.id, world.site_a.id, CertificateId("0" * 32)) is None


def test_client_certificates_page_newest_first(world: World) -> None:
    certs = [
        client_cert(i, world.alice.id, world.site_a.id, world.alice_ca.id, created=i // 3)  # ties on time
        for i in range(20)
    ]
    other = client_cert(99, world.bob.id, world.site_b.id, world.bob_ca.id, created=1000)
    with world.store.transaction() as tx:
        for c in [*certs[::2], other, *certs[1::2]]:  # insertion order must not matter
            tx.add_client_certificate(c)
    expected = sorted(certs, key=lambda c: (c.created_at, c.id), reverse=True)
    with world.store.transaction() as tx:
        pages = [tx.list_client_certificates(world.site_a.id, offset=o, limit=6) for o in range(0, 24, 6)]
        assert all(total == 20 for _, total in pages)
        assert [c for page, _ in pages for c in page] == expected
        assert tx.list_client_certificates(world.site_a.id, offset=25, limit=6) == ([], 20)
        assert tx.list_client_certificates(world.site_a.id, offset=0, limit=0) == ([], 20)
        assert tx.list_client_certificates(world.site_b.id, offset=0, limit=5) == ([other], 1)
        assert tx.list_client_certificates(SiteId(77), offset=0, limit=5) == ([], 0)


def test_every_page_of_the_certificate_list_is_the_right_slice(world: World) -> None:
    """Pages from either end of the list (the SQL store walks from the nearer one)."""
    certs = [
        client_cert(i, world.alice.id, world.site_a.id, world.alice_ca.id, created=(i * 7) % 5)
        for i in range(23)
    ]
    with world.store.transaction() as tx:
        for c in certs:
            tx.add_client_certificate(c)
        tx.add_client_certificate(client_cert(99, world.bob.id, world.site_b.id, world.bob_ca.id))
    expected = sorted(certs, key=lambda c: (c.created_at, c.id), reverse=True)
    with world.store.transaction() as tx:
        for offset in range(26):
            for limit in (1, 5, 7, 100):
                assert tx.list_client_certificates(world.site_a.id, offset=offset, limit=limit) == (
                    expected[offset : offset + limit],
                    23,
                ), (offset, limit)


def test_client_certificate_update_and_delete(world: World) -> None:
    cert = client_cert(1, world.alice.id, world.site_a.id, world.alice_ca.id)
    keep = client_cert(2, world.alice.id, world.site_a.id, world.alice_ca.id, created=5)
    revoked = replace(cert, status=CertificateStatus.REVOKED, revoked_at=at(60), updated_at=at(60))
    with world.store.transaction() as tx:
        tx.add_client_certificate(cert)
        tx.add_client_certificate(keep)
    with world.store.transaction() as tx:
        tx.update_client_certificate(revoked)
    with world.store.transaction() as tx:
        assert tx.get_client_certificate(world.alice.id, world.site_a.id, cert.id) == revoked
        assert tx.list_client_certificates(world.site_a.id, offset=0, limit=10) == ([keep, revoked], 2)
        with pytest.raises(NotFound):
            tx.update_client_certificate(client_cert(3, world.alice.id, world.site_a.id, world.alice_ca.id))
        with pytest.raises(NotFound):  # certificates never move between sites
            tx.update_client_certificate(replace(revoked, site_id=world.site_b.id))
    with world.store.transaction() as tx:
        tx.delete_client_certificate(cert.id)
        tx.delete_client_certificate(cert.id)  # twice: no-op
    with world.store.transaction() as tx:
        assert tx.get_client_certificate(world.alice.id, world.site_a.id, cert.id) is None
        assert tx.list_client_certificates(world.site_a.id, offset=0, limit=10) == ([keep], 1)


def test_client_certificate_duplicates(tx: Transaction, world: World) -> None:
    cert = client_cert(1, world.alice.id, world.site_a.id, world.alice_ca.id)
    tx.add_client_certificate(cert)
    with pytest.raises(AlreadyExists):
        tx.add_client_certificate(cert)
    with pytest.raises(AlreadyExists):
        tx.add_client_certificate(replace(cert, site_id=world.site_b.id, account_id=world.bob.id))


@pytest.mark.parametrize(
    "orphan",
    [
        {"site_id": SiteId(5)},
        {"authority_id": CACertificateId("0" * 32)},
        {"account_id": AccountId("0" * 32)},
    ],
)
def test_client_certificates_need_their_site_account_and_authority(
    world: World, orphan: dict[str, Any]
) -> None:
    cert = replace(client_cert(1, world.alice.id, world.site_a.id, world.alice_ca.id), **orphan)
    with pytest.raises(NotFound) as err, world.store.transaction() as tx:
        tx.add_client_certificate(cert)
    assert err.value.reason == "storage.parent_not_found"
    with world.store.transaction() as tx:
        assert tx.list_client_certificates(cert.site_id, offset=0, limit=10) == ([], 0)


def test_revoked_serials(world: World) -> None:
    r1 = RevokedSerial(world.alice_ca.id, "0a", at(1), at(1000))
    r2 = RevokedSerial(world.alice_ca.id, "01", at(2), at(2000))
    r3 = RevokedSerial(world.bob_ca.id, "0a", at(3), at(3000))
    with world.store.transaction() as tx:
        for r in (r1, r2, r3):
            tx.add_revoked_serial(r)
        with pytest.raises(AlreadyExists):
            tx.add_revoked_serial(r1)
    with world.store.transaction() as tx:
        assert tx.list_revoked_serials() == sorted([r1, r2, r3], key=lambda r: (r.authority_id, r.serial_hex))
        tx.remove_revoked_serial(world.alice_ca.id, "0a")
        tx.remove_revoked_serial(world.alice_ca.id, "ff")  # not there: no-op
    with world.store.transaction() as tx:
        assert tx.list_revoked_serials() == [r2, r3]
    with pytest.raises(NotFound), world.store.transaction() as tx:
        tx.add_revoked_serial(RevokedSerial(CACertificateId("0" * 32), "01", T0, T0))


# -- custom CAs and bindings ---------------------------------------------------------------------


def test_ca_certificates(world: World) -> None:
    site_a2 = site(3, world.alice.id, "example.net")
    cas = [ca_cert(i, world.alice.id, world.site_a.id, created=10 - i) for i in range(3)]
    elsewhere = ca_cert(5, world.alice.id, site_a2.id)
    bobs = ca_cert(6, world.bob.id, world.site_b.id)
    with world.store.transaction() as tx:
        tx.add_site(site_a2)
        for ca in [*cas, elsewhere, bobs]:
            tx.add_ca_certificate(ca)
        with pytest.raises(AlreadyExists):
            tx.add_ca_certificate(cas[0])
    with world.store.transaction() as tx:
        assert tx.get_ca_certificate(world.alice.id, world.site_a.id, cas[1].id) == cas[1]
        assert tx.get_ca_certificate(world.bob.id, world.site_a.id, cas[1].id) is None
        assert tx.get_ca_certificate(world.alice.id, site_a2.id, cas[1].id) is None
        assert tx.list_ca_certificates(world.site_a.id, offset=0, limit=10) == (cas, 3)  # newest first
        assert tx.list_ca_certificates(world.site_a.id, offset=1, limit=1) == ([cas[1]], 3)
        assert tx.count_ca_certificates(world.alice.id) == 4  # all of the account's sites
        assert tx.count_ca_certificates(world.bob.id) == 1
        assert tx.list_all_ca_certificates() == sorted([*cas, elsewhere, bobs], key=lambda c: c.id)
    with pytest.raises(NotFound), world.store.transaction() as tx:
        tx.add_ca_certificate(ca_cert(9, world.alice.id, SiteId(4)))


def test_deleting_a_ca_removes_its_bindings(world: World) -> None:
    ca = ca_cert(1, world.alice.id, world.site_a.id)
    with world.store.transaction() as tx:
        tx.add_ca_certificate(ca)
        tx.set_binding(Binding(world.site_a.id, ca.id, ("a.example.com",)))
        tx.set_binding(Binding(world.site_a.id, world.alice_ca.id, ("b.example.com",)))
    with world.store.transaction() as tx:
        tx.delete_ca_certificate(ca.id)
        tx.delete_ca_certificate(ca.id)
    with world.store.transaction() as tx:
        assert tx.get_ca_certificate(world.alice.id, world.site_a.id, ca.id) is None
        assert tx.count_ca_certificates(world.alice.id) == 0
        assert tx.list_bindings() == [Binding(world.site_a.id, world.alice_ca.id, ("b.example.com",))]


def test_bindings_replace_and_clear(world: World) -> None:
    site_id, ca_id = world.site_a.id, world.alice_ca.id
    with world.store.transaction() as tx:
        assert tx.get_binding(site_id, ca_id) == Binding(site_id, ca_id, ())
        tx.set_binding(Binding(site_id, ca_id, ("www.example.com", "*.example.com", "api.example.com")))
        tx.set_binding(Binding(world.site_b.id, world.bob_ca.id, ("api.other.org",)))
    with world.store.transaction() as tx:
        # The tuple comes back in the order it was stored.
        assert tx.get_binding(site_id, ca_id).hostnames == (
            "www.example.com",
            "*.example.com",
            "api.example.com",
        )
        tx.set_binding(Binding(site_id, ca_id, ("api.example.com", "new.example.com")))
    with world.store.transaction() as tx:
        assert tx.get_binding(site_id, ca_id).hostnames == ("api.example.com", "new.example.com")
        assert tx.list_bindings(world.site_b.id) == [
            Binding(world.site_b.id, world.bob_ca.id, ("api.other.org",))
        ]
        assert tx.list_bindings() == sorted(
            [
                Binding(site_id, ca_id, ("api.example.com", "new.example.com")),
                Binding(world.site_b.id, world.bob_ca.id, ("api.other.org",)),
            ],
            key=lambda b: (b.site_id, b.ca_id),
        )
        tx.set_binding(Binding(site_id, ca_id, ()))
        tx.set_binding(Binding(SiteId(404), ca_id, ()))  # clearing what is not there: no-op
    with world.store.transaction() as tx:
        assert tx.get_binding(site_id, ca_id) == Binding(site_id, ca_id, ())
        assert tx.list_bindings(site_id) == []


def test_binding_refuses_duplicates_and_unknown_sites(world: World) -> None:
    with pytest.raises(InvalidArgument), world.store.transaction() as tx:
        tx.set_binding(Binding(world.site_a.id, world.alice_ca.id, ("a.example.com", "a.example.com")))
    with pytest.raises(NotFound), world.store.transaction() as tx:
        tx.set_binding(Binding(SiteId(404), world.alice_ca.id, ("a.example.com",)))
    with world.store.transaction() as tx:
        assert tx.list_bindings() == []


# -- rules ---------------------------------------------------------------------------------------


def test_waf_rules(world: World) -> None:
    a = [waf_rule(i, world.site_a.id, position=p) for i, p in enumerate([3, 1, 2, 1])]
    managed = waf_rule(8, world.site_a.id, position=0, phase="http_managed")
    b = waf_rule(9, world.site_b.id, position=1)
    with world.store.transaction() as tx:
        for r in [*a, managed, b]:
            tx.add_waf_rule(r)
        with pytest.raises(AlreadyExists):
            tx.add_waf_rule(a[0])
    in_order = [a[1], a[3], a[2], a[0]]
    with world.store.transaction() as tx:
        assert tx.get_waf_rule(world.site_a.id, a[0].id) == a[0]
        assert tx.get_waf_rule(world.site_b.id, a[0].id) is None
        assert tx.list_waf_rules(world.site_a.id, phase="http_custom", offset=0, limit=10) == (in_order, 4)
        assert tx.list_waf_rules(world.site_a.id, phase=None, offset=0, limit=2) == ([managed, a[1]], 5)
        assert tx.list_waf_rules(world.site_a.id, phase="http_custom", offset=3, limit=2) == ([a[0]], 4)
        assert tx.count_waf_rules(world.site_a.id) == 5
        assert tx.list_all_waf_rules() == [managed, *in_order, b]
        moved = replace(
            a[0], position=0, expression="false", status=RuleStatus.OFF, action=RuleAction.MONITOR
        )
        tx.update_waf_rule(moved)
        with pytest.raises(NotFound):
            tx.update_waf_rule(waf_rule(50, world.site_a.id, position=1))
    with world.store.transaction() as tx:
        assert tx.get_waf_rule(world.site_a.id, a[0].id) == moved
        assert tx.list_waf_rules(world.site_a.id, phase="http_custom", offset=0, limit=1) == ([moved], 4)
        tx.delete_waf_rule(a[0].id)
        tx.delete_waf_rule(a[0].id)
    with world.store.transaction() as tx:
        assert tx.count_waf_rules(world.site_a.id) == 4
    with pytest.raises(NotFound), world.store.transaction() as tx:
        tx.add_waf_rule(waf_rule(60, SiteId(404), position=1))


def test_origin_rules(world: World) -> None:
    a = [origin_rule(i, world.site_a.id, sequence=s) for i, s in enumerate([2, 1, 1])]
    b = origin_rule(9, world.site_b.id, sequence=0)
    sparse = replace(origin_rule(10, world.site_b.id, sequence=5), origin_scheme=None, origin_https_port=None)
    with world.store.transaction() as tx:
        for r in [*a, b, sparse]:
            tx.add_origin_rule(r)
        with pytest.raises(AlreadyExists):
            tx.add_origin_rule(a[0])
    with world.store.transaction() as tx:
        assert tx.get_origin_rule(world.site_a.id, a[0].id) == a[0]
        assert tx.get_origin_rule(world.site_b.id, a[0].id) is None
        assert tx.get_origin_rule(world.site_b.id, sparse.id) == sparse
        assert tx.list_origin_rules(world.site_a.id) == [a[1], a[2], a[0]]
        assert tx.list_all_origin_rules() == [a[1], a[2], a[0], b, sparse]
        tx.delete_origin_rule(a[1].id)
        tx.delete_origin_rule(a[1].id)
    with world.store.transaction() as tx:
        assert tx.list_origin_rules(world.site_a.id) == [a[2], a[0]]
    with pytest.raises(NotFound), world.store.transaction() as tx:
        tx.add_origin_rule(origin_rule(60, SiteId(404), sequence=1))


# -- edge certificates ---------------------------------------------------------------------------


def test_edge_certificates(world: World) -> None:
    first = edge_cert(world.site_a.id, "www.example.com")
    other = edge_cert(world.site_b.id, "api.other.org")
    with world.store.transaction() as tx:
        tx.put_edge_certificate(first)
        tx.put_edge_certificate(other)
    renewed = replace(first, chain_pem="RENEWED\n", sealed_key=b"\x01new", uploaded=True, not_after=at(9e6))
    with world.store.transaction() as tx:
        assert tx.get_edge_certificate("www.example.com") == first
        assert tx.get_edge_certificate("nope.example.com") is None
        tx.put_edge_certificate(renewed)  # put replaces
    with world.store.transaction() as tx:
        assert tx.list_edge_certificates() == [other, renewed]
        tx.delete_edge_certificate("www.example.com")
        tx.delete_edge_certificate("www.example.com")
    with world.store.transaction() as tx:
        assert tx.list_edge_certificates() == [other]
    with pytest.raises(NotFound), world.store.transaction() as tx:
        tx.put_edge_certificate(edge_cert(SiteId(404), "x.example.com"))


# -- time ----------------------------------------------------------------------------------------


def test_times_come_back_as_the_same_instant_in_utc(world: World) -> None:
    plus_eight = dt.timezone(dt.timedelta(hours=8))
    local = dt.datetime(2026, 11, 29, 4, 30, 15, 123456, tzinfo=plus_eight)
    cert = replace(client_cert(1, world.alice.id, world.site_a.id, world.alice_ca.id), created_at=local)
    with world.store.transaction() as tx:
        tx.add_client_certificate(cert)
    with world.store.transaction() as tx:
        got = tx.get_client_certificate(world.alice.id, world.site_a.id, cert.id)
    assert got is not None
    assert got.created_at == local
    assert got.created_at.utcoffset() == dt.timedelta(0)
    assert got.created_at.isoformat() == "2026-11-28T20:30:15.123456+00:00"


# -- transactions and the configuration version --------------------------------------------------


def test_an_exception_rolls_everything_back(world: World) -> None:
    before = world.store.current_version()
    with pytest.raises(RuntimeError, match="boom"), world.store.transaction() as tx:
        tx.add_account(account(7))
        tx.add_site(site(7, world.alice.id, "rolled.example"))
        tx.add_record(record(7, world.site_a.id, "www.example.com"))
        tx.add_client_certificate(client_cert(7, world.alice.id, world.site_a.id, world.alice_ca.id))
        tx.add_revoked_serial(RevokedSerial(world.alice_ca.id, "07", T0, T0))
        tx.set_binding(Binding(world.site_a.id, world.alice_ca.id, ("www.example.com",)))
        tx.set_account_plan(world.alice.id, Plan(sites_limit=1))
        tx.put_edge_certificate(edge_cert(world.site_a.id, "www.example.com"))
        tx.delete_site(world.site_b.id)
        assert tx.claim_nonce("n-1", now=T0, expires_at=at(60))
        raise RuntimeError("boom")
    assert world.store.current_version() == before
    with world.store.transaction() as tx:
        assert tx.get_account(account(7).id) is None
        assert tx.get_site_by_name("rolled.example") is None
        assert tx.get_record_by_name("www.example.com") is None
        assert tx.list_client_certificates(world.site_a.id, offset=0, limit=10) == ([], 0)
        assert tx.list_revoked_serials() == []
        assert tx.list_bindings() == []
        assert tx.get_account(world.alice.id) == world.alice
        assert tx.list_edge_certificates() == []
        assert tx.list_all_sites() == [world.site_a, world.site_b]
        assert tx.claim_nonce("n-1", now=T0, expires_at=at(60))  # the claim was rolled back too


def test_a_failed_add_inside_a_transaction_rolls_back_with_it(world: World) -> None:
    with pytest.raises(AlreadyExists), world.store.transaction() as tx:
        tx.add_site(site(7, world.alice.id, "kept-out.example"))
        tx.add_account(world.bob)
    with world.store.transaction() as tx:
        assert tx.get_site_by_name("kept-out.example") is None


def test_the_version_bumps_once_per_dirty_commit(world: World) -> None:
    store = world.store
    v0 = store.current_version()
    assert v0 == 1  # the world fixture committed once
    with store.transaction() as tx:
        assert tx.config_version() == v0
        tx.add_record(record(1, world.site_a.id, "a.example.com"))
        assert tx.config_version() == v0 + 1  # what this commit will publish
        tx.add_record(record(2, world.site_a.id, "b.example.com"))
        tx.delete_record(record(2, world.site_a.id, "b.example.com").id)
        assert tx.config_version() == v0 + 1
        assert store.current_version() == v0  # not yet committed
    assert store.current_version() == v0 + 1
    with store.transaction() as tx:  # read-only
        tx.list_all_sites()
        tx.get_account(world.alice.id)
    assert store.current_version() == v0 + 1
    with store.transaction() as tx:  # nonces only
        assert tx.claim_nonce("n-1", now=T0, expires_at=at(60))
        assert tx.config_version() == v0 + 1
    assert store.current_version() == v0 + 1
    with pytest.raises(RuntimeError), store.transaction() as tx:  # dirty but rolled back
        tx.delete_record(record(1, world.site_a.id, "a.example.com").id)
        raise RuntimeError
    assert store.current_version() == v0 + 1
    with store.transaction() as tx:  # a mutating call marks dirty even when it changes nothing
        tx.delete_edge_certificate("not-there.example.com")
    assert store.current_version() == v0 + 2


@pytest.mark.parametrize(
    "mutate",
    [
        lambda tx, w: tx.add_authority(authority(9, w.alice.id)),
        lambda tx, w: tx.add_account(account(9)),
        lambda tx, w: tx.set_account_plan(w.alice.id, Plan(name="x")),
        lambda tx, w: tx.add_access_key(AccessKey("LTAI9", w.alice.id, b"s", T0)),
        lambda tx, w: tx.add_site(site(9, w.alice.id, "nine.example")),
        lambda tx, w: tx.delete_site(w.site_b.id),
        lambda tx, w: tx.add_record(record(9, w.site_a.id, "n.example.com")),
        lambda tx, w: tx.delete_record(RecordId(1)),
        lambda tx, w: tx.add_client_certificate(client_cert(9, w.alice.id, w.site_a.id, w.alice_ca.id)),
        lambda tx, w: tx.delete_client_certificate(CertificateId("0" * 32)),
        lambda tx, w: tx.add_revoked_serial(RevokedSerial(w.alice_ca.id, "09", T0, T0)),
        lambda tx, w: tx.remove_revoked_serial(w.alice_ca.id, "09"),
        lambda tx, w: tx.add_ca_certificate(ca_cert(9, w.alice.id, w.site_a.id)),
        lambda tx, w: tx.delete_ca_certificate(CACertificateId("0" * 32)),
        lambda tx, w: tx.set_binding(Binding(w.site_a.id, w.alice_ca.id, ("a.example.com",))),
        lambda tx, w: tx.add_waf_rule(waf_rule(9, w.site_a.id, position=1)),
        lambda tx, w: tx.delete_waf_rule(RuleId(1)),
        lambda tx, w: tx.add_origin_rule(origin_rule(9, w.site_a.id, sequence=1)),
        lambda tx, w: tx.delete_origin_rule(RuleId(1)),
        lambda tx, w: tx.put_edge_certificate(edge_cert(w.site_a.id, "a.example.com")),
        lambda tx, w: tx.delete_edge_certificate("a.example.com"),
    ],
)
def test_every_mutating_call_bumps_the_version(
    world: World, mutate: Callable[[Transaction, World], None]
) -> None:
    before = world.store.current_version()
    with world.store.transaction() as tx:
        mutate(tx, world)
    assert world.store.current_version() == before + 1


def test_update_calls_bump_the_version(world: World) -> None:
    cert = client_cert(1, world.alice.id, world.site_a.id, world.alice_ca.id)
    rule = waf_rule(1, world.site_a.id, position=1)
    with world.store.transaction() as tx:
        tx.add_client_certificate(cert)
        tx.add_waf_rule(rule)
    before = world.store.current_version()
    with world.store.transaction() as tx:
        tx.update_client_certificate(replace(cert, status=CertificateStatus.REVOKED))
    with world.store.transaction() as tx:
        tx.update_waf_rule(replace(rule, position=2))
    assert world.store.current_version() == before + 2


def test_nonces_refuse_replay_and_forget_expired_ones(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.claim_nonce("n-1", now=at(0), expires_at=at(60))
        assert not tx.claim_nonce("n-1", now=at(1), expires_at=at(61))  # replay in the same unit
        assert tx.claim_nonce("n-2", now=at(1), expires_at=at(10))
    with store.transaction() as tx:
        assert not tx.claim_nonce("n-2", now=at(10), expires_at=at(70))  # still remembered at expiry
    with store.transaction() as tx:
        assert not tx.claim_nonce("n-1", now=at(60), expires_at=at(120))
    with store.transaction() as tx:
        assert tx.claim_nonce("n-2", now=at(11), expires_at=at(71))  # expired before now: forgotten
        assert tx.claim_nonce("n-1", now=at(61), expires_at=at(121))
    with store.transaction() as tx:
        assert not tx.claim_nonce("n-2", now=at(12), expires_at=at(72))
    assert store.current_version() == 0


def test_many_nonces_expire_together(store: Store) -> None:
    with store.transaction() as tx:
        for i in range(50):
            assert tx.claim_nonce(f"n-{i}", now=at(0), expires_at=at(i))
    with store.transaction() as tx:
        assert [tx.claim_nonce(f"n-{i}", now=at(25), expires_at=at(100)) for i in range(50)] == [
            i < 25 for i in range(50)
        ]


def test_delete_site_cascades_but_keeps_revocations(world: World) -> None:
    a = world.site_a
    cert = client_cert(1, world.alice.id, a.id, world.alice_ca.id)
    ca = ca_cert(1, world.alice.id, a.id)
    revoked = RevokedSerial(world.alice_ca.id, cert.cert.serial_hex, T0, at(1000))
    with world.store.transaction() as tx:
        tx.add_record(record(1, a.id, "www.example.com"))
        tx.add_client_certificate(cert)
        tx.add_revoked_serial(revoked)
        tx.add_ca_certificate(ca)
        tx.set_binding(Binding(a.id, ca.id, ("www.example.com",)))
        tx.set_binding(Binding(a.id, world.alice_ca.id, ("*.example.com",)))
        tx.add_waf_rule(waf_rule(1, a.id, position=1))
        tx.add_origin_rule(origin_rule(1, a.id, sequence=1))
        tx.put_edge_certificate(edge_cert(a.id, "www.example.com"))
        # bob's site, untouched by the delete
        tx.add_record(record(2, world.site_b.id, "api.other.org"))
        tx.add_waf_rule(waf_rule(2, world.site_b.id, position=1))
        tx.put_edge_certificate(edge_cert(world.site_b.id, "api.other.org"))
    with world.store.transaction() as tx:
        tx.delete_site(a.id)
        tx.delete_site(SiteId(404))  # not there: no-op
    with world.store.transaction() as tx:
        assert tx.get_site(world.alice.id, a.id) is None
        assert tx.get_site_by_name(a.name) is None
        assert tx.get_record_by_name("www.example.com") is None
        assert tx.list_records(a.id, name=None, match="exact", offset=0, limit=10) == ([], 0)
        assert tx.get_client_certificate(world.alice.id, a.id, cert.id) is None
        assert tx.list_client_certificates(a.id, offset=0, limit=10) == ([], 0)
        assert tx.list_ca_certificates(a.id, offset=0, limit=10) == ([], 0)
        assert tx.count_ca_certificates(world.alice.id) == 0
        assert tx.list_bindings(a.id) == []
        assert tx.list_waf_rules(a.id, phase=None, offset=0, limit=10) == ([], 0)
        assert tx.list_origin_rules(a.id) == []
        assert tx.get_edge_certificate("www.example.com") is None
        # kept: the revocation (it belongs to the account's authority), the authority, the account
        assert tx.list_revoked_serials() == [revoked]
        assert tx.get_managed_authority(world.alice.id) == world.alice_ca
        assert tx.get_account(world.alice.id) == world.alice
        # and the other site is whole
        assert tx.list_all_sites() == [world.site_b]
        assert [r.name for r in tx.list_all_records()] == ["api.other.org"]
        assert tx.count_waf_rules(world.site_b.id) == 1
        assert [c.hostname for c in tx.list_edge_certificates()] == ["api.other.org"]
    # the name is free again
    with world.store.transaction() as tx:
        tx.add_site(replace(a, id=SiteId(a.id + 1000)))
        tx.add_record(record(1, SiteId(a.id + 1000), "www.example.com"))


def test_delete_site_removes_every_certificate_of_a_big_site(world: World) -> None:
    with world.store.transaction() as tx:
        for i in range(300):
            tx.add_client_certificate(
                client_cert(i, world.alice.id, world.site_a.id, world.alice_ca.id, created=i)
            )
    with world.store.transaction() as tx:
        tx.delete_site(world.site_a.id)
    with world.store.transaction() as tx:
        assert tx.list_client_certificates(world.site_a.id, offset=0, limit=1) == ([], 0)


# -- misuse --------------------------------------------------------------------------------------


def test_a_transaction_cannot_be_used_after_its_block(store: Store) -> None:
    with store.transaction() as tx:
        pass
    with pytest.raises(RuntimeError):
        tx.list_accounts()
    with pytest.raises(RuntimeError):
        tx.add_account(account(1))
    with store.transaction() as fresh:
        assert fresh.list_accounts() == []


def test_nested_transactions_are_refused_instead_of_deadlocking(store: Store) -> None:
    with store.transaction() as outer:
        with pytest.raises(RuntimeError), store.transaction():
            pass
        outer.add_account(account(1))
    with store.transaction() as tx:
        assert tx.list_accounts() == [account(1)]


def test_a_closed_store_refuses_new_transactions(store_url: str) -> None:
    store = open_store(store_url)
    store.close()
    with pytest.raises(RuntimeError), store.transaction():
        pass


# -- concurrency ---------------------------------------------------------------------------------


def test_concurrent_writers_serialise_and_the_version_stays_gap_free(world: World) -> None:
    """Writers in threads: every commit gets its own version, none is lost or skipped, and a
    read-check-write (a counter kept in a plan) never loses an update."""
    store = world.store
    start = store.current_version()
    threads, per_thread = 6, 8
    seen: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                with store.transaction() as tx:
                    acct = tx.get_account(world.alice.id)
                    assert acct is not None
                    tx.set_account_plan(acct.id, replace(acct.plan, sites_limit=acct.plan.sites_limit + 1))
                    tx.add_record(record(n * 1000 + i, world.site_a.id, f"h{n}-{i}.example.com"))
                    version = tx.config_version()
                with lock:
                    seen.append(version)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert not errors, errors
    total = threads * per_thread
    assert store.current_version() == start + total
    assert sorted(seen) == list(range(start + 1, start + total + 1))
    with store.transaction() as tx:
        acct = tx.get_account(world.alice.id)
        assert acct is not None and acct.plan.sites_limit == Plan().sites_limit + total
        assert tx.list_records(world.site_a.id, name=None, match="exact", offset=0, limit=1)[1] == total


def test_readers_of_the_version_never_see_a_half_done_transaction(world: World) -> None:
    store = world.store
    start = store.current_version()
    inside = threading.Event()
    release = threading.Event()

    def writer() -> None:
        with store.transaction() as tx:
            tx.add_record(record(1, world.site_a.id, "slow.example.com"))
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    assert inside.wait(10)
    assert store.current_version() == start  # does not wait for the writer, does not see it
    release.set()
    thread.join(10)
    assert store.current_version() == start + 1


def test_models_are_returned_as_equal_values(world: World) -> None:
    """Whatever the backend, what comes out is the same frozen dataclass that went in."""
    with world.store.transaction() as tx:
        got = tx.get_account(world.alice.id)
    assert got is not None
    assert dataclasses.asdict(got) == dataclasses.asdict(world.alice)
    assert isinstance(got.id, str) and isinstance(got.plan, Plan)


# -- read-only units (an extension beyond the ports) ---------------------------------------------


def test_a_read_transaction_sees_the_last_commit_and_refuses_changes(world: World) -> None:
    with world.store.read_transaction() as ro:
        assert ro.config_version() == world.store.current_version()
        assert ro.list_all_sites() == [world.site_a, world.site_b]
        with pytest.raises(ReadOnlyTransaction):
            ro.add_record(record(1, world.site_a.id, "www.example.com"))
        with pytest.raises(ReadOnlyTransaction):
            ro.claim_nonce("n", now=T0, expires_at=at(60))
        with pytest.raises(ReadOnlyTransaction):
            ro.delete_site(world.site_a.id)
        assert ro.list_all_sites() == [world.site_a, world.site_b]
    with pytest.raises(RuntimeError):
        ro.list_all_sites()
    before = world.store.current_version()
    with world.store.transaction() as tx:  # the pooled connection is writable again
        tx.add_record(record(1, world.site_a.id, "www.example.com"))
    assert world.store.current_version() == before + 1


def test_a_sql_read_transaction_does_not_wait_for_a_writer(sql_world: World) -> None:
    world = sql_world
    inside, release = threading.Event(), threading.Event()

    def writer() -> None:
        with world.store.transaction() as tx:
            tx.add_record(record(1, world.site_a.id, "pending.example.com"))
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert inside.wait(10)
        with world.store.read_transaction() as ro:
            assert ro.get_record_by_name("pending.example.com") is None  # not committed yet
            version = ro.config_version()
    finally:
        release.set()
        thread.join(10)
    assert version == world.store.current_version() - 1
    with world.store.read_transaction() as ro:
        assert ro.get_record_by_name("pending.example.com") is not None
        assert ro.config_version() == world.store.current_version()
