"""``pixelgate serve [--host H] [--port P] [--config FILE]``: the one entry point of the contract."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import sys
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn

from core.errors import ConfigError

if TYPE_CHECKING:
    from app.shutdown import StopNotice

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    from app.admin import cli as operations

    parser = argparse.ArgumentParser(prog="pixelgate", description="OpenAI-compatible image gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--config", help="YAML settings file (same keys as the environment)")
    serve.add_argument("--log-level", default="info")
    operations.add_commands(commands)
    args = parser.parse_args(argv)

    if args.config:
        os.environ["PIXELGATE_CONFIG"] = args.config
    if args.command != "serve":
        return operations.run(args)

    from app.allocator import fix_thresholds, start_trimming
    from app.collector import tune_collector
    from app.db import migrate_database
    from app.http_protocol import guarded_protocol
    from app.logs import log_config
    from app.main import create_app, stop_notice_of
    from app.settings import Settings

    # A configuration mistake is one line on stderr and exit status 2, never a traceback.
    try:
        settings = Settings.load()
    except ConfigError as exc:
        print(f"pixelgate: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    # With an admin key the gateway is closed until managed keys are made (see app.main's open_access).
    keyed = bool(settings.api_keys) or settings.admin_key is not None
    if not keyed and not settings.allow_open and not is_loopback(args.host):
        print(  # noqa: T201
            f"pixelgate: refusing to serve on {args.host} without API keys; set PIXELGATE_API_KEYS "
            "(or api_keys in the config) or PIXELGATE_ADMIN_KEY, or PIXELGATE_ALLOW_OPEN=1 to serve openly",
            file=sys.stderr,
        )
        return 2
    fix_thresholds()  # glibc's heap neither shrunk nor regrown per request (app.allocator)
    start_trimming()  # a burst of edits' memory goes back to the system (app.allocator)
    try:
        app = create_app(settings)
    except ConfigError as exc:
        print(f"pixelgate: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    # The database is reached (and migrated) before the server starts, so that one it cannot open is
    # one line naming it, not the traceback of a failed lifespan; the lifespan then finds it at head.
    try:
        asyncio.run(migrate_database(settings.database_url, settings.data_dir))
    except (RuntimeError, ValueError) as exc:
        print(f"pixelgate: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    # One process: per-key limits, the admission queue and the image store's state live in it.
    # uvloop and httptools (uvicorn[standard]) named explicitly: a missing one fails at start
    # instead of silently falling back to the slower asyncio loop and h11 parser. The httptools
    # protocol is ours for its bounds on the request head and on draining (app/http_protocol.py).
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        # PIXELGATE_LOG_FORMAT for every line; the gateway's own line per request replaces the access log.
        log_config=log_config(args.log_level, settings.log_format),
        access_log=False,
        proxy_headers=False,
        # SIGTERM: stop accepting, let requests in flight finish this long, then cancel the rest.
        timeout_graceful_shutdown=settings.drain_timeout_seconds,
        loop="uvloop",
        http=guarded_protocol(settings.header_timeout_seconds),
        timeout_keep_alive=settings.keepalive_timeout_seconds,
    )
    tune_collector()  # start-up's objects frozen out of every collection (app.collector)
    NotifyingServer(config, stop_notice_of(app)).run()
    return 0


class NotifyingServer(uvicorn.Server):
    """uvicorn's server that also tells the app when it is told to stop (SIGTERM, Ctrl-C), before the
    drain: the async-job runner then claims no new job while the requests in flight finish."""

    def __init__(self, config: uvicorn.Config, notice: StopNotice) -> None:
        super().__init__(config)
        self._notice = notice

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._notice.notify()
        super().handle_exit(sig, frame)


if __name__ == "__main__":
    sys.exit(main())
