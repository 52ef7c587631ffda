"""Garbage-collector settings for a long-running server process.

Everything built at start (settings, pools, stores, compiled patterns, the loaded modules)
lives as long as the process, yet CPython's collector would walk it again at every full
collection; and with the default first threshold (700 allocations) a burst of calls, each
allocating a few thousand short-lived objects, triggers a young collection every few calls.
Both show up as pauses in the latency tail of the screen-pop. So, once the process is built:
collect, freeze what is left (it moves to a permanent generation the collector skips), and
collect the young generation less often. Reference counting still frees almost everything at
once; only cycles wait for a collection.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# A call's fan-out allocates a few hundred to a few thousand objects and drops them together.
YOUNG_THRESHOLD = 50_000
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 100


@contextmanager
def startup_objects_frozen() -> Iterator[None]:
    """Freeze what exists now and raise the thresholds; undo both on exit (tests and the
    demo enter and leave this more than once per process)."""
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
