"""Test helpers shared by every suite: poll until a condition holds, never sleep-and-hope."""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

import aiohttp
import numpy as np

from centralino.asterisk.ami_client import AmiClient

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


async def web_login(
    http: aiohttp.ClientSession, base_url: str, username: str, password: str
) -> str:
    """Log in through Centralino's login form as a browser does (the session needs a cookie
    jar that accepts IP hosts: `aiohttp.CookieJar(unsafe=True)`); the session's CSRF token."""
    async with http.get(f"{base_url}/login") as response:
        form = await response.text()
    found = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert found is not None, form
    async with http.post(
        f"{base_url}/login",
        data={"username": username, "password": password, "csrf_token": found[1]},
        headers={"Origin": base_url},
        allow_redirects=False,
    ) as response:
        assert response.status == 303, await response.text()
    async with http.get(f"{base_url}/api/session") as response:
        assert response.status == 200
        return str((await response.json())["csrf_token"])


def sim_ami_client(port: int, *, seed: int = 1, action_timeout_s: float = 10.0) -> AmiClient:
    """An AMI client logged in as the simulated Asterisk's default account (`admin`), with a
    keepalive slow enough not to matter in a test."""
    return AmiClient(
        host="127.0.0.1",
        port=port,
        username="admin",
        secret="admin-secret",
        rng=np.random.default_rng(seed),
        ping_interval_s=60.0,
        action_timeout_s=action_timeout_s,
    )
