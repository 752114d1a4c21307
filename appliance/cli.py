"""The ``postyard`` command: serve, init, migrate, config, tenants, keys, render, parse-bounce,
doctor, backup."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from appliance.config import Config, ConfigError, describe, load_config
from appliance.context import AppContext
from appliance.logs import configure_logging
from appliance.provisioning import (
    AlreadyInitialized,
    InitResult,
    create_full_access_key,
    ensure_secret_key,
    initialize,
)
from appliance.store import migrate
from appliance.store.database import Database, StoreError
from appliance.store.store import Store

PARSE_BOUNCE_HELP = """\
Parse each FILE (a whole message as received: a DSN, a non-standard bounce,
an ARF complaint) and print one JSON object per file, one per line, in the
order given:

  {"file", "kind", "recipient", "status", "action", "diagnostic_code",
   "reporting_mta", "original_message_id"}

kind is hard, soft, block, complaint, delayed or not_a_bounce; a field the
message does not carry is null. For a report naming several recipients the
line describes the first failed one. This output is a stable contract for
scripts. A file that cannot be read gets a message on stderr instead of a
line, and the exit status is 1 (the other files are still printed)."""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    parser.add_argument("--data-dir", help="data directory (POSTYARD_DATA_DIR, default ./data)")
    parser.add_argument("--database-url", help="database URL (POSTYARD_DATABASE_URL)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="postyard", description="Postyard: self-hosted transactional email appliance"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the appliance (initialises an empty data dir)")
    _common(serve)
    serve.add_argument("--http-listen", help="host:port for the HTTP API and admin UI")
    serve.add_argument(
        "--capture",
        action="store_true",
        help="staging: keep every outbound message in the built-in mailbox, deliver nothing "
        "(POSTYARD_CAPTURE_MODE)",
    )

    init = sub.add_parser("init", help="create the data directory, first admin and API key")
    _common(init)
    init.add_argument("--json", action="store_true", help="print one JSON object")
    init.add_argument("--admin-email", default="admin@postyard.local")
    init.add_argument("--tenant-name", default="Default")

    mig = sub.add_parser("migrate", help="apply database migrations and print the revision")
    _common(mig)

    cfg = sub.add_parser("config", help="list every configuration key with its default")
    cfg.add_argument(
        "--toml", action="store_true", help="print an example TOML file documenting every key"
    )

    parse = sub.add_parser(
        "parse-bounce",
        help="parse bounce and complaint messages; print one JSON line per file",
        description=PARSE_BOUNCE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parse.add_argument("files", nargs="+", metavar="FILE", help="message file (- for stdin)")

    render = sub.add_parser("render", help="print the final, DKIM-signed MIME of a message")
    _common(render)
    render.add_argument("message_id", help="message id (msg_…)")

    tenant = sub.add_parser("tenant", help="manage tenants")
    tenant_sub = tenant.add_subparsers(dest="tenant_command", required=True)
    t_create = tenant_sub.add_parser("create", help="create a tenant and its first API key")
    _common(t_create)
    t_create.add_argument("name")
    t_list = tenant_sub.add_parser("list", help="list tenants")
    _common(t_list)

    doctor = sub.add_parser(
        "doctor", help="check store, ports, DNS, reverse DNS, certificate and webhooks"
    )
    _common(doctor)
    doctor.add_argument("--json", action="store_true", help="print one JSON object per check")

    backup = sub.add_parser("backup", help="copy the SQLite store to DEST while it runs")
    _common(backup)
    backup.add_argument("dest", type=Path, metavar="DEST", help="new file to write")

    key = sub.add_parser("api-key", help="manage API keys")
    key_sub = key.add_subparsers(dest="key_command", required=True)
    k_create = key_sub.add_parser("create", help="create a full-access API key for a tenant")
    _common(k_create)
    k_create.add_argument("--tenant", required=True, help="tenant id (tnt_…)")
    k_create.add_argument("--name", default="Created with postyard api-key create")
    return parser


def _config(args: argparse.Namespace) -> Config:
    overrides = {
        "data_dir": getattr(args, "data_dir", None),
        "database_url": getattr(args, "database_url", None),
        "http_listen": getattr(args, "http_listen", None),
        "capture_mode": True if getattr(args, "capture", False) else None,
    }
    return load_config(getattr(args, "config", None), overrides=overrides)


def _print_banner(result: InitResult | None, ctx: AppContext) -> None:
    out = sys.stderr
    if result is not None:
        print(
            "\n  Postyard is initialised. These credentials are shown only this once:\n"
            f"    Admin URL:      {result.admin_url}\n"
            f"    Admin login:    {result.admin_email}\n"
            f"    Admin password: {result.admin_password}\n"
            f"    Tenant:         {result.tenant_id}\n"
            f"    API key:        {result.api_key}\n",
            file=out,
        )
    if ctx.config.capture_mode:
        from appliance.runner import capture_notice

        print(f"  {capture_notice(ctx.config)}", file=out)
    print(
        f"  Postyard is running. API: {ctx.config.base_url}/v3/  Admin UI: {ctx.config.admin_url}\n"
        f"  Try: curl -H 'Authorization: Bearer <API key>' {ctx.config.base_url}/v3/scopes\n",
        file=out,
        flush=True,
    )


async def _with_store(config: Config) -> Store:
    return await Store.open(config.effective_database_url, pool_size=2)


async def _cmd_init(args: argparse.Namespace, config: Config) -> int:
    ensure_secret_key(config)
    store = await _with_store(config)
    try:
        result = await initialize(
            config, store, admin_email=args.admin_email, tenant_name=args.tenant_name
        )
    finally:
        store.close()
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        print(
            f"Initialised {config.data_dir}.\n"
            f"Admin URL:      {result.admin_url}\n"
            f"Admin login:    {result.admin_email}\n"
            f"Admin password: {result.admin_password}   (shown once)\n"
            f"Tenant:         {result.tenant_id}\n"
            f"API key:        {result.api_key}   (shown once)\n"
            "Start it with: postyard serve"
        )
    return 0


async def _cmd_tenant(args: argparse.Namespace, config: Config) -> int:
    store = await _with_store(config)
    try:
        if args.tenant_command == "create":
            tenant = await store.tenants.create(args.name)
            token = await create_full_access_key(store, tenant.id, "First key")
            print(json.dumps({"tenant_id": tenant.id, "name": tenant.name, "api_key": token}))
        else:
            for t in await store.tenants.all():
                print(json.dumps({"tenant_id": t.id, "name": t.name, "status": t.status}))
    finally:
        store.close()
    return 0


async def _cmd_api_key(args: argparse.Namespace, config: Config) -> int:
    store = await _with_store(config)
    try:
        if await store.tenants.get(args.tenant) is None:
            print(f"postyard: no tenant {args.tenant}; see `postyard tenant list`", file=sys.stderr)
            return 1
        token = await create_full_access_key(store, args.tenant, args.name)
        print(json.dumps({"tenant_id": args.tenant, "api_key": token}))
    finally:
        store.close()
    return 0


async def _cmd_render(args: argparse.Namespace, config: Config) -> int:
    import time

    from appliance.runner import open_appliance
    from appliance.services.composer import ComposeError, Composer

    async with open_appliance(config) as ctx:
        message = await ctx.store.messages.get(None, args.message_id)
        if message is None:
            print(f"postyard: no message {args.message_id}", file=sys.stderr)
            return 1
        try:
            composed = await Composer(ctx).compose(message, now=time.time())
        except ComposeError as exc:
            print(f"postyard: cannot render {message.id}: {exc}", file=sys.stderr)
            return 1
    print(f"# envelope from: {composed.envelope_from}", file=sys.stderr)
    print(f"# envelope to:   {composed.recipient}", file=sys.stderr)
    sys.stdout.buffer.write(composed.data)
    sys.stdout.flush()
    return 0


async def _cmd_doctor(args: argparse.Namespace, config: Config) -> int:
    from appliance.domain.doctor_checks import exit_code
    from appliance.services.doctor import run_checks

    checks = await run_checks(config)
    for check in checks:
        print(check.to_json() if args.json else check.line(), flush=True)
    return exit_code(checks)


def _cmd_backup(args: argparse.Namespace, config: Config) -> int:
    import sqlite3

    from appliance.store.backup import BackupNotSupported, backup_sqlite

    try:
        pages = backup_sqlite(config.effective_database_url, args.dest)
    except (BackupNotSupported, FileExistsError, sqlite3.Error) as exc:
        print(f"postyard backup: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"backup": str(args.dest), "pages": pages}))
    return 0


def _cmd_parse_bounce(files: Sequence[str]) -> int:
    from appliance.domain.bounce_report import parse_bounce

    failed = False
    for name in files:
        try:
            raw = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        except OSError as exc:
            print(
                f"postyard parse-bounce: cannot read {name}: {exc.strerror or exc}", file=sys.stderr
            )
            failed = True
            continue
        print(json.dumps(parse_bounce(raw).to_json_dict(name)), flush=True)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "parse-bounce":
        return _cmd_parse_bounce(args.files)
    if args.command == "config":
        if args.toml:
            from appliance.config_example import example_toml

            print(example_toml(), end="")
            return 0
        for row in describe():
            unit = f" ({row['unit']})" if row["unit"] else ""
            print(
                f"{row['key']}  [{row['env']}]  default: {row['default']!r}{unit}\n    {row['doc']}"
            )
        return 0
    try:
        config = _config(args)
        # serve logs to stdout; other commands keep stdout for their own output.
        configure_logging(config.log_level, None if args.command == "serve" else sys.stderr)
        if args.command == "serve":
            from appliance.runner import serve

            trio.run(lambda: serve(config, announce=_print_banner))
            return 0
        if args.command == "init":
            return trio.run(_cmd_init, args, config)
        if args.command == "migrate":
            db = Database(config.effective_database_url, pool_size=1)
            migrate.upgrade(db)
            print(json.dumps({"revision": migrate.current_revision(db)}))
            db.dispose()
            return 0
        if args.command == "render":
            return trio.run(_cmd_render, args, config)
        if args.command == "tenant":
            return trio.run(_cmd_tenant, args, config)
        if args.command == "api-key":
            return trio.run(_cmd_api_key, args, config)
        if args.command == "doctor":
            return trio.run(_cmd_doctor, args, config)
        if args.command == "backup":
            return _cmd_backup(args, config)
    except ConfigError as exc:
        print(f"postyard: configuration error: {exc}", file=sys.stderr)
        return 2
    except AlreadyInitialized as exc:
        print(f"postyard: {exc}", file=sys.stderr)
        return 1
    except (StoreError, FileNotFoundError) as exc:
        print(f"postyard: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
