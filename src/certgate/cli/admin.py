"""``certgate admin …``: operations on a data directory, no API involved.

Handlers import the storage stack lazily so that other commands start fast."""

from __future__ import annotations

import argparse
import json
from typing import Any

from certgate.ids import AccountId
from certgate.settings import ControlPlaneSettings


def _settings(args: argparse.Namespace) -> ControlPlaneSettings:
    return ControlPlaneSettings.from_env(args.data_dir, database_url=args.database_url)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="data directory (default: $CERTGATE_DATA_DIR or ./certgate-data)")
    p.add_argument("--database-url", help="override the database (default: SQLite in the data dir)")


def register(sub: Any) -> None:
    admin = sub.add_parser("admin", help="manage an installation's data directory")
    asub = admin.add_subparsers(dest="admin_command", required=True, metavar="ACTION")

    p = asub.add_parser("init", help="create the database, master key, edge CA and edge token (idempotent)")
    _common(p)
    p.set_defaults(handler=cmd_init)

    p = asub.add_parser("create-account", help="create an account with its managed CA and an access key")
    _common(p)
    p.add_argument("--name", required=True)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_create_account)

    p = asub.add_parser("create-access-key", help="add an access key to an account")
    _common(p)
    p.add_argument("--account-id", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_create_access_key)

    p = asub.add_parser("edge-ca", help="print the PEM of the installation's edge CA")
    _common(p)
    p.set_defaults(handler=cmd_edge_ca)

    p = asub.add_parser("edge-token", help="print the token edges use to pull snapshots")
    _common(p)
    p.set_defaults(handler=cmd_edge_token)


def cmd_init(args: argparse.Namespace) -> int:
    from certgate import bootstrap

    settings = _settings(args)
    ctx = bootstrap.initialize(settings)
    ctx.store.close()
    print(f"certgate data directory ready: {settings.data_dir}")
    return 0


def cmd_create_account(args: argparse.Namespace) -> int:
    from certgate import bootstrap
    from certgate.services import accounts

    ctx = bootstrap.initialize(_settings(args))
    try:
        new = accounts.create_account(ctx, args.name)
    finally:
        ctx.store.close()
    result = {
        "AccountId": new.account.id,
        "Name": new.account.name,
        "AccessKeyId": new.access_key_id,
        "AccessKeySecret": new.access_key_secret,
        "InstanceId": new.account.instance_id,
        "ManagedCaId": new.managed_ca.id,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
        print("The AccessKeySecret is shown only now; keep it somewhere safe.")
    return 0


def cmd_create_access_key(args: argparse.Namespace) -> int:
    from certgate import bootstrap
    from certgate.services import accounts

    ctx = bootstrap.initialize(_settings(args))
    try:
        key_id, secret = accounts.create_access_key(ctx, AccountId(args.account_id))
    finally:
        ctx.store.close()
    if args.json:
        print(json.dumps({"AccessKeyId": key_id, "AccessKeySecret": secret}))
    else:
        print(f"AccessKeyId: {key_id}\nAccessKeySecret: {secret}")
    return 0


def cmd_edge_ca(args: argparse.Namespace) -> int:
    from certgate import bootstrap
    from certgate.services import accounts

    ctx = bootstrap.initialize(_settings(args))
    try:
        authority = accounts.ensure_edge_authority(ctx)
    finally:
        ctx.store.close()
    print(authority.certificate_pem, end="")
    return 0


def cmd_edge_token(args: argparse.Namespace) -> int:
    from certgate import bootstrap

    settings = _settings(args)
    bootstrap.initialize(settings).store.close()
    print(bootstrap.ensure_edge_token(settings))
    return 0
