"""`centralino` command line: serve, demo, migrate, simulate, check-config, intent."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import signal
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from centralino.logs import configure_logging
from centralino.settings import Settings, SettingsError, load_settings

log = logging.getLogger("centralino")


class MissingDependencyError(RuntimeError):
    """`serve` was started without a setting it cannot run without."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="centralino", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML settings file (or CENTRALINO_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="production server: needs PostgreSQL and Redis URLs")
    demo = sub.add_parser("demo", help="server + embedded storage + demo ERP/CRM + simulated calls")
    demo.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    demo.add_argument("--calls-per-minute", type=float, default=None)
    sub.add_parser("migrate", help="apply pending database migrations and exit")
    sub.add_parser("check-config", help="validate settings and print them (secrets redacted)")
    sim = sub.add_parser("simulate", help="drive calls at a running server through FastAGI")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=4573)
    sim.add_argument("--calls", type=int, default=100)
    sim.add_argument("--concurrency", type=int, default=20)
    intent = sub.add_parser("intent", help="the intent model (ivr/intent/)")
    intent_sub = intent.add_subparsers(dest="intent_command", required=True)
    intent_sub.add_parser(
        "classify",
        help="utterances on stdin, one per line; one JSON object per line on stdout",
    )
    return parser


def _require_storage(settings: Settings) -> None:
    missing = []
    if settings.database.url is None:
        missing.append("database.url (set CENTRALINO_DATABASE_URL)")
    if settings.redis.url is None:
        missing.append("redis.url (set CENTRALINO_REDIS_URL)")
    if settings.ami.enabled and settings.ami.secret is None:
        missing.append("ami.secret (set CENTRALINO_AMI_SECRET, or ami.enabled = false)")
    if missing:
        raise MissingDependencyError(
            "centralino serve cannot start; missing: " + "; ".join(missing)
        )


def _run(main: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop (what production uses), stopping cleanly on SIGINT/SIGTERM."""
    import uvloop

    try:
        return uvloop.run(main)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(
            f"centralino: {exc.strerror}: another process listens on a configured port "
            "(is another Centralino running?). Change it with CENTRALINO_SERVER_AGI_PORT, "
            "CENTRALINO_SERVER_AUDIOSOCKET_PORT or CENTRALINO_SERVER_HTTP_PORT.",
            file=sys.stderr,
        )
        return 2


async def _until_signalled(work: Coroutine[Any, Any, int]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if not task.done():
        log.info("stopping (signal received)")
        task.cancel()
    waiter.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"centralino: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.logging.level, json_lines=settings.logging.json_lines)

    if args.command == "check-config":
        print(json.dumps(settings.redacted(), indent=2, default=str))
        return 0
    if args.command == "serve":
        try:
            _require_storage(settings)
        except MissingDependencyError as exc:
            print(f"centralino: {exc}", file=sys.stderr)
            return 2
        from centralino.app import serve

        return _run(_until_signalled(serve(settings)))
    if args.command == "demo":
        from centralino.demo.world import run_demo

        return _run(
            _until_signalled(
                run_demo(
                    settings,
                    duration_s=args.duration,
                    calls_per_minute=args.calls_per_minute,
                )
            )
        )
    if args.command == "migrate":
        if settings.database.url is None:
            print(
                "centralino: migrate needs database.url (CENTRALINO_DATABASE_URL)", file=sys.stderr
            )
            return 2
        from centralino.app import migrate

        return _run(migrate(settings))
    if args.command == "simulate":
        from centralino.simulator.load import run_load

        return _run(
            run_load(host=args.host, port=args.port, calls=args.calls, concurrency=args.concurrency)
        )
    if args.command == "intent":
        from centralino.intent_cli import classify_stream
        from ivr.intent import IntentModel

        classify_stream(IntentModel.train(), sys.stdin.buffer, sys.stdout)
        return 0
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
