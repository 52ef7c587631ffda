#!/usr/bin/env python3
"""Process AGI: choose the static fallback queue for a caller when Centralino is unreachable.

Asterisk runs it locally from [centralino-fallback] in extensions.conf:
    AGI(fallback_queue.py,/etc/asterisk/centralino-fallback.conf)
It reads the AGI environment on stdin, decides the caller's priority class and sets
    FALLBACK_QUEUE  the queue to use (the dialplan jumps to the extension of that name)
    FALLBACK_PRIORITY  the class it decided (for the queue log / reports)

Priority: the channel variable CENTRALINO_PRIORITY if the app set one before failing; else the
caller number (agi_callerid) looked up in the file's [callers] (exact number, then the longest
`prefix*`); else none. The class maps to a queue in [queues]; [general] default_queue otherwise.

It must never make things worse: a missing or garbled file, an unknown class, a bad queue name,
a hangup or a closed pipe all leave or give the default queue, and the script always exits 0
(logging why on stderr) so the dialplan carries on.

Standalone by design: the standard library only, nothing of Centralino's. It speaks AGI itself
(the environment, then one command and one reply a line) instead of using pyst2, whose `AGI()`
writes the whole environment (the caller's number and name) and every command and reply to
stderr, which Asterisk shows on its console for every call; pyst2 need not be installed. What it
logs names no caller.
"""

from __future__ import annotations

import configparser
import re
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType
from typing import BinaryIO, TextIO

DEFAULT_CONFIG = "/etc/asterisk/centralino-fallback.conf"
# Used when the file cannot tell: must exist in queues.conf and [centralino-fallback-queues].
BUILTIN_DEFAULT_QUEUE = "fallback-standard"
# A queue or class name goes into a dialplan variable: letters, digits, - _ . only.
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# Asterisk's config files are small; a huge file is not ours.
MAX_CONFIG_BYTES = 1 << 20
# Asterisk's AGI lines are short (a variable's value is at most a few KiB); a longer one is not
# AGI. Asterisk 22 sends about 25 environment lines, plus agi_arg_N for our one argument.
MAX_LINE_BYTES = 1 << 16
MAX_ENV_LINES = 256


@dataclass(frozen=True, slots=True)
class FallbackRules:
    default_queue: str
    queues: Mapping[str, str]  # priority class -> queue
    callers: Mapping[str, str]  # number, or prefix ending in '*' -> priority class


def load_rules(path: str, *, log: TextIO) -> FallbackRules:
    """Read the rules file; any problem is logged and yields the built-in default."""
    parser = configparser.ConfigParser(
        delimiters=("=",),
        comment_prefixes=(";", "#"),
        inline_comment_prefixes=(";",),
        interpolation=None,
        strict=False,
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # numbers and classes keep case
    try:
        with open(path, encoding="utf-8", errors="strict") as handle:
            text = handle.read(MAX_CONFIG_BYTES + 1)
        if len(text) > MAX_CONFIG_BYTES:
            raise ValueError(f"larger than {MAX_CONFIG_BYTES} bytes")
        parser.read_string(text, source=path)
    except (OSError, UnicodeDecodeError, ValueError, configparser.Error) as exc:
        log.write(f"fallback_queue: cannot use {path}: {exc}\n")
        return FallbackRules(BUILTIN_DEFAULT_QUEUE, {}, {})
    default = parser.get("general", "default_queue", fallback=BUILTIN_DEFAULT_QUEUE).strip()
    if not _NAME.match(default):
        log.write(f"fallback_queue: bad default_queue {default!r} in {path}\n")
        default = BUILTIN_DEFAULT_QUEUE
    queues = dict(parser.items("queues")) if parser.has_section("queues") else {}
    callers = dict(parser.items("callers")) if parser.has_section("callers") else {}
    return FallbackRules(
        default,
        {k.strip(): v.strip() for k, v in queues.items()},
        {k.strip(): v.strip() for k, v in callers.items()},
    )


def priority_of(number: str, rules: FallbackRules) -> str | None:
    """The caller's class: exact number first, then the longest matching `prefix*`."""
    if not number or number == "unknown":
        return None
    if number in rules.callers:
        return rules.callers[number]
    best: tuple[int, str] | None = None
    for pattern, klass in rules.callers.items():
        matches = pattern.endswith("*") and number.startswith(pattern[:-1])
        if matches and (best is None or len(pattern) > best[0]):
            best = (len(pattern), klass)
    return best[1] if best else None


def choose_queue(priority: str | None, rules: FallbackRules) -> str:
    queue = rules.queues.get(priority, "") if priority else ""
    return queue if _NAME.match(queue) else rules.default_queue


class AgiStop(Exception):
    """The session cannot go on: the channel hung up, Asterisk closed the pipe or refused the
    command, or sent something that is not AGI. Nothing is left to decide."""


@dataclass(frozen=True, slots=True)
class AgiReply:
    result: str  # the number after result=
    data: str | None  # the text in parentheses, if any


_REPLY = re.compile(r"^200 result=(-?\d*)(?: \((.*)\))?")


class AgiSession:
    """Process AGI over a pair of byte streams: the environment, then command → reply.

    `hung_up()` is Asterisk's SIGHUP (sent when the channel hangs up, AGISIGHUP being on by
    default; its default action would kill us with a non-zero status): no command is sent after
    it."""

    def __init__(self, stdin: BinaryIO, stdout: BinaryIO) -> None:
        self._in = stdin
        self._out = stdout
        self._hung_up = False

    def hung_up(self, signum: int = signal.SIGHUP, frame: FrameType | None = None) -> None:
        self._hung_up = True

    def _line(self) -> str:
        raw = self._in.readline(MAX_LINE_BYTES + 1)
        if not raw:
            raise AgiStop("Asterisk closed the pipe")
        if len(raw) > MAX_LINE_BYTES:
            raise AgiStop(f"line longer than {MAX_LINE_BYTES} bytes")
        return raw.decode("utf-8", errors="replace").rstrip("\r\n")

    def read_environment(self) -> dict[str, str]:
        """`agi_*: value` lines up to the blank line that ends them."""
        env: dict[str, str] = {}
        for _ in range(MAX_ENV_LINES):
            line = self._line()
            if not line:
                return env
            key, sep, value = line.partition(":")
            if not sep or not key.startswith("agi_"):
                raise AgiStop("not an AGI environment line")
            env[key] = value.strip()
        raise AgiStop(f"more than {MAX_ENV_LINES} environment lines")

    def command(self, *words: str) -> AgiReply:
        if self._hung_up:
            raise AgiStop("SIGHUP: the channel hung up")
        self._out.write((" ".join(words) + "\n").encode("utf-8"))
        self._out.flush()
        line = self._line()
        match = _REPLY.match(line)
        if match is None:
            # HANGUP (the channel is gone), 510/511/520 (refused), anything else: not a reply
            # we can use. The code alone is logged: a line may echo a caller's data.
            raise AgiStop(f"reply {line[:3]!r}")
        if match.group(1) == "-1":
            raise AgiStop("channel hung up (result=-1)")
        return AgiReply(match.group(1), match.group(2))

    def get_variable(self, name: str) -> str:
        reply = self.command("GET VARIABLE", quote(name))
        return (reply.data or "") if reply.result == "1" else ""

    def set_variable(self, name: str, value: str) -> None:
        self.command("SET VARIABLE", name, quote(value))

    def verbose(self, message: str, level: int) -> None:
        self.command("VERBOSE", quote(message), str(level))


def quote(text: str) -> str:
    """An AGI argument in double quotes (ours never hold quotes, backslashes or newlines)."""
    if any(c in text for c in '"\\\n\r'):
        raise ValueError("cannot quote an argument with quotes, backslashes or line breaks")
    return f'"{text}"'


def run(argv: list[str], session: AgiSession, *, log: TextIO) -> None:
    """Decide and set FALLBACK_QUEUE / FALLBACK_PRIORITY for the caller on `session`."""
    env = session.read_environment()
    config_path = argv[1] if len(argv) > 1 and argv[1] else DEFAULT_CONFIG
    rules = load_rules(config_path, log=log)
    priority = session.get_variable("CENTRALINO_PRIORITY").strip() or None
    if priority is None:
        priority = priority_of(env.get("agi_callerid", "").strip(), rules)
    if priority is not None and not _NAME.match(priority):
        priority = None
    queue = choose_queue(priority, rules)
    session.set_variable("FALLBACK_QUEUE", queue)
    session.set_variable("FALLBACK_PRIORITY", priority or "none")
    session.verbose(f"centralino fallback: priority {priority or 'none'} -> queue {queue}", 2)


def main(argv: list[str]) -> int:
    """Always 0: whatever goes wrong, the dialplan's default queue stands."""
    log = sys.stderr
    session = AgiSession(sys.stdin.buffer, sys.stdout.buffer)
    signal.signal(signal.SIGHUP, session.hung_up)
    try:
        run(argv, session, log=log)
    except AgiStop as exc:
        log.write(f"fallback_queue: stopped: {exc}\n")
    except OSError as exc:  # e.g. a broken pipe while writing a command
        log.write(f"fallback_queue: stopped: {type(exc).__name__}: {exc.strerror}\n")
    except Exception as exc:  # the process boundary: a bug must not cost the caller the queue
        log.write(f"fallback_queue: internal error ({type(exc).__name__}); default queue stands\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
