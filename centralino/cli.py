"""`centralino` command line: serve, demo, migrate, simulate, check-config, user, token, intent."""

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
    _add_account_commands(sub)
    intent = sub.add_parser("intent", help="the intent model (ivr/intent/)")
    intent_sub = intent.add_subparsers(dest="intent_command", required=True)
    intent_sub.add_parser(
        "classify",
        help="utterances on stdin, one per line; one JSON object per line on stdout",
    )
    return parser


def _add_account_commands(sub: Any) -> None:
    user = sub.add_parser("user", help="accounts: add, passwd, disable")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create an account (password from stdin)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["agent", "supervisor", "admin"])
    add.add_argument("--agent-id", default=None, help="the ACD agent an account logs in as")
    add.add_argument("--team", action="append", default=[], help="a supervisor's team (repeat)")
    add.add_argument(
        "--password-stdin", action="store_true", required=True, help="read the password from stdin"
    )
    user_sub.add_parser("passwd", help="set a new password (from stdin)").add_argument("name")
    disable = user_sub.add_parser("disable", help="disable; revokes its sessions and tokens")
    disable.add_argument("name")
    token = sub.add_parser("token", help="API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="print a new API token for an account, once")
    create.add_argument("name")
    create.add_argument("--label", default="", help="what the token is for")


def _accounts(args: argparse.Namespace, settings: Settings) -> int:
    from centralino import accounts_cli as cli
    from centralino.access.errors import AccessError

    if settings.database.url is None:
        print(
            f"centralino: {args.command} needs database.url (CENTRALINO_DATABASE_URL)",
            file=sys.stderr,
        )
        return 2
    url = settings.database.url.get_secret_value()
    try:
        if args.command == "token":
            return _run(cli.token_create(url, username=args.name, label=args.label))
        if args.user_command == "add":
            password = cli.read_password(sys.stdin)
            return _run(
                cli.user_add(
                    url,
                    username=args.name,
                    role=args.role,
                    agent_id=args.agent_id,
                    teams=args.team,
                    password=password,
                )
            )
        if args.user_command == "passwd":
            password = cli.read_password(sys.stdin)
            return _run(cli.user_passwd(url, username=args.name, password=password))
        return _run(cli.user_disable(url, username=args.name))
    except AccessError as exc:
        print(f"centralino: {exc}", file=sys.stderr)
        return 2


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


def _flow_problems(settings: Settings) -> list[str]:
    """Every problem of the call flows (ivr/flow): documents, references, prompts on disk."""
    from centralino.flows import build_library
    from ivr.flow.errors import FlowError

    try:
        build_library(settings)
    except FlowError as exc:
        return list(exc.problems)
    return []


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
        flow_problems = _flow_problems(settings)
        if flow_problems:
            print("centralino: invalid flows:", file=sys.stderr)
            for problem in flow_problems:
                print(f"  {problem}", file=sys.stderr)
            return 2
        print(json.dumps(settings.redacted(), indent=2, default=str))
        return 0
    if args.command in ("serve", "demo") and (flow_problems := _flow_problems(settings)):
        # The start would fail on them anyway: say so plainly, before connecting anywhere.
        print("centralino: invalid flows:", file=sys.stderr)
        for problem in flow_problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
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
    if args.command in ("user", "token"):
        return _accounts(args, settings)
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
