"""Headless Chromium for page tests, through playwright's async API and Debian's chromium.

The machine has no internet: playwright never downloads a browser (`playwright install` is not
used); we point it at /usr/bin/chromium. One browser per test module keeps the suite fast; each
test opens its own context (cookies, storage) and pages.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import Browser, ConsoleMessage, Dialog, Page, async_playwright

from tests.helpers import eventually

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Screenshots are for people to look at, not part of the repository.
SHOTS_DIR = Path(os.environ.get("CENTRALINO_SHOTS_DIR", "/tmp/centralino-shots"))


@asynccontextmanager
async def launch_browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Watched:
    """A page plus what it did that a test should know about: JS errors, dialogs, console."""

    page: Page
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    async def screenshot(self, name: str) -> Path:
        path = SHOTS_DIR / f"{name}.png"  # playwright creates the folder
        await self.page.screenshot(path=str(path), full_page=True)
        return path


@asynccontextmanager
async def open_page(
    browser: Browser, *, width: int = 1280, height: int = 800, locale: str = "en-US"
) -> AsyncIterator[Watched]:
    """A fresh context and page that records page errors, dialogs (dismissed) and console."""
    context = await browser.new_context(
        viewport={"width": width, "height": height}, locale=locale, timezone_id="Europe/Rome"
    )
    page = await context.new_page()
    watched = Watched(page=page)

    async def on_dialog(dialog: Dialog) -> None:
        watched.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    def on_console(msg: ConsoleMessage) -> None:
        watched.console.append(f"{msg.type}: {msg.text}")

    page.on("pageerror", lambda exc: watched.errors.append(str(exc)))
    page.on("dialog", on_dialog)
    page.on("console", on_console)
    try:
        yield watched
    finally:
        await context.close()


async def until(check: Callable[[], Awaitable[object]], *, timeout: float = 5.0) -> None:
    """`eventually` for an async check (typed so that mypy needs no ignore at each call)."""
    as_object: Callable[[], object] = check
    await eventually(as_object, timeout=timeout)
