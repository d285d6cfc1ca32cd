"""The operations commands: ``pixelgate migrate``, ``pixelgate keys create|list|revoke``, ``pixelgate usage``.

They use the same settings as ``pixelgate serve`` (environment, ``--config``), so they work on the
database a running gateway uses, with migrations applied first. ``keys create`` prints the new
key's record with its secret as JSON (``| jq -r .key``); ``keys list`` and ``usage`` print a table,
or JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import orjson
from pydantic import ValidationError

from app.db import Database, current_revision, head_revision
from app.keys import KeyRecord, KeyStore, NewKey
from app.settings import Settings
from app.usage import Grouping, UsageRow, parse_range, usage_totals
from app.usage.report import GROUP_FIELDS
from core.errors import ConfigError, GatewayError, InvalidRequestError

Command = Callable[[argparse.Namespace, Database], Awaitable[int]]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``migrate``, ``keys`` and ``usage`` to the ``pixelgate`` command's subcommands."""
    migrate = commands.add_parser("migrate", help="apply the database migrations and exit")
    _common(migrate, _migrate)

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="make a key; prints it once, as JSON")
    create.add_argument("--name", required=True)
    create.add_argument("--budget-usd", type=float)
    create.add_argument("--models", help="comma-separated models the key may use (default: all)")
    create.add_argument("--rpm", type=int, help="requests per minute for this key")
    create.add_argument("--expires-at", help="ISO 8601 time or Unix seconds")
    _common(create, _create)
    listing = keys.add_parser("list", help="list the keys")
    listing.add_argument("--json", action="store_true")
    _common(listing, _list)
    revoke = keys.add_parser("revoke", help="revoke a key (refused from then on)")
    revoke.add_argument("id")
    _common(revoke, _revoke)

    usage = commands.add_parser("usage", help="usage totals from the ledger")
    usage.add_argument(
        "--group-by",
        type=_grouping,
        default="day",
        help=f"one of {', '.join(GROUP_FIELDS)}, or a time bucket and one other field: day,model (default: day)",
    )
    usage.add_argument("--start", help="ISO 8601 date or time, or Unix seconds (inclusive)")
    usage.add_argument("--end", help="ISO 8601 date or time, or Unix seconds (exclusive; a date counts whole)")
    usage.add_argument("--json", action="store_true")
    _common(usage, _usage)


def _common(parser: argparse.ArgumentParser, command: Command) -> None:
    parser.add_argument("--config", help="YAML settings file (same keys as the environment)")
    parser.set_defaults(operation=command)


def run(args: argparse.Namespace) -> int:
    """Run the operations command ``args`` names (``args.operation``); the exit status."""
    try:
        settings = Settings.load()
        database = Database.from_setting(settings.database_url, settings.data_dir)
    except ConfigError as exc:
        return _fail(str(exc), status=2)
    except ValueError as exc:
        return _fail(f"invalid configuration: {exc}", status=2)
    operation: Command = args.operation
    return asyncio.run(_with_database(database, lambda: operation(args, database)))


async def _with_database(database: Database, work: Callable[[], Awaitable[int]]) -> int:
    try:
        await database.open()
    except RuntimeError as exc:
        return _fail(str(exc))
    try:
        return await work()
    except GatewayError as exc:
        return _fail(exc.message)
    finally:
        await database.aclose()


async def _migrate(args: argparse.Namespace, database: Database) -> int:
    revision = await current_revision(database.engine)
    print(f"{database.describe()}: at revision {revision} (this pixelgate's newest: {head_revision()})")  # noqa: T201
    return 0


async def _create(args: argparse.Namespace, database: Database) -> int:
    models = None if args.models is None else [part.strip() for part in args.models.split(",")]
    try:
        new = NewKey.model_validate(
            {
                "name": args.name,
                "budget_usd": args.budget_usd,
                "models": models,
                "rpm": args.rpm,
                "expires_at": args.expires_at,
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "-".join(str(part) for part in first["loc"][:1]).replace("_", "-")
        return _fail(f"--{field}: {first['msg'].removeprefix('Value error, ')}", status=2)
    created = await KeyStore(database).create(new)
    _write_json(created.model_dump(mode="json"))
    print("pixelgate: store the key now; it is not shown again", file=sys.stderr)  # noqa: T201
    return 0


async def _list(args: argparse.Namespace, database: Database) -> int:
    records = await KeyStore(database).list_all()
    if args.json:
        _write_json({"object": "list", "data": [record.model_dump(mode="json") for record in records]})
        return 0
    now = datetime.now(UTC).timestamp()
    _write_table(
        ("ID", "NAME", "PREFIX", "CREATED", "STATUS", "BUDGET_USD", "SPENT_USD", "MODELS", "RPM", "EXPIRES"),
        [
            (
                record.id,
                record.name,
                record.prefix,
                _when(record.created),
                _status(record, now),
                "-" if record.budget_usd is None else f"{record.budget_usd:g}",
                f"{record.spent_usd:g}",
                "all" if record.models is None else ",".join(record.models),
                "-" if record.rpm is None else str(record.rpm),
                "never" if record.expires_at is None else _when(record.expires_at),
            )
            for record in records
        ],
    )
    return 0


async def _revoke(args: argparse.Namespace, database: Database) -> int:
    record = await KeyStore(database).revoke(args.id)
    print(f"revoked {record.id} ({record.name})")  # noqa: T201
    return 0


async def _usage(args: argparse.Namespace, database: Database) -> int:
    grouping: Grouping = args.group_by
    rows = await usage_totals(database, grouping, parse_range(args.start, args.end))
    if args.json:
        _write_json({"object": "list", "group_by": grouping.name, "data": [row.wire(grouping) for row in rows]})
        return 0
    _write_table(
        (*(field.upper() for field in grouping.fields), "REQUESTS", "ERRORS", "IMAGES", "MEGAPIXELS", "COST_USD"),
        [(*(group or "-" for group in row.groups), *_totals(row)) for row in rows],
    )
    return 0


def _totals(row: UsageRow) -> tuple[int, int, int, float, float]:
    return row.requests, row.errors, row.images, row.megapixels, row.cost_usd


def _grouping(text: str) -> Grouping:
    try:
        return Grouping.parse(text)
    except InvalidRequestError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _status(record: KeyRecord, now: float) -> str:
    if record.revoked:
        return "revoked"
    return "expired" if record.expired(now) else "active"


def _when(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_json(body: object) -> None:
    sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")


def _write_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [list(header), *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    for row in cells:
        sys.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n")


def _fail(message: str, status: int = 1) -> int:
    print(f"pixelgate: {message}", file=sys.stderr)  # noqa: T201
    return status
