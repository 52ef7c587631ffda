"""The FastAGI client half of the Asterisk peer: it connects to a FastAGI server and plays one
channel the way Asterisk 22 does (`../shared/asterisk-real/fastagi-*.txt`).

`environment_bytes()` writes the `agi_*` block in Asterisk's order and format. `ChannelModel` is
the sans-I/O part: one command line in, Asterisk's reply lines out (key presses and Dial outcomes
scripted per command, variables, AstDB, 510/511/520). `EXEC Dial` answers as measured on a real
Asterisk 22 (`tests/simulator/fixtures/real_dial.txt`): `result=-1` once the agent answered,
whoever hung up, and on CANCEL; `result=0` otherwise; DIALSTATUS and the Dial variables set;
ANSWEREDTIME and DIALEDTIME are the caller channel's up time and age, not ring or talk time.
`AgiPeer` is the asyncio shell: it sends the environment, answers commands, hangs up at a chosen
moment with the real semantics (the running command gets `result=-1`, then `HANGUP\\n` about
40 ms later and the socket stays open; variants for `AGIEXITONHANGUP=yes` and `AGISIGHUP=no`) and
records what it received. A test tool and load generator, never part of the call path.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal

from centralino.asterisk.agi import parse_command

__all__ = [
    "DEFAULT_SOUNDS",
    "DIAL_VARIABLES",
    "AgiPeer",
    "ChannelModel",
    "DialOutcome",
    "DialStatus",
    "HangupMode",
    "Reply",
    "environment_bytes",
]

HangupMode = Literal["default", "exit_on_hangup", "no_sighup"]
DialStatus = Literal["ANSWER", "NOANSWER", "BUSY", "CONGESTION", "CHANUNAVAIL", "CANCEL"]

# What app_dial sets to "" on the caller's channel when it starts (VarSet with an empty Value);
# unless the agent answers they stay "", so GET VARIABLE answers `200 result=1 ()`.
DIAL_VARIABLES: Final = (
    "DIALSTATUS",
    "DIALEDPEERNUMBER",
    "DIALEDPEERNAME",
    "ANSWEREDTIME",
    "ANSWEREDTIME_MS",
    "DIALEDTIME",
    "DIALEDTIME_MS",
)
# HANGUPCAUSE left on the caller's channel by Dial, as measured: 16 once answered or cancelled,
# 0 for no answer, busy and congestion, 3 (No route to destination) for a PJSIP endpoint without
# a registered contact (the CHANUNAVAIL an agent's unregistered phone gives).
_DIAL_HANGUPCAUSE: Final[Mapping[str, int]] = {
    "ANSWER": 16,
    "CANCEL": 16,
    "NOANSWER": 0,
    "BUSY": 0,
    "CONGESTION": 0,
    "CHANUNAVAIL": 3,
}

# Sound lengths in 8 kHz samples (STREAM FILE's endpos when played to the end). `hello` is the
# recorded 18786; the others are long enough for the recorded interrupt/hangup positions.
DEFAULT_SOUNDS: Final[Mapping[str, int]] = {
    "hello": 18786,
    "agent": 40000,
    "beep": 2000,
}
# Length for any other sound name not listed as missing.
_DEFAULT_SOUND_SAMPLES: Final = 16000
# Where playback stood when the recorded key press (`5`, ~1.1 s in) interrupted it.
_INTERRUPT_ENDPOS: Final = 9120
# Where playback stood when the recorded caller hung up (~3 s in).
_HANGUP_ENDPOS: Final = 24160
# res_agi's GET DATA default when no max digits is given.
_GET_DATA_DEFAULT_MAX: Final = 1024
# Longest command line Asterisk reads (AGI_BUF_LEN); longer lines end the peer's session.
_MAX_COMMAND_LINE: Final = 2048

_DEAD_511: Final = b"511 Command Not Permitted on a dead channel or intercept routine\n"
_UNKNOWN_510: Final = b"510 Invalid or unknown command\n"
_USAGE_HEAD: Final = b"520-Invalid command syntax.  Proper usage follows:\n"
_USAGE_TAIL: Final = b"520 End of proper usage.\n"
_USAGE: Final[Mapping[str, tuple[bytes, ...]]] = {
    "GET DATA": (
        b"Stream the given <replaceable>file</replaceable>, and receive DTMF data.\n",
        b"Returns the digits received from the channel at the other end.\n",
    ),
}
_KNOWN_APPS: Final = frozenset(
    {
        "answer",
        "background",
        "dial",
        "goto",
        "log",
        "musiconhold",
        "noop",
        "playback",
        "progress",
        "queue",
        "ringing",
        "set",
        "startmusiconhold",
        "stopmusiconhold",
        "verbose",
        "wait",
    }
)


@dataclass(frozen=True, slots=True)
class _Spec:
    min_argc: int
    max_argc: int
    dead_ok: bool  # res_agi's `dead` flag: allowed after the channel hung up


# argc counts every word, the command words included, as res_agi does.
_COMMANDS: Final[Mapping[tuple[str, ...], _Spec]] = {
    ("ANSWER",): _Spec(1, 99, False),
    ("CHANNEL", "STATUS"): _Spec(2, 3, False),
    ("DATABASE", "DEL"): _Spec(4, 4, True),
    ("DATABASE", "DELTREE"): _Spec(3, 4, True),
    ("DATABASE", "GET"): _Spec(4, 4, True),
    ("DATABASE", "PUT"): _Spec(5, 5, True),
    ("EXEC",): _Spec(2, 99, True),
    ("GET", "DATA"): _Spec(3, 5, False),
    ("GET", "FULL", "VARIABLE"): _Spec(4, 5, True),
    ("GET", "VARIABLE"): _Spec(3, 3, True),
    ("HANGUP",): _Spec(1, 2, False),
    ("NOOP",): _Spec(1, 99, True),
    ("RECORD", "FILE"): _Spec(6, 9, False),
    ("SAY", "DIGITS"): _Spec(4, 4, False),
    ("SAY", "NUMBER"): _Spec(4, 5, False),
    ("SET", "AUTOHANGUP"): _Spec(3, 3, False),
    ("SET", "CALLERID"): _Spec(3, 3, False),
    ("SET", "CONTEXT"): _Spec(3, 3, False),
    ("SET", "EXTENSION"): _Spec(3, 3, False),
    ("SET", "MUSIC"): _Spec(3, 4, False),
    ("SET", "PRIORITY"): _Spec(3, 3, False),
    ("SET", "VARIABLE"): _Spec(4, 4, True),
    ("STREAM", "FILE"): _Spec(4, 5, False),
    ("VERBOSE",): _Spec(2, 3, True),
    ("WAIT", "FOR", "DIGIT"): _Spec(4, 4, False),
}
_VAR_REF: Final = re.compile(r"\$\{([^${}]*)\}")


def environment_bytes(
    *,
    uniqueid: str,
    channel: str,
    network_script: str = "inbound",
    request: str | None = None,
    args: Sequence[str] = (),
    callerid: str = "+390212345678",
    calleridname: str = "Mario Rossi",
    context: str = "ivr-test",
    extension: str = "s",
    priority: int = 3,
    threadid: str = "140462535284416",
    language: str = "en",
    channel_type: str = "Local",
    version: str = "22.10.1",
    dnid: str = "unknown",
    rdnis: str = "unknown",
    accountcode: str = "",
    callingpres: int = 0,
    callingani2: int = 0,
    callington: int = 0,
    callingtns: int = 0,
    host: str = "127.0.0.1",
    port: int = 4573,
) -> bytes:
    """The environment Asterisk 22 sends, in its order, ending with the empty line.

    `network_script` is what follows the host in the AGI() URL (query included, no leading `/`);
    `args` become `agi_arg_1..N` (AGI() arguments after the URL, split on commas by Asterisk).
    """
    if request is None:
        request = f"agi://{host}:{port}/{network_script}"
    fields: list[tuple[str, str]] = [
        ("network", "yes"),
        ("network_script", network_script),
        ("request", request),
        ("channel", channel),
        ("language", language),
        ("type", channel_type),
        ("uniqueid", uniqueid),
        ("version", version),
        ("callerid", callerid),
        ("calleridname", calleridname),
        ("callingpres", str(callingpres)),
        ("callingani2", str(callingani2)),
        ("callington", str(callington)),
        ("callingtns", str(callingtns)),
        ("dnid", dnid),
        ("rdnis", rdnis),
        ("context", context),
        ("extension", extension),
        ("priority", str(priority)),
        ("enhanced", "0.0"),
        ("accountcode", accountcode),
        ("threadid", threadid),
    ]
    fields.extend((f"arg_{i}", value) for i, value in enumerate(args, start=1))
    out = bytearray()
    for name, value in fields:
        if "\n" in value or "\r" in value:
            raise ValueError(f"agi_{name} holds a line break")
        out += f"agi_{name}: {value}\n".encode()
    out += b"\n"
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Reply:
    """Asterisk's answer to one command; `hangup` is True when the caller hung up during it (or
    the command was HANGUP): the HANGUP line(s) follow per the peer's mode."""

    lines: tuple[bytes, ...]
    hangup: bool = False


@dataclass(frozen=True, slots=True)
class DialOutcome:
    """How one `EXEC Dial` ends on the caller's channel (`real_dial.txt`).

    `caller_leaves`: the caller's channel goes during the Dial (the caller hangs up, or a
    transfer moves the channel away): Asterisk writes `HANGUP` after the reply and the channel is
    dead from then on. Always true for CANCEL. When the agent answered and then hung up the
    channel stays up: `result=-1` with no HANGUP line, CHANNEL STATUS still 6.
    `up_ms` and `age_ms` (ANSWER only) are the CALLER channel's time since it was answered and
    since it was created, when Dial ended: ANSWEREDTIME(_MS) and DIALEDTIME(_MS). They include
    IVR and queue time; talk time is visible on AMI only (BridgeEnter to BridgeLeave).
    `peer` is the agent's channel (DIALEDPEERNAME), `number` the dialled resource
    (DIALEDPEERNUMBER, `agent101` for `PJSIP/agent101`); both only once answered.
    """

    status: DialStatus
    caller_leaves: bool = False
    up_ms: int | None = None
    age_ms: int | None = None
    peer: str = ""
    number: str = ""
    hangupcause: int | None = None

    def __post_init__(self) -> None:
        if self.status == "ANSWER" and (self.up_ms is None or self.age_ms is None):
            raise ValueError("an answered Dial reports the caller's up time and age")
        if self.status == "CANCEL" and not self.caller_leaves:
            raise ValueError("CANCEL is the caller hanging up while the agent's phone rings")

    def result(self, options: str = "") -> int:
        """EXEC Dial's `200 result=` for Dial's `options`: app_dial returns -1 after a bridge and
        when the caller cancels, 0 when nobody answered; with `g` the agent's hangup returns 0
        (the caller's channel goes on). `t`, what Centralino dials with, changes nothing."""
        if self.status == "ANSWER" and "g" in options and not self.caller_leaves:
            return 0
        return -1 if self.status in ("ANSWER", "CANCEL") else 0

    def variables(self) -> dict[str, str]:
        """The caller channel's Dial variables once Dial returned."""
        out = dict.fromkeys(DIAL_VARIABLES, "")
        out["DIALSTATUS"] = self.status
        if self.status == "ANSWER":
            assert self.up_ms is not None and self.age_ms is not None
            out.update(
                DIALEDPEERNUMBER=self.number,
                DIALEDPEERNAME=self.peer,
                ANSWEREDTIME=str(self.up_ms // 1000),
                ANSWEREDTIME_MS=str(self.up_ms),
                DIALEDTIME=str(self.age_ms // 1000),
                DIALEDTIME_MS=str(self.age_ms),
            )
        cause = self.hangupcause
        out["HANGUPCAUSE"] = str(_DIAL_HANGUPCAUSE[self.status] if cause is None else cause)
        return out


def _line(text: str) -> bytes:
    return (text + "\n").encode()


class ChannelModel:
    """What Asterisk answers on one channel, as a pure state machine (no I/O, no clock).

    `keys` scripts the caller's key presses: command index (0-based, in arrival order) → the keys
    pressed while that command runs (`"5"`, `"42"`, `"9#"`). `dials` scripts how an `EXEC Dial`
    at that index ends; an unscripted Dial finds no registered phone (CHANUNAVAIL, `result=0`),
    or is CANCELled when the caller hangs up during it. `hangup_during` is the index of the
    command during which the caller hangs up. `missing_sounds` are sound names that do not exist.
    """

    def __init__(
        self,
        *,
        callerid: str = "+390212345678",
        calleridname: str = "Mario Rossi",
        variables: Mapping[str, str] | None = None,
        keys: Mapping[int, str] | None = None,
        dials: Mapping[int, DialOutcome] | None = None,
        hangup_during: int | None = None,
        sounds: Mapping[str, int] | None = None,
        missing_sounds: frozenset[str] = frozenset({"no-such-file"}),
        answered: bool = True,
    ) -> None:
        self.callerid = callerid
        self.calleridname = calleridname
        self.variables: dict[str, str] = dict(variables or {})
        self.database: dict[tuple[str, str], str] = {}
        self.keys = dict(keys or {})
        self.dials = dict(dials or {})
        self.hangup_during = hangup_during
        self.sounds = dict(DEFAULT_SOUNDS if sounds is None else sounds)
        self.missing_sounds = missing_sounds
        self.answered = answered
        self.alive = True
        self.commands_seen = 0

    def hang_up(self) -> None:
        """The caller hangs up now (between commands)."""
        self.alive = False

    def handle(self, line: str) -> Reply:
        """Answer one command line (without its newline)."""
        index = self.commands_seen
        self.commands_seen += 1
        words = parse_command(line)
        match = _match(words)
        if match is None:
            return Reply((_UNKNOWN_510,))
        name, spec = match
        if not self.alive and not spec.dead_ok:
            return Reply((_DEAD_511,))
        argc = len(words)
        if not spec.min_argc <= argc <= spec.max_argc:
            key = " ".join(name)
            return Reply((_USAGE_HEAD, *_USAGE.get(key, (_line(f"Usage: {key}"),)), _USAGE_TAIL))
        args = words[len(name) :]
        keys = self.keys.get(index, "")
        hangup_now = self.alive and index == self.hangup_during
        lines, hung_up = self._run(" ".join(name), args, keys, hangup_now)
        if hangup_now or hung_up:
            self.alive = False
        return Reply(tuple(_line(text) for text in lines), hangup=hangup_now or hung_up)

    def _run(
        self, name: str, args: tuple[str, ...], keys: str, hangup_now: bool
    ) -> tuple[list[str], bool]:
        if name == "STREAM FILE":
            return [self._stream_file(args[0], args[1], keys, hangup_now)], False
        if name == "GET DATA":
            if hangup_now:
                return ["200 result=-1"], False
            maximum = int(args[2]) if len(args) > 2 and args[2].isdigit() else 0
            return [_get_data(keys, maximum or _GET_DATA_DEFAULT_MAX)], False
        if name == "WAIT FOR DIGIT":
            if hangup_now:
                return ["200 result=-1"], False
            return [f"200 result={ord(keys[0]) if keys else 0}"], False
        if name in ("SAY NUMBER", "SAY DIGITS"):
            if hangup_now:
                return ["200 result=-1"], False
            pressed = next((k for k in keys if k in args[1]), None)
            return [f"200 result={ord(pressed) if pressed else 0}"], False
        if name == "RECORD FILE":
            if hangup_now:
                return ["200 result=-1 (hangup) endpos=0"], False
            pressed = next((k for k in keys if k in args[2]), None)
            if pressed:
                return [f"200 result={ord(pressed)} (dtmf) endpos=0"], False
            return ["200 result=0 (timeout) endpos=0"], False
        if name == "EXEC":
            return self._exec(args, hangup_now)
        if name == "HANGUP":
            return ["200 result=1"], True
        if name == "ANSWER":
            self.answered = True
            return ["200 result=0"], False
        if name == "CHANNEL STATUS":
            return [f"200 result={6 if self.answered else 4}"], False
        if name == "GET VARIABLE":
            value = self._variable(args[0])
            return [f"200 result=1 ({value})" if value is not None else "200 result=0"], False
        if name == "GET FULL VARIABLE":
            return [f"200 result=1 ({self._expand(args[0])})"], False
        if name == "SET VARIABLE":
            self.variables[args[0]] = args[1]
            return ["200 result=1"], False
        if name == "DATABASE PUT":
            self.database[(args[0], args[1])] = args[2]
            return ["200 result=1"], False
        if name == "DATABASE GET":
            stored = self.database.get((args[0], args[1]))
            return [f"200 result=1 ({stored})" if stored is not None else "200 result=0"], False
        if name == "DATABASE DEL":
            existed = self.database.pop((args[0], args[1]), None) is not None
            return [f"200 result={1 if existed else 0}"], False
        if name == "DATABASE DELTREE":
            for key in [k for k in self.database if k[0] == args[0]]:
                del self.database[key]
            return ["200 result=1"], False
        if name in ("VERBOSE", "SET CALLERID"):
            return ["200 result=1"], False
        # ANSWER-like no-ops: NOOP, SET CONTEXT/EXTENSION/PRIORITY/MUSIC/AUTOHANGUP.
        return ["200 result=0"], False

    def _stream_file(self, sound: str, escape: str, keys: str, hangup_now: bool) -> str:
        if sound in self.missing_sounds:
            return "200 result=-1 endpos=0"
        length = self.sounds.get(sound, _DEFAULT_SOUND_SAMPLES)
        if hangup_now:
            return f"200 result=-1 endpos={min(length, _HANGUP_ENDPOS)}"
        pressed = next((k for k in keys if k in escape), None)
        if pressed:
            return f"200 result={ord(pressed)} endpos={min(length, _INTERRUPT_ENDPOS)}"
        return f"200 result=0 endpos={length}"

    def _exec(self, args: tuple[str, ...], hangup_now: bool) -> tuple[list[str], bool]:
        app = args[0].lower()
        if app == "dial" and self.alive:
            return self._dial(args, hangup_now, self.commands_seen - 1)
        if app not in _KNOWN_APPS and app != "hangup":
            return ["200 result=-2"], False
        if hangup_now:
            return ["200 result=-1"], False
        if app == "hangup":
            return ["200 result=-1"], True
        if app == "set" and len(args) > 1 and "=" in args[1]:
            name, _, value = args[1].partition("=")
            self.variables[name] = value
        return ["200 result=0"], False

    def _dial(self, args: tuple[str, ...], hangup_now: bool, index: int) -> tuple[list[str], bool]:
        outcome = self.dials.get(index)
        if outcome is None:
            outcome = DialOutcome("CANCEL", caller_leaves=True) if hangup_now else _UNREGISTERED
        if hangup_now and not outcome.caller_leaves:
            outcome = replace(outcome, caller_leaves=True)  # the scripted hangup wins
        variables = outcome.variables()
        if outcome.status == "ANSWER" and not outcome.number:
            variables["DIALEDPEERNUMBER"] = _dialled_resource(args[1] if len(args) > 1 else "")
        self.variables.update(variables)
        data = args[1].split(",") if len(args) > 1 else []
        options = data[2] if len(data) > 2 else ""
        return [f"200 result={outcome.result(options)}"], outcome.caller_leaves

    def _variable(self, name: str) -> str | None:
        if name == "CALLERID(num)":
            return self.callerid
        if name == "CALLERID(name)":
            return self.calleridname
        if name == "CALLERID(all)":
            return f'"{self.calleridname}" <{self.callerid}>'
        return self.variables.get(name)

    def _expand(self, expression: str) -> str:
        return _VAR_REF.sub(lambda m: self._variable(m.group(1)) or "", expression)


# A Dial nobody scripted: the agent's phone is not registered (PJSIP endpoint, no contact).
_UNREGISTERED: Final = DialOutcome("CHANUNAVAIL")


def _dialled_resource(data: str) -> str:
    """DIALEDPEERNUMBER for Dial's data: the first target without its technology
    (`PJSIP/agent101,20` → `agent101`, `Local/hangs@agents,20` → `hangs@agents`)."""
    target = data.split(",", 1)[0].split("&", 1)[0]
    return target.split("/", 1)[1] if "/" in target else target


def _match(words: tuple[str, ...]) -> tuple[tuple[str, ...], _Spec] | None:
    upper = tuple(w.upper() for w in words[:3])
    for size in (3, 2, 1):
        key = upper[:size]
        if len(key) == size and key in _COMMANDS:
            return key, _COMMANDS[key]
    return None


def _get_data(keys: str, maximum: int) -> str:
    """GET DATA's reply: digits as text; `#` ends input (dropped); short input times out."""
    digits, _, rest = keys.partition("#")
    if rest or keys.endswith("#"):
        return f"200 result={digits[:maximum]}"
    if len(digits) >= maximum:
        return f"200 result={digits[:maximum]}"
    return f"200 result={digits} (timeout)"


CommandHook = Callable[[str, ChannelModel], Awaitable[None]]


class AgiPeer:
    """Plays one Asterisk channel against a FastAGI server.

    `hangup_after` (with `hangup_delay_s`) makes the caller hang up while the server is idle:
    `hangup_delay_s` after the reply to that command (-1: after the environment) unless another
    command is running by then. Hangups during a command are scripted on the `model`
    (`hangup_during`). Everything received and sent is recorded.

    `on_command(line, model)`, if given, runs before the model answers each command: it is how
    a load run or the demo makes commands take real time (a STREAM FILE lasts as long as its
    sound, a Dial rings and talks) and decides what a Dial does
    (`model.dials[model.commands_seen] = DialOutcome(...)`) or that the caller hangs up during
    this command (`model.hangup_during = model.commands_seen`).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        environment: bytes,
        model: ChannelModel | None = None,
        mode: HangupMode = "default",
        hangup_after: int | None = None,
        hangup_delay_s: float = 0.0,
        hangup_line_delay_s: float = 0.04,
        read_timeout_s: float = 10.0,
        on_command: CommandHook | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.environment = environment
        self.model = model or ChannelModel()
        self.mode = mode
        self.hangup_after = hangup_after
        self.hangup_delay_s = hangup_delay_s
        self.hangup_line_delay_s = hangup_line_delay_s
        self.read_timeout_s = read_timeout_s
        self.on_command = on_command
        self.commands: list[str] = []
        self.received = bytearray()
        self.sent = bytearray()
        self.closed_by: Literal["server", "peer", "timeout"] | None = None
        self.hangup_lines_sent = 0

    async def run(self) -> None:
        """Connect, play the call until the server closes (or the peer does), then return."""
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection(
            self.host, self.port, limit=_MAX_COMMAND_LINE
        )
        try:
            self._write(writer, self.environment)
            deadline: float | None = None
            if self.hangup_after == -1:
                deadline = loop.time() + self.hangup_delay_s
            while True:
                wait_s = self.read_timeout_s
                if deadline is not None:
                    wait_s = max(0.0, deadline - loop.time())
                try:
                    async with asyncio.timeout(wait_s):
                        line = await reader.readline()
                except TimeoutError:
                    if deadline is None:
                        self.closed_by = "timeout"
                        return
                    deadline = None
                    self.model.hang_up()
                    if await self._send_hangup(writer):
                        return
                    continue
                except ValueError:  # a line longer than Asterisk's AGI_BUF_LEN
                    self.closed_by = "peer"
                    return
                except ConnectionError:  # the server reset the connection
                    self.closed_by = "server"
                    return
                if not line.endswith(b"\n"):
                    self.closed_by = "server"
                    return
                self.received += line
                text = line[:-1].decode("utf-8", "replace")
                self.commands.append(text)
                if self.on_command is not None:
                    await self.on_command(text, self.model)
                reply = self.model.handle(text)
                for reply_line in reply.lines:
                    self._write(writer, reply_line)
                if reply.hangup:
                    deadline = None
                    if self.mode != "no_sighup":
                        # Asterisk notices the hangup on its next loop turn, ~40 ms later.
                        await asyncio.sleep(self.hangup_line_delay_s)
                    if await self._send_hangup(writer):
                        return
                elif self.hangup_after is not None and len(self.commands) - 1 == self.hangup_after:
                    deadline = loop.time() + self.hangup_delay_s
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _send_hangup(self, writer: asyncio.StreamWriter) -> bool:
        """Send the HANGUP line(s) for the mode; True when the peer closes the socket."""
        if self.mode == "no_sighup":
            return False
        self._write(writer, b"HANGUP\n")
        self.hangup_lines_sent += 1
        if self.mode == "exit_on_hangup":
            # AGIEXITONHANGUP=yes: run_agi leaves its loop and sends HANGUP once more, then closes.
            self._write(writer, b"HANGUP\n")
            self.hangup_lines_sent += 1
            await writer.drain()
            self.closed_by = "peer"
            return True
        return False

    def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if writer.is_closing():
            return
        writer.write(data)
        self.sent += data
