"""Sans-I/O FastAGI codec (server side): bytes from Asterisk in, typed events out; commands out
as bytes. No asyncio here; `agi_server.py` is the thin shell around it.

The connection state machine (rules first, as in h11's `_state.py`):

    state            | input line                      | event                  | next state
    -----------------+---------------------------------+------------------------+---------------
    ENVIRONMENT      | `agi_<name>: <value>`           | (collected)            | ENVIRONMENT
    ENVIRONMENT      | empty line                      | AgiEnvironment         | IDLE
    ENVIRONMENT      | EOF before any byte (a probe)   | ConnectionClosed       | CLOSED
    ENVIRONMENT      | EOF after some bytes            | RemoteProtocolError    | ERROR
    IDLE             | `HANGUP`                        | AgiHangup              | IDLE
    IDLE             | any reply (no command asked)    | RemoteProtocolError    | ERROR
    IDLE             | EOF                             | ConnectionClosed       | CLOSED
    AWAITING_REPLY   | `HANGUP` (the reply may follow) | AgiHangup              | AWAITING_REPLY
    AWAITING_REPLY   | `1xx ...` (provisional)         | (ignored)              | AWAITING_REPLY
    AWAITING_REPLY   | `520-...`                       | (usage block starts)   | USAGE
    AWAITING_REPLY   | `NNN ...`                       | AgiResponse            | IDLE
    AWAITING_REPLY   | EOF                             | ConnectionClosed       | CLOSED
    USAGE            | `520 ...`                       | AgiResponse(code=520)  | IDLE
    USAGE            | any other line                  | (usage line collected) | USAGE
    USAGE            | EOF                             | RemoteProtocolError    | ERROR
    any              | a line that is none of the above| RemoteProtocolError    | ERROR
    any              | EOF with a partial line         | RemoteProtocolError    | ERROR

`send_command()` is legal only in IDLE (AGI runs one command at a time) and moves to
AWAITING_REPLY; anything else is our misuse and raises `LocalProtocolError`.

A connection closed before sending a single byte is a TCP health check (a load balancer's or
monitoring's connect-and-close), not Asterisk misbehaving: it ends with `ConnectionClosed`.

`HANGUP` while a command is outstanding: res_agi writes it between commands, so it crossed our
command on the wire. Asterisk then either still answers that command (`511`, or `200` for the
commands allowed on a dead channel, as in the recorded transcripts after a hangup) or, with
AGIEXITONHANGUP=yes, sends `HANGUP` again and closes without answering. The codec stays in
AWAITING_REPLY so that a late reply is consumed as the reply it is (never "a reply with no
command outstanding"), and EOF there is a clean close; the shell need not wait for it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Final
from urllib.parse import parse_qsl

__all__ = [
    "MAX_COMMAND_BYTES",
    "MAX_ENVIRONMENT_BYTES",
    "MAX_ENVIRONMENT_LINES",
    "MAX_LINE_BYTES",
    "MAX_USAGE_LINES",
    "NEED_DATA",
    "AgiEnvironment",
    "AgiEvent",
    "AgiHangup",
    "AgiProtocolError",
    "AgiResponse",
    "AgiServerConnection",
    "ConnectionClosed",
    "LocalProtocolError",
    "NeedData",
    "Quoted",
    "RemoteProtocolError",
    "encode_command",
    "parse_command",
]

# Longest line we accept from Asterisk, newline included. Environment values (channel names,
# URLs, caller names) are far shorter; variable values are read by res_agi into buffers of a
# few KiB at most. 16 KiB keeps headroom while a peer that never sends a newline cannot grow
# our buffer without bound (the "100 KB line" case is rejected at 16 KiB).
MAX_LINE_BYTES: Final = 16 * 1024

# Asterisk 22's environment is about 600 bytes; 127 arguments of a couple hundred bytes each
# stay well under 32 KiB. Bounds what we buffer before the blank line.
MAX_ENVIRONMENT_BYTES: Final = 32 * 1024

# Asterisk 22 sends 22 fixed `agi_*` lines plus one per AGI() argument, and AGI() takes at most
# 127 arguments (res_agi's MAX_ARGS is 128 including the script). 256 leaves room for a few new
# fields in later versions while capping an environment that never ends.
MAX_ENVIRONMENT_LINES: Final = 256

# The 520 usage text of the longest AGI command is about 30 lines; cap the block so a peer that
# opens `520-` and never closes it cannot make us collect lines forever.
MAX_USAGE_LINES: Final = 200

# res_agi reads each command into `char buf[AGI_BUF_LEN]` (2048 bytes, newline and NUL
# included); a longer line would be cut and the rest run as a second command.
MAX_COMMAND_BYTES: Final = 2046

# res_agi's parse_args keeps at most MAX_ARGS - 1 words (the command words included).
MAX_COMMAND_WORDS: Final = 127


class AgiProtocolError(Exception):
    """Base class of this codec's errors."""


class RemoteProtocolError(AgiProtocolError):
    """Asterisk (or whoever connected) sent something that is not FastAGI: close and log."""


class LocalProtocolError(AgiProtocolError):
    """We misused the codec (a CR/LF in a value, a command while another is running): a bug."""


class NeedData:
    """Sentinel type: `next_event()` needs more bytes before it can return an event."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()


@dataclass(frozen=True, slots=True)
class AgiEnvironment:
    """The `agi_*` lines Asterisk sends before the first command.

    `script` is `agi_network_script` without its query string and leading `/`; `query` is that
    query string parsed (Asterisk passes it through untouched, after splitting AGI() arguments on
    commas); `args` are `agi_arg_1..N` in order; `raw` keeps every line as received (names without
    the `agi_` prefix).
    """

    network: bool
    network_script: str
    request: str
    channel: str
    language: str
    type: str
    uniqueid: str
    version: str
    callerid: str
    calleridname: str
    callingpres: int
    callingani2: int
    callington: int
    callingtns: int
    dnid: str
    rdnis: str
    context: str
    extension: str
    priority: str
    enhanced: bool
    accountcode: str
    threadid: str
    args: tuple[str, ...]
    script: str
    query: Mapping[str, str]
    raw: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class AgiResponse:
    """One reply: `200 result=<result>[ (<data>)][ endpos=<endpos>]`, or an error code.

    For codes other than 200, `result` is "" and `message` holds Asterisk's text (510, 511); a
    multi-line 520 puts its first line's text in `message` and the lines between in `usage`.
    """

    code: int
    result: str
    data: str | None = None
    endpos: int | None = None
    message: str = ""
    usage: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AgiHangup:
    """The unsolicited `HANGUP` line: the channel is gone (sent between replies, maybe twice)."""


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """Asterisk closed the TCP connection at a clean point (not mid-line, not mid-environment)."""


AgiEvent = AgiEnvironment | AgiResponse | AgiHangup | ConnectionClosed


@dataclass(frozen=True, slots=True)
class Quoted:
    """An argument to send double-quoted even when it needs no quoting (`VERBOSE "hi" 1`)."""

    value: str


class _State(enum.Enum):
    ENVIRONMENT = enum.auto()
    IDLE = enum.auto()
    AWAITING_REPLY = enum.auto()
    USAGE = enum.auto()
    CLOSED = enum.auto()
    ERROR = enum.auto()


# Module-level aliases: a global lookup is cheaper than an Enum attribute on the per-reply path.
_IDLE: Final = _State.IDLE
_AWAITING_REPLY: Final = _State.AWAITING_REPLY

# Shared name strings: every call holds its raw environment, so reuse one str per known name.
_KNOWN_NAMES: Final = {
    name: name
    for name in [
        "network",
        "network_script",
        "request",
        "channel",
        "language",
        "type",
        "uniqueid",
        "version",
        "callerid",
        "calleridname",
        "callingpres",
        "callingani2",
        "callington",
        "callingtns",
        "dnid",
        "rdnis",
        "context",
        "extension",
        "priority",
        "enhanced",
        "accountcode",
        "threadid",
        "arg_1",
        "arg_2",
        "arg_3",
        "arg_4",
    ]
}
# agi_arg_1.. agi_arg_127: AGI() numbers its arguments consecutively.
_ARG_NAMES: Final = tuple(f"arg_{i}" for i in range(1, MAX_COMMAND_WORDS + 1))
_EMPTY_QUERY: Final[Mapping[str, str]] = MappingProxyType({})
_HANGUP_LINE: Final = b"HANGUP"
# `agi_<name>: <value>`; Asterisk always writes the blank, tolerate its absence on empty values.
_ENV_LINE: Final = re.compile(r"agi_([a-z0-9_]+):(?: ([^\n]*))?\n")
_ENV_BLOCK: Final = re.compile(rb"(?:agi_[a-z0-9_]+:(?: [^\n]*)?\n)+")
# Command words: printable, single blanks between words.
_PLAIN_COMMAND: Final = re.compile(r"[!-~]+(?: [!-~]+)*")
# An argument that can go on the wire bare (no blank, tab, quote, backslash, CR, LF, NUL).
_PLAIN_ARG: Final = re.compile(r'[^ \t"\\\r\n\x00]+')
_CONNECTION_CLOSED: Final = ConnectionClosed()
_AGI_HANGUP: Final = AgiHangup()


def _decode(line: bytes) -> str:
    # Whole lines are decoded, so multi-byte characters are never split. Asterisk passes caller
    # names through as the trunk sent them; invalid UTF-8 becomes U+FFFD rather than an error.
    return line.decode("utf-8", "replace")


class AgiServerConnection:
    """The server's half of one FastAGI connection. Feed bytes with `receive_data()` (b"" means
    EOF), drain events with `next_event()`, and encode commands with `send_command()`."""

    __slots__ = (
        "_buf",
        "_error",
        "_max_line",
        "_pending_eof",
        "_pos",
        "_state",
        "_usage",
        "_usage_head",
    )

    def __init__(self, *, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        if max_line_bytes < 64:
            raise LocalProtocolError("max_line_bytes below 64 cannot hold a FastAGI reply")
        self._max_line = max_line_bytes
        self._buf = bytearray()
        self._pos = 0
        self._state = _State.ENVIRONMENT
        self._usage: list[str] = []
        self._usage_head = ""
        self._pending_eof = False
        self._error: RemoteProtocolError | None = None

    @property
    def awaiting_reply(self) -> bool:
        """True while a command has been sent and its reply has not been parsed yet."""
        return self._state in (_State.AWAITING_REPLY, _State.USAGE)

    @property
    def can_send(self) -> bool:
        """True when `send_command()` is legal now."""
        return self._state is _State.IDLE

    @property
    def closed(self) -> bool:
        return self._state in (_State.CLOSED, _State.ERROR)

    def receive_data(self, data: bytes) -> None:
        """Append bytes from the socket; b"" says the peer closed its side."""
        if data:
            if self._pending_eof:
                raise LocalProtocolError("data received after EOF")
            self._buf += data
        else:
            self._pending_eof = True

    def receive_reply(self, data: bytes) -> AgiResponse | AgiHangup | None:
        """Fast path for the usual case: `data` is exactly one complete line, nothing is
        buffered and a command is outstanding. Returns the parsed reply (or HANGUP), or None
        without consuming `data` when the general path (`receive_data` + `next_event`) is
        needed. Same results as the general path, fewer steps per command."""
        if self._state is not _AWAITING_REPLY or self._buf or self._pending_eof:
            return None
        # Keys hold their newline, so a hit is exactly one complete line.
        common = _COMMON_REPLY_LINES.get(data)
        if common is not None:
            if common is not _AGI_HANGUP:
                self._state = _IDLE
            return common
        if len(data) > 512 or data.find(b"\n") != len(data) - 1 or not data.startswith(b"200 "):
            return None
        line = data[:-1]
        try:
            response = _parse_200(_decode(line[4:]), line)
        except RemoteProtocolError:
            return None  # let the general path raise it and record the error state
        self._state = _IDLE
        return response

    def next_event(self) -> AgiEvent | NeedData:
        """Return the next event, or NEED_DATA. Raises RemoteProtocolError on garbage."""
        if self._error is not None:
            raise self._error
        try:
            return self._next_event()
        except RemoteProtocolError as exc:
            self._state = _State.ERROR
            self._error = exc
            raise

    def _next_event(self) -> AgiEvent | NeedData:
        state = self._state
        if state is _State.CLOSED:
            return _CONNECTION_CLOSED
        if state is _State.ENVIRONMENT:
            return self._environment()
        buf = self._buf
        max_line = self._max_line
        while True:
            end = buf.find(b"\n")
            if end < 0:
                if len(buf) >= max_line:
                    raise RemoteProtocolError(f"line longer than {max_line} bytes")
                if self._pending_eof:
                    return self._eof()
                return NEED_DATA
            if end >= max_line:
                raise RemoteProtocolError(f"line longer than {max_line} bytes")
            line = bytes(buf[:end])
            del buf[: end + 1]
            event = self._line(line)
            if event is not None:
                return event

    def _environment(self) -> AgiEvent | NeedData:
        buf = self._buf
        if self._pending_eof and not buf:
            # Connected and closed without a byte: a TCP health check, not a protocol error.
            self._state = _State.CLOSED
            return _CONNECTION_CLOSED
        if buf[:1] == b"\n":
            raise RemoteProtocolError("empty environment")
        # `_pos` remembers how far we already looked, so an environment trickling in one byte at
        # a time is still scanned in linear time.
        if len(buf) >= 4 and not buf.startswith(b"agi_"):
            raise RemoteProtocolError(f"not an agi_ environment: {bytes(buf[:80])!r}")
        end = buf.find(b"\n\n", max(0, self._pos - 1))
        if end < 0:
            self._pos = len(buf)
            if len(buf) - buf.rfind(b"\n") - 1 >= self._max_line:
                raise RemoteProtocolError(f"line longer than {self._max_line} bytes")
            if len(buf) > MAX_ENVIRONMENT_BYTES:
                raise RemoteProtocolError(f"environment larger than {MAX_ENVIRONMENT_BYTES} bytes")
            if self._pending_eof:
                raise RemoteProtocolError("connection closed before the environment ended")
            return NEED_DATA
        if end + 2 > MAX_ENVIRONMENT_BYTES:
            raise RemoteProtocolError(f"environment larger than {MAX_ENVIRONMENT_BYTES} bytes")
        block = bytes(buf[: end + 1])
        del buf[: end + 2]
        self._pos = 0
        # One C-level pass validates every line, a second extracts the pairs.
        if _ENV_BLOCK.fullmatch(block) is None:
            bad = next(
                (line for line in block.split(b"\n") if not _ENV_BLOCK.fullmatch(line + b"\n")),
                block[:80],
            )
            raise RemoteProtocolError(f"malformed environment line: {bad[:80]!r}")
        # No line can be longer than the whole block: skip the split in the usual case.
        if len(block) >= self._max_line and max(map(len, block.split(b"\n"))) >= self._max_line:
            raise RemoteProtocolError(f"line longer than {self._max_line} bytes")
        pairs = _ENV_LINE.findall(_decode(block))
        if len(pairs) > MAX_ENVIRONMENT_LINES:
            raise RemoteProtocolError(f"environment longer than {MAX_ENVIRONMENT_LINES} lines")
        self._state = _State.IDLE
        return _build_environment(pairs)

    def _eof(self) -> AgiEvent:
        state = self._state
        if self._buf:
            raise RemoteProtocolError("connection closed in the middle of a line")
        if state is _State.USAGE:
            raise RemoteProtocolError("connection closed inside a 520 usage block")
        self._state = _State.CLOSED
        return _CONNECTION_CLOSED

    def _line(self, line: bytes) -> AgiEvent | None:
        state = self._state
        if state is _State.USAGE:
            if line.startswith(b"520 "):
                self._state = _State.IDLE
                usage = tuple(self._usage)
                self._usage = []
                return AgiResponse(code=520, result="", message=self._usage_head, usage=usage)
            if len(self._usage) >= MAX_USAGE_LINES:
                raise RemoteProtocolError(f"520 usage block longer than {MAX_USAGE_LINES} lines")
            self._usage.append(_decode(line))
            return None
        if line == _HANGUP_LINE:
            return _AGI_HANGUP
        if state is _State.IDLE:
            raise RemoteProtocolError(f"reply with no command outstanding: {line[:80]!r}")
        # AWAITING_REPLY
        if len(line) < 4 or not line[:3].isdigit() or line[3:4] not in (b" ", b"-"):
            raise RemoteProtocolError(f"not a FastAGI reply: {line[:80]!r}")
        code = int(line[:3])
        if line[3:4] == b"-":
            if code != 520:
                raise RemoteProtocolError(f"unexpected continuation line: {line[:80]!r}")
            self._state = _State.USAGE
            self._usage_head = _decode(line[4:])
            return None
        if 100 <= code < 200:
            # Provisional ("100 result=0 Trying..."): the real reply follows.
            return None
        self._state = _State.IDLE
        if code == 200:
            return _parse_200(_decode(line[4:]), line)
        return AgiResponse(code=code, result="", message=_decode(line[4:]))

    def send_command(self, command: str, *args: str | Quoted) -> bytes:
        """Encode one command (e.g. `send_command("STREAM FILE", "hello", Quoted(""))`) and
        move to AWAITING_REPLY. Raises LocalProtocolError when a command is already running,
        before the environment ended, after close, or when a value holds CR, LF or NUL."""
        if self._state is not _IDLE:
            raise LocalProtocolError(f"cannot send a command in state {self._state.name}")
        data = encode_command(command, *args)
        self._state = _AWAITING_REPLY
        return data


# Replies seen on nearly every call, parsed once at import (events are immutable, so sharing
# one instance is safe).
_COMMON_REPLIES: Final[dict[bytes, AgiResponse | AgiHangup]] = {
    b"HANGUP": _AGI_HANGUP,
    b"200 result=0": AgiResponse(code=200, result="0"),
    b"200 result=1": AgiResponse(code=200, result="1"),
    b"200 result=-1": AgiResponse(code=200, result="-1"),
    b"200 result=6": AgiResponse(code=200, result="6"),
    b"200 result= (timeout)": AgiResponse(code=200, result="", data="timeout"),
    b"510 Invalid or unknown command": AgiResponse(
        code=510, result="", message="Invalid or unknown command"
    ),
    b"511 Command Not Permitted on a dead channel or intercept routine": AgiResponse(
        code=511, result="", message="Command Not Permitted on a dead channel or intercept routine"
    ),
}
_COMMON_REPLY_LINES: Final = {line + b"\n": event for line, event in _COMMON_REPLIES.items()}

# Slot setters of the frozen events: building one through them skips the generated __init__'s
# per-field `object.__setattr__` calls (half the cost of a reply that is not in the table above).
_new: Final = object.__new__
_Setter = Callable[[object, object], None]
_SET_CODE: Final[_Setter] = vars(AgiResponse)["code"].__set__
_SET_RESULT: Final[_Setter] = vars(AgiResponse)["result"].__set__
_SET_DATA: Final[_Setter] = vars(AgiResponse)["data"].__set__
_SET_ENDPOS: Final[_Setter] = vars(AgiResponse)["endpos"].__set__
_SET_MESSAGE: Final[_Setter] = vars(AgiResponse)["message"].__set__
_SET_USAGE: Final[_Setter] = vars(AgiResponse)["usage"].__set__


def _response_200(result: str, data: str | None, endpos: int | None) -> AgiResponse:
    """`AgiResponse(code=200, result=result, data=data, endpos=endpos)`, built faster."""
    response: AgiResponse = _new(AgiResponse)
    _SET_CODE(response, 200)
    _SET_RESULT(response, result)
    _SET_DATA(response, data)
    _SET_ENDPOS(response, endpos)
    _SET_MESSAGE(response, "")
    _SET_USAGE(response, ())
    return response


def _parse_200(text: str, line: bytes) -> AgiResponse:
    if not text.startswith("result="):
        raise RemoteProtocolError(f"200 reply without result=: {line[:80]!r}")
    rest = text[7:]
    space = rest.find(" ")
    if space < 0:
        return _response_200(rest, None, None)
    result = rest[:space]
    rest = rest[space + 1 :]
    data: str | None = None
    open_ = rest.find("(")
    if open_ >= 0:
        close = rest.rfind(")")
        if close < open_:
            raise RemoteProtocolError(f"unbalanced parentheses in reply: {line[:80]!r}")
        # Data is raw: no quoting or escaping, so take everything between the first "(" and the
        # last ")" (values may themselves hold parentheses).
        data = rest[open_ + 1 : close]
        rest = rest[close + 1 :]
    endpos: int | None = None
    at = rest.find("endpos=")
    if at >= 0:
        digits = rest[at + 7 :].split(" ", 1)[0]
        try:
            endpos = int(digits)
        except ValueError:
            raise RemoteProtocolError(f"bad endpos in reply: {line[:80]!r}") from None
    return _response_200(result, data, endpos)


# AgiEnvironment's slot setters in field order (see `_response_200`: same trick, 26 fields).
_ENV_SETTERS: Final[tuple[_Setter, ...]] = tuple(
    vars(AgiEnvironment)[field.name].__set__ for field in fields(AgiEnvironment)
)


def _build_environment(pairs: list[tuple[str, str]]) -> AgiEnvironment:
    known = _KNOWN_NAMES
    raw = {known.get(name, name): value for name, value in pairs}
    get = raw.get
    args: list[str] = []
    while (arg := get(_ARG_NAMES[len(args)] if len(args) < len(_ARG_NAMES) else "")) is not None:
        args.append(arg)
    try:
        callingpres = int(get("callingpres") or 0)
        callingani2 = int(get("callingani2") or 0)
        callington = int(get("callington") or 0)
        callingtns = int(get("callingtns") or 0)
    except ValueError:
        raise RemoteProtocolError("agi_calling* field is not a number") from None
    uniqueid = get("uniqueid")
    if not uniqueid:
        raise RemoteProtocolError("environment without agi_uniqueid")
    network_script = get("network_script", "")
    script = network_script
    if not script:
        # Process AGI (or an old peer) has no agi_network_script: take the path of the URL.
        script = get("request", "").split("://", 1)[-1].partition("/")[2]
    path, _, query_string = script.partition("?")
    query = dict(parse_qsl(query_string, keep_blank_values=True)) if query_string else {}
    env: AgiEnvironment = _new(AgiEnvironment)
    # In the dataclass's field order (tests compare every field with the wire).
    values = (
        get("network") == "yes",  # network
        network_script,  # network_script
        get("request", ""),  # request
        get("channel", ""),  # channel
        get("language", ""),  # language
        get("type", ""),  # type
        uniqueid,  # uniqueid
        get("version", ""),  # version
        get("callerid", ""),  # callerid
        get("calleridname", ""),  # calleridname
        callingpres,  # callingpres
        callingani2,  # callingani2
        callington,  # callington
        callingtns,  # callingtns
        get("dnid", ""),  # dnid
        get("rdnis", ""),  # rdnis
        get("context", ""),  # context
        get("extension", ""),  # extension
        get("priority", ""),  # priority
        get("enhanced", "0.0") not in ("", "0", "0.0"),  # enhanced
        get("accountcode", ""),  # accountcode
        get("threadid", ""),  # threadid
        tuple(args),  # args
        path.strip("/"),  # script
        MappingProxyType(query) if query else _EMPTY_QUERY,  # query
        MappingProxyType(raw),  # raw
    )
    for setter, value in zip(_ENV_SETTERS, values, strict=True):
        setter(env, value)
    return env


# Command words the server sends all the time, with their word counts: these skip the regex check.
_KNOWN_COMMAND_WORDS: Final = {
    command: command.count(" ") + 1
    for command in [
        "ANSWER",
        "CHANNEL STATUS",
        "EXEC",
        "GET DATA",
        "GET FULL VARIABLE",
        "GET VARIABLE",
        "HANGUP",
        "NOOP",
        "RECORD FILE",
        "SAY DIGITS",
        "SAY NUMBER",
        "SET MUSIC",
        "SET VARIABLE",
        "STREAM FILE",
        "VERBOSE",
        "WAIT FOR DIGIT",
    ]
}


def encode_command(command: str, *args: str | Quoted) -> bytes:
    """Encode a command line as res_agi's parse_args will split it back.

    `command` is the fixed words (`"GET VARIABLE"`); each argument is sent bare when it can be,
    double-quoted with `\\` and `"` escaped when it is empty or holds a blank, tab, quote or
    backslash, and always quoted when wrapped in `Quoted`. CR, LF or NUL anywhere raises
    LocalProtocolError: they would end the command early or cut it.
    """
    words = _KNOWN_COMMAND_WORDS.get(command)
    if words is None:
        if _PLAIN_COMMAND.fullmatch(command) is None:
            raise LocalProtocolError(f"bad AGI command words: {command!r}")
        words = command.count(" ") + 1
    if not args:
        return (command + "\n").encode()
    parts = [command]
    plain = _PLAIN_ARG.fullmatch
    for arg in args:
        if type(arg) is str:
            # isalnum() is a cheap sufficient test (letters and digits need no quoting).
            if arg.isalnum() or plain(arg) is not None:
                parts.append(arg)
                continue
            value = arg
        else:
            assert isinstance(arg, Quoted)
            value = arg.value
        if "\r" in value or "\n" in value or "\x00" in value:
            raise LocalProtocolError(f"AGI argument holds CR, LF or NUL: {value[:40]!r}")
        parts.append('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"')
    if len(args) + words > MAX_COMMAND_WORDS:
        raise LocalProtocolError(f"more than {MAX_COMMAND_WORDS} words in one AGI command")
    data = (" ".join(parts) + "\n").encode()
    if len(data) > MAX_COMMAND_BYTES:
        raise LocalProtocolError(f"AGI command longer than {MAX_COMMAND_BYTES} bytes")
    return data


def parse_command(line: str) -> tuple[str, ...]:
    """Split a command line into words exactly as res_agi's parse_args does (used by the peer).

    Blanks and tabs separate words outside quotes; `"` toggles quoting (and starts a word after a
    blank, so `""` is an empty word); `\\` makes the next character literal.
    """
    words: list[str] = []
    current: list[str] | None = None
    quoted = escaped = False
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and current is None:
                current = []
            continue
        if ch in " \t" and not quoted and not escaped:
            if current is not None:
                words.append("".join(current))
                current = None
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if current is None:
            current = []
        current.append(ch)
        escaped = False
    if current is not None:
        words.append("".join(current))
    return tuple(words)
