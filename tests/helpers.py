"""Test helpers shared by every suite: poll until a condition holds, never sleep-and-hope."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


@overload
async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 5.0, interval: float = 0.01
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T], *, timeout: float = 5.0, interval: float = 0.01
) -> T: ...


async def eventually(
    check: Callable[[], Any], *, timeout: float = 5.0, interval: float = 0.01
) -> Any:
    """Call `check` until it stops raising AssertionError (awaiting it if it returns an
    awaitable). Returns its last value; after `timeout` seconds re-raises the AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            return value
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        await asyncio.sleep(interval)
