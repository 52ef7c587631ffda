#!/usr/bin/env python3
"""Process AGI: choose the static fallback queue for a caller when Centralino is unreachable.

Asterisk runs it locally from [centralino-fallback] in extensions.conf:
    AGI(fallback_queue.py,/etc/asterisk/centralino-fallback.conf)
It reads the AGI environment on stdin (pyst2), decides the caller's priority class and sets
    FALLBACK_QUEUE  the queue to use (the dialplan jumps to the extension of that name)
    FALLBACK_PRIORITY  the class it decided (for the queue log / reports)

Priority: the channel variable CENTRALINO_PRIORITY if the app set one before failing; else the
caller number (agi_callerid) looked up in the file's [callers] (exact number, then the longest
`prefix*`); else none. The class maps to a queue in [queues]; [general] default_queue otherwise.

It must never make things worse: a missing or garbled file, an unknown class or a bad queue name
all give the default queue, and the script always exits 0 so the dialplan carries on.
Standalone by design: standard library and pyst2 only, nothing of Centralino's.
"""

from __future__ import annotations

import configparser
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

DEFAULT_CONFIG = "/etc/asterisk/centralino-fallback.conf"
# Used when the file cannot tell: must exist in queues.conf and [centralino-fallback-queues].
BUILTIN_DEFAULT_QUEUE = "fallback-standard"
# A queue or class name goes into a dialplan variable: letters, digits, - _ . only.
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# Asterisk's config files are small; a huge file is not ours.
MAX_CONFIG_BYTES = 1 << 20


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


def main(argv: list[str]) -> int:
    # Imported here so the pure functions above can be used without pyst2 installed.
    from asterisk.agi import AGI, AGIException

    log = sys.stderr
    try:
        # pyst2 reads the whole environment on construction and installs a SIGHUP handler
        # (Asterisk signals a hangup with SIGHUP when AGISIGHUP is on).
        agi = AGI()
    except (AGIException, ValueError, OSError) as exc:
        log.write(f"fallback_queue: no usable AGI environment: {exc}\n")
        return 0
    config_path = argv[1] if len(argv) > 1 and argv[1] else DEFAULT_CONFIG
    rules = load_rules(config_path, log=log)
    try:
        priority = agi.get_variable("CENTRALINO_PRIORITY").strip() or None
        if priority is None:
            priority = priority_of(agi.env.get("agi_callerid", "").strip(), rules)
        if priority is not None and not _NAME.match(priority):
            priority = None
        queue = choose_queue(priority, rules)
        # execute() directly, so the variable name goes unquoted: SET VARIABLE NAME "value"
        agi.execute("SET VARIABLE", "FALLBACK_QUEUE", agi._quote(queue))
        agi.execute("SET VARIABLE", "FALLBACK_PRIORITY", agi._quote(priority or "none"))
        agi.verbose(f"centralino fallback: priority {priority or 'none'} -> queue {queue}", 2)
    except (AGIException, ValueError, OSError) as exc:
        # Hangup (SIGHUP, result=-1), a closed pipe or an unparsable reply: nothing to decide.
        log.write(f"fallback_queue: stopped: {exc!r}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
