"""Installation and account lifecycle: the edge CA, accounts with their managed CA, plan and
access keys, and resolving an access key for request signing."""

from __future__ import annotations

from dataclasses import dataclass, replace

from certgate.errors import AlreadyExists, InvalidArgument, NotFound, Unauthenticated
from certgate.ids import AccountId, CACertificateId
from certgate.model import AccessKey, Account, Authority, AuthorityKind, Plan
from certgate.pki.authority import CertificateAuthority, create_certificate_authority
from certgate.pki.keys import load_private_key_pem, private_key_to_pem
from certgate.pki.pem import certificate_to_pem, load_certificate
from certgate.services.context import ServiceContext

MANAGED_CA_DAYS = 3650 * 2
EDGE_CA_DAYS = 3650 * 2


def authority_key_context(authority_id: str) -> str:
    return f"authority:{authority_id}"


def access_key_context(key_id: str) -> str:
    return f"access-key:{key_id}"


def unseal_authority(ctx: ServiceContext, authority: Authority) -> CertificateAuthority:
    key_pem = ctx.sealer.unseal(authority.sealed_key, context=authority_key_context(authority.id))
    return CertificateAuthority(
        certificate=load_certificate(authority.certificate_pem),
        private_key=load_private_key_pem(key_pem),
    )


def _new_authority(
    ctx: ServiceContext, kind: AuthorityKind, account_id: AccountId | None, common_name: str, days: int
) -> Authority:
    now = ctx.clock.now()
    ca = create_certificate_authority(common_name, now=now, validity_days=days, organization="certgate")
    authority_id = CACertificateId(ctx.ids.hex_id())
    return Authority(
        id=authority_id,
        kind=kind,
        account_id=account_id,
        certificate_pem=certificate_to_pem(ca.certificate),
        sealed_key=ctx.sealer.seal(
            private_key_to_pem(ca.private_key).encode(), context=authority_key_context(authority_id)
        ),
        created_at=now,
    )


def ensure_edge_authority(ctx: ServiceContext) -> Authority:
    """The installation's CA for edge server certificates; created on first use (idempotent)."""
    with ctx.store.transaction() as tx:
        existing = tx.get_edge_authority()
        if existing is not None:
            return existing
        authority = _new_authority(ctx, AuthorityKind.EDGE, None, "certgate Edge CA", EDGE_CA_DAYS)
        tx.add_authority(authority)
        return authority


@dataclass(frozen=True, slots=True)
class NewAccount:
    account: Account
    access_key_id: str
    access_key_secret: str  # shown once, to whoever created the account
    managed_ca: Authority


def create_account(ctx: ServiceContext, name: str, plan: Plan | None = None) -> NewAccount:
    name = name.strip()
    if not name or len(name) > ctx.limits.name_max_chars:
        raise InvalidArgument("account name must be 1-128 characters", reason="account.name")
    now = ctx.clock.now()
    account = Account(
        id=AccountId(ctx.ids.hex_id()),
        name=name,
        instance_id=f"esa-site-{ctx.ids.hex_id()[:12]}",
        plan=plan or Plan(),
        created_at=now,
    )
    authority = _new_authority(
        ctx, AuthorityKind.MANAGED, account.id, f"certgate Managed CA {account.id[:8]}", MANAGED_CA_DAYS
    )
    key_id, secret, key = _new_access_key(ctx, account.id)
    with ctx.store.transaction() as tx:
        if tx.get_account_by_name(name) is not None:
            raise AlreadyExists(f"an account named {name!r} exists", reason="account.exists")
        tx.add_account(account)
        tx.add_authority(authority)
        tx.add_access_key(key)
    return NewAccount(account, key_id, secret, authority)


def _new_access_key(ctx: ServiceContext, account_id: AccountId) -> tuple[str, str, AccessKey]:
    key_id = "LTAI" + ctx.ids.hex_id()[:20]
    secret = ctx.ids.token(24)
    key = AccessKey(
        id=key_id,
        account_id=account_id,
        sealed_secret=ctx.sealer.seal(secret.encode(), context=access_key_context(key_id)),
        created_at=ctx.clock.now(),
    )
    return key_id, secret, key


def create_access_key(ctx: ServiceContext, account_id: AccountId) -> tuple[str, str]:
    key_id, secret, key = _new_access_key(ctx, account_id)
    with ctx.store.transaction() as tx:
        if tx.get_account(account_id) is None:
            raise NotFound(f"account {account_id} not found", reason="account.not_found")
        tx.add_access_key(key)
    return key_id, secret


def set_plan(ctx: ServiceContext, account_id: AccountId, **changes: int | str) -> Plan:
    with ctx.store.transaction() as tx:
        account = tx.get_account(account_id)
        if account is None:
            raise NotFound(f"account {account_id} not found", reason="account.not_found")
        plan = replace(account.plan, **changes)  # type: ignore[arg-type]
        tx.set_account_plan(account_id, plan)
        return plan


def get_account(ctx: ServiceContext, account_id: AccountId) -> Account:
    with ctx.store.read_transaction() as tx:
        account = tx.get_account(account_id)
    if account is None:
        raise NotFound(f"account {account_id} not found", reason="account.not_found")
    return account


def resolve_access_key(ctx: ServiceContext, key_id: str) -> tuple[Account, str]:
    """The account and plaintext secret of an enabled access key, for signature checks."""
    with ctx.store.read_transaction() as tx:
        key = tx.get_access_key(key_id)
        account = tx.get_account(key.account_id) if key is not None else None
    if key is None or account is None or not key.enabled:
        raise Unauthenticated("the access key does not exist", reason="auth.unknown_key")
    secret = ctx.sealer.unseal(key.sealed_secret, context=access_key_context(key.id)).decode()
    return account, secret
