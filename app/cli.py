"""``pixelgate serve [--host H] [--port P] [--config FILE]``: the one entry point of the contract."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Sequence

import uvicorn

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

    from app.http_protocol import header_deadline_protocol
    from app.main import create_app
    from app.settings import Settings

    try:
        settings = Settings()
    except ValueError as exc:
        print(f"pixelgate: invalid configuration: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    if not settings.api_keys and not settings.allow_open and not is_loopback(args.host):
        print(  # noqa: T201
            f"pixelgate: refusing to serve on {args.host} without API keys; set PIXELGATE_API_KEYS "
            "(or api_keys in the config), or PIXELGATE_ALLOW_OPEN=1 to serve openly",
            file=sys.stderr,
        )
        return 2
    try:
        app = create_app(settings)
    except ValueError as exc:
        print(f"pixelgate: invalid configuration: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    # One process: per-key limits, the admission queue and the image store's state live in it.
    # uvloop and httptools (uvicorn[standard]) named explicitly: a missing one fails at start
    # instead of silently falling back to the slower asyncio loop and h11 parser. The httptools
    # protocol is ours for its request-head deadline (app/http_protocol.py).
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        proxy_headers=False,
        # SIGTERM: stop accepting, let requests in flight finish this long, then cancel the rest.
        timeout_graceful_shutdown=settings.drain_timeout_seconds,
        loop="uvloop",
        http=header_deadline_protocol(settings.header_timeout_seconds),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
