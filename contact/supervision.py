"""Supervision of a live call: listen, whisper, barge (pure rules; the AMI side is
`centralino.supervision`).

A supervisor's phone is called (AMI Originate) into the dialplan's `centralino-supervise`
context, whose extension is the mode; it runs Asterisk's ChanSpy on the agent's channel:

- `listen`: the supervisor hears caller and agent; nobody hears the supervisor;
- `whisper`: the agent hears the supervisor too (coaching), the caller does not;
- `barge`: both hear the supervisor (a three-way call).

While spying, the supervisor's keypad switches modes (ChanSpy's `d` option: 4 listen,
5 whisper, 6 barge). The target is a channel-name *prefix*: the agent's endpoint plus the `-`
Asterisk puts before a channel's sequence number, so `PJSIP/agent10-` never matches
`PJSIP/agent101-…`. The prefix reaches the dialplan as a variable inside ChanSpy's arguments,
so anything that could split them (a comma, a pipe, spaces, quotes) is refused here.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

SUPERVISE_CONTEXT = "centralino-supervise"
# An endpoint as the dialplan names it: technology/resource[@context]; nothing that could end
# an application argument or start another (`,`, `|`, `)`, quotes, whitespace, `$`).
_ENDPOINT = re.compile(r"^[A-Za-z][A-Za-z0-9]*/[A-Za-z0-9_.@+-]+$")


class SpyMode(enum.StrEnum):
    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"


class SupervisionRefused(ValueError):
    """The request cannot be carried out as asked (bad endpoint, agent not on a call...)."""


@dataclass(frozen=True, slots=True)
class SpyRequest:
    """What the Originate carries: whose phone rings, which extension (the mode), the target."""

    supervisor_endpoint: str
    mode: SpyMode
    target_prefix: str

    @property
    def variables(self) -> str:
        return f"SPY_TARGET={self.target_prefix}"


def spy_request(*, supervisor_endpoint: str, agent_endpoint: str, mode: str) -> SpyRequest:
    """Validate a supervision request; raises `SupervisionRefused` saying what is wrong."""
    try:
        spy_mode = SpyMode(mode)
    except ValueError:
        raise SupervisionRefused(
            f"mode {mode!r} is not one of {', '.join(m.value for m in SpyMode)}"
        ) from None
    for role, endpoint in (("supervisor", supervisor_endpoint), ("agent", agent_endpoint)):
        if not _ENDPOINT.fullmatch(endpoint):
            raise SupervisionRefused(f"the {role}'s endpoint {endpoint!r} is not a dialable name")
    if supervisor_endpoint == agent_endpoint:
        raise SupervisionRefused("a supervisor cannot supervise their own phone")
    return SpyRequest(
        supervisor_endpoint=supervisor_endpoint, mode=spy_mode, target_prefix=f"{agent_endpoint}-"
    )
