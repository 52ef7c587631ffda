"""Test helpers shared by every suite: poll until a condition holds, never sleep-and-hope."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], T | Awaitable[T]], *, timeout: float = 5.0, interval: float = 0.01
) -> T:
    """Call `check` until it stops raising AssertionError (awaiting it if it is a coroutine).

    Returns its last value; after `timeout` seconds re-raises the last AssertionError.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if isinstance(value, Awaitable):
                return await value
            return value
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        await asyncio.sleep(interval)
