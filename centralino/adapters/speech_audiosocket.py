"""Listening on an AudioSocket call: the session's audio frames drive an `ivr.speech.Listener`.

A DTMF key during the answer wins over speech (the caller chose; the flow's menu takes the
key), as does the end of the call. A recogniser that fails (crashes, a broken model) ends the
turn as `NoMatch`, logged: the call goes on by DTMF, never stops because speech broke.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from centralino.asterisk.audiosocket import AudioFrame, ConnectionClosed, DtmfDigit, HangupFrame
from centralino.asterisk.audiosocket_server import AudioSocketSession
from ivr.speech import (
    Final,
    FinalText,
    Listener,
    NoInput,
    NoMatch,
    Offload,
    SpeechError,
    SpeechEvent,
    SpeechStarted,
    listen,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(slots=True)
class Heard:
    """What one listening turn on a call produced."""

    events: list[SpeechEvent] = field(default_factory=list)
    final: Final | None = None  # None when a key or the hangup ended the turn first
    dtmf: str | None = None
    hung_up: bool = False
    engine_failed: bool = False

    @property
    def barged_in(self) -> bool:
        return any(isinstance(e, SpeechStarted) for e in self.events)

    @property
    def transcript(self) -> str:
        return self.final.text if isinstance(self.final, FinalText) else ""


async def hear(
    session: AudioSocketSession,
    listener: Listener,
    *,
    offload: Offload | None = None,
) -> Heard:
    """Listen to one answer on `session` (offload: where the engine runs; a worker thread by
    default, so a slow engine never blocks other calls)."""
    heard = Heard()
    run = offload or _in_thread

    async def frames() -> AsyncGenerator[bytes, None]:
        async for event in session:
            if isinstance(event, AudioFrame):
                yield event.pcm
            elif isinstance(event, DtmfDigit):
                heard.dtmf = event.digit
                return
            elif isinstance(event, HangupFrame | ConnectionClosed):
                heard.hung_up = True
                return

    try:
        # aclosing: the turn may end before the call does; the frame reader is closed now,
        # not whenever the garbage collector gets to it.
        async with contextlib.aclosing(frames()) as audio:
            async for event in listen(audio, listener, offload=run):
                heard.events.append(event)
                if isinstance(event, FinalText | NoInput | NoMatch):
                    heard.final = event
    except SpeechError:
        log.exception("speech recogniser failed on call %s: going on without it", session.uuid)
        heard.engine_failed = True
        heard.final = NoMatch(speech_ms=0)
    if heard.dtmf is not None:
        heard.final = None  # the key decides, not the half-heard words
    return heard


async def _in_thread(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)
