"""Errors a call flow sees from the channel it drives."""

from __future__ import annotations


class ChannelError(Exception):
    """Base class for failures of a channel command."""


class ChannelHungUp(ChannelError):
    """The caller (or Asterisk) hung up: no further command may be sent on this channel."""


class CallHandedBack(ChannelError):
    """The server is handing the call back to the dialplan (shutting down): the flow stops at
    its next command, and the dialplan's fallback answers the caller."""


class ChannelCommandError(ChannelError):
    """Asterisk refused a command (510 unknown, 511 dead channel, 520 bad syntax).

    `code` is the AGI status code; `message` is Asterisk's text.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
