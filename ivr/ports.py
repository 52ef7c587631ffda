"""Ports owned by the IVR: what a call flow needs from the outside world.

The FastAGI session in `centralino.asterisk` implements `Channel`; tests may use the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class DigitInput:
    """What GET DATA collected: the digits (may be empty) and whether input ended by timeout."""

    digits: str
    timed_out: bool


class Channel(Protocol):
    """One live call as a flow sees it. Every method raises `ivr.errors.ChannelHungUp` once the
    caller has gone, and `ivr.errors.ChannelCommandError` when Asterisk rejects a command."""

    @property
    def uniqueid(self) -> str: ...

    async def answer(self) -> None: ...

    async def hangup(self) -> None: ...

    async def stream_file(self, name: str, escape_digits: str = "") -> str | None:
        """Play a sound; return the key that interrupted it, or None if it played to the end."""
        ...

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> DigitInput: ...

    async def wait_for_digit(self, timeout_ms: int) -> str | None: ...

    async def say_number(self, number: int) -> None: ...

    async def say_digits(self, digits: str) -> None: ...

    async def exec(self, application: str, *args: str) -> int:
        """Run a dialplan application (e.g. `Dial`, `MusicOnHold`); return AGI's result value."""
        ...

    async def get_variable(self, name: str) -> str | None: ...

    async def set_variable(self, name: str, value: str) -> None: ...

    async def set_music(self, on: bool, moh_class: str = "default") -> None: ...

    async def verbose(self, message: str, level: int = 1) -> None: ...
