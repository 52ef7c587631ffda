"""EXEC Dial as a real Asterisk 22.10.1 does it (`fixtures/real_dial.txt`), then the simulator
held to it: the FastAGI model byte for byte, and the call centre's Dial (timing semantics and AMI
event order) on a live run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from centralino.simulator.agi_peer import ChannelModel, DialOutcome
from centralino.simulator.ami_server import AmiServer
from centralino.simulator.callcenter import AgentPhone, Caller, CallSimulator
from tests.simulator.real_dial import DialCase, load_cases

CASES = load_cases()
ANSWERED = ("a", "a-ivr6", "a-t", "a-g", "b")
NOT_ANSWERED = ("c", "d-busy", "d-congestion", "e-local", "e-pjsip", "f")
DEAD_511 = b"511 Command Not Permitted on a dead channel or intercept routine\n"


def _ms(reply: bytes) -> int:
    return int(reply.decode().split("(", 1)[1].rstrip(")\n"))


def _agent_leg(case: DialCase) -> str:
    return case.first("DialBegin", Channel=case.caller).headers["DestChannel"]


# ---- what the real server did (the fixture's own facts) ---------------------------------------


@pytest.mark.parametrize(
    ("case", "reply", "status", "hangup_line"),
    [
        ("a", b"200 result=-1\n", "ANSWER", False),
        ("a-ivr6", b"200 result=-1\n", "ANSWER", False),
        ("a-t", b"200 result=-1\n", "ANSWER", False),
        ("a-g", b"200 result=0\n", "ANSWER", False),
        ("b", b"200 result=-1\n", "ANSWER", True),
        ("c", b"200 result=0\n", "NOANSWER", False),
        ("d-busy", b"200 result=0\n", "BUSY", False),
        ("d-congestion", b"200 result=0\n", "CONGESTION", False),
        ("e-local", b"200 result=0\n", "CHANUNAVAIL", False),
        ("e-pjsip", b"200 result=0\n", "CHANUNAVAIL", False),
        ("f", b"200 result=-1\n", "CANCEL", True),
    ],
)
def test_given_real_dial_then_result_status_and_hangup_line_per_case(
    case: str, reply: bytes, status: str, hangup_line: bool
) -> None:
    real = CASES[case]
    dial = dict(real.exchanges())[real.sent(b"EXEC Dial").data]
    assert dial[0] == reply
    assert real.variable("DIALSTATUS") == f"200 result=1 ({status})\n".encode()
    assert (b"HANGUP\n" in dial) is hangup_line
    # -1 alone is no hangup: only a HANGUP line says the caller's channel is gone.
    status_reply = dict(real.exchanges())[b"CHANNEL STATUS\n"][0]
    assert status_reply == (DEAD_511 if hangup_line else b"200 result=6\n")


@pytest.mark.parametrize("case", ["b", "f"])
def test_given_caller_hangs_up_during_dial_then_hangup_line_follows_the_reply(case: str) -> None:
    real = CASES[case]
    reply = real.reply_to(b"EXEC Dial")
    hangup = next(x for x in real.agi if x.data == b"HANGUP\n")
    assert reply.data == b"200 result=-1\n"
    assert 0.030 <= hangup.t - reply.t <= 0.060  # 42-43 ms measured
    # the socket stayed open: GET VARIABLE still answered, and our server closed first
    assert real.variable("DIALSTATUS").startswith(b"200 result=1 (")
    assert "closes the socket" in real.notes[-2].text


@pytest.mark.parametrize("case", ANSWERED)
def test_given_real_answered_dial_then_times_are_the_caller_channels_up_time_and_age(
    case: str,
) -> None:
    real = CASES[case]
    returned = real.reply_to(b"EXEC Dial").t
    created = real.first("Newchannel", Channel=real.caller).t
    answered = real.first("Newstate", Channel=real.caller, ChannelStateDesc="Up").t
    bridged = real.first("BridgeEnter", Channel=real.caller).t
    unbridged = real.first("BridgeLeave", Channel=real.caller).t
    dial_begin = real.first("DialBegin", Channel=real.caller).t
    answered_ms = _ms(real.variable("ANSWEREDTIME_MS"))
    dialed_ms = _ms(real.variable("DIALEDTIME_MS"))

    assert abs(answered_ms - (returned - answered) * 1000) <= 5
    assert abs(dialed_ms - (returned - created) * 1000) <= 5
    assert real.variable("ANSWEREDTIME") == f"200 result=1 ({answered_ms // 1000})\n".encode()
    assert real.variable("DIALEDTIME") == f"200 result=1 ({dialed_ms // 1000})\n".encode()
    # neither is the talk (~3.5 s) nor Dial's own ring + talk (~5.5 s)
    talk_ms = (unbridged - bridged) * 1000
    assert 3400 <= talk_ms <= 3600
    assert answered_ms > (returned - dial_begin) * 1000 + 1500


def test_given_longer_ivr_then_only_answeredtime_and_dialedtime_grow() -> None:
    short, long = CASES["a"], CASES["a-ivr6"]

    def figures(real: DialCase) -> tuple[float, float, int, int]:
        ring = real.first("DialEnd", Channel=real.caller).t - real.first("DialBegin").t
        talk = (
            real.first("BridgeLeave", Channel=real.caller).t
            - real.first("BridgeEnter", Channel=real.caller).t
        )
        return (
            ring,
            talk,
            _ms(real.variable("ANSWEREDTIME_MS")),
            _ms(real.variable("DIALEDTIME_MS")),
        )

    ring_a, talk_a, up_a, age_a = figures(short)
    ring_b, talk_b, up_b, age_b = figures(long)
    assert abs(ring_a - ring_b) < 0.01 and abs(talk_a - talk_b) < 0.01
    assert abs(up_b - up_a - 4000) <= 10 and abs(age_b - age_a - 4000) <= 10


@pytest.mark.parametrize("case", NOT_ANSWERED)
def test_given_real_unanswered_dial_then_time_variables_are_set_but_empty(case: str) -> None:
    real = CASES[case]
    for name in ("ANSWEREDTIME", "ANSWEREDTIME_MS", "DIALEDTIME", "DIALEDTIME_MS"):
        assert real.variable(name) == b"200 result=1 ()\n", name


@pytest.mark.parametrize("case", list(CASES))
def test_given_real_dial_then_callers_hangup_and_h_come_only_after_the_socket_closes(
    case: str,
) -> None:
    real = CASES[case]
    closed = real.note("closes the socket").t
    hangup = real.first("Hangup", Channel=real.caller)
    h_exten = real.first("UserEvent", UserEvent="HExten")
    assert closed <= hangup.t <= closed + 0.005
    assert closed <= h_exten.t <= hangup.t
    assert hangup.headers["Cause"] == ("3" if case == "e-pjsip" else "16")
    # on a live channel the dialplan goes on after AGI() first; after a hangup only h runs
    after = [e for e in real.ami if e.event == "UserEvent" and e.headers["UserEvent"] == "AfterAGI"]
    assert bool(after) is (case not in ("b", "f"))


@pytest.mark.parametrize("case", ["e-local", "e-pjsip"])
def test_given_real_chanunavail_then_no_dial_events_at_all(case: str) -> None:
    real = CASES[case]
    assert not [e for e in real.ami if e.event.startswith("Dial") and e.channel == real.caller]


# ---- the FastAGI model, byte for byte -------------------------------------------------------


def _outcome(case: str) -> DialOutcome | None:
    real = CASES[case]
    if case in ANSWERED:
        return DialOutcome(
            "ANSWER",
            caller_leaves=case == "b",
            up_ms=_ms(real.variable("ANSWEREDTIME_MS")),
            age_ms=_ms(real.variable("DIALEDTIME_MS")),
            peer=real.variable("DIALEDPEERNAME").decode()[len("200 result=1 (") : -2],
        )
    return {
        "c": DialOutcome("NOANSWER"),
        "d-busy": DialOutcome("BUSY"),
        "d-congestion": DialOutcome("CONGESTION"),
        "e-local": DialOutcome("CHANUNAVAIL", hangupcause=0),
    }.get(case)  # e-pjsip: unscripted (no registered phone); f: the caller's hangup cancels


@pytest.mark.parametrize("case", list(CASES))
def test_given_recorded_commands_then_model_replies_exactly_as_the_real_dial(case: str) -> None:
    real = CASES[case]
    exchanges = real.exchanges()
    dial_index = next(i for i, (c, _) in enumerate(exchanges) if c.startswith(b"EXEC Dial"))
    outcome = _outcome(case)
    model = ChannelModel(
        callerid="+390212345678",
        dials={} if outcome is None else {dial_index: outcome},
        hangup_during=dial_index if case == "f" else None,
    )
    for command, recorded in exchanges:
        reply = model.handle(command.decode()[:-1])
        produced = list(reply.lines) + ([b"HANGUP\n"] if reply.hangup else [])
        assert produced == list(recorded), command


def test_given_unscripted_dial_then_no_registered_phone() -> None:
    model = ChannelModel()
    assert model.handle("EXEC Dial PJSIP/agent101,20").lines == (b"200 result=0\n",)
    assert model.variables["DIALSTATUS"] == "CHANUNAVAIL"
    assert model.variables["ANSWEREDTIME"] == "" and model.variables["HANGUPCAUSE"] == "3"
    assert model.alive


def test_given_answer_without_times_then_outcome_refused() -> None:
    with pytest.raises(ValueError, match="up time"):
        DialOutcome("ANSWER")
    with pytest.raises(ValueError, match="CANCEL"):
        DialOutcome("CANCEL")


# ---- the call centre's Dial against the fixture ----------------------------------------------

TIME_SCALE = 0.05
RING_S, TALK_S = 2.0, 3.0
VARIABLES = (
    "DIALSTATUS",
    "ANSWEREDTIME",
    "ANSWEREDTIME_MS",
    "DIALEDTIME",
    "DIALEDTIME_MS",
    "HANGUPCAUSE",
)
# Compared with the fixture: the caller's and the agent's channel (Dial's own leg), not the
# Local ;2 halves, VarSet, AGIExec* or what the dialplan's own Hangup() adds (SoftHangupRequest).
_KINDS = frozenset(
    {
        "Newchannel",
        "Newstate",
        "DialBegin",
        "DialState",
        "DialEnd",
        "BridgeCreate",
        "BridgeEnter",
        "BridgeLeave",
        "BridgeDestroy",
        "HangupRequest",
        "Hangup",
    }
)


class RecordingAmi(AmiServer):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[float, dict[str, str]]] = []

    def emit_packet(self, headers: Sequence[tuple[str, str]]) -> None:
        self.events.append((time.monotonic(), dict(headers)))
        super().emit_packet(headers)


@dataclass
class ScriptedServer:
    """A FastAGI server doing what the recording's did: answer, a prompt (the IVR), Dial, read
    the Dial variables and CHANNEL STATUS, close."""

    timeout_s: int = 20
    lines: list[tuple[float, bytes, bytes]] = field(default_factory=list)  # (t, sent, received)
    answered_at: float = 0.0
    dial_returned_at: float = 0.0
    closed_at: float = 0.0
    dial_reply: tuple[bytes, ...] = ()
    replies: dict[str, bytes] = field(default_factory=dict)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def command(text: str) -> bytes:
            writer.write(text.encode() + b"\n")
            return await reader.readline()

        await reader.readuntil(b"\n\n")
        await command("ANSWER")
        self.answered_at = time.monotonic()
        await command('STREAM FILE hello ""')
        dial = [await command(f"EXEC Dial PJSIP/agent101,{self.timeout_s}")]
        self.dial_returned_at = time.monotonic()
        try:
            async with asyncio.timeout(0.2):
                dial.append(await reader.readline())
        except TimeoutError:
            pass
        self.dial_reply = tuple(dial)
        for name in VARIABLES:
            self.replies[name] = await command(f"GET VARIABLE {name}")
        self.replies["CHANNEL STATUS"] = await command("CHANNEL STATUS")
        self.closed_at = time.monotonic()
        writer.close()


@pytest.fixture
async def fastagi() -> AsyncIterator[tuple[ScriptedServer, int]]:
    script = ScriptedServer()
    server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
    try:
        yield script, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


PHONES = {
    "a": AgentPhone(answer_probability=1.0, ring_s=(RING_S, RING_S), talk_s=(TALK_S, TALK_S)),
    "c": AgentPhone(answer_probability=0.0),
    "d-busy": AgentPhone(busy_probability=1.0),
    "e-pjsip": AgentPhone(registered=False),
}
PHONES["b"] = PHONES["a"]


async def _simulate(
    script: ScriptedServer, port: int, *, phone: AgentPhone, caller_hangs_up: bool = False
) -> tuple[RecordingAmi, str]:
    ami = RecordingAmi()
    simulator = CallSimulator(
        agi_host="127.0.0.1",
        agi_port=port,
        rng=np.random.default_rng(1),
        phones={"agent101": phone},
        ami=ami,
        time_scale=TIME_SCALE,
    )
    if phone.answer_probability == 0.0:
        script.timeout_s = 2
    caller = Caller(number="+390212345678", name="Mario Rossi", hangs_up_first=caller_hangs_up)
    started = time.monotonic()
    result = await asyncio.wait_for(simulator.call(caller), 10)
    ami.events.insert(0, (started, {"Event": "(call start)"}))
    return ami, result.uniqueid


def _real_sequence(real: DialCase) -> list[tuple[str, str, str]]:
    agent = _agent_leg(real) if real.name not in ("e-local", "e-pjsip") else "(none)"
    since = real.sent(b"EXEC Dial").t
    roles = {real.caller: "caller", agent: "agent"}
    out = []
    for e in real.ami:
        if e.t < since or e.event not in _KINDS:
            continue
        if e.event.startswith("Dial"):
            out.append((e.event, "caller", e.headers.get("DialStatus", "")))
        elif e.event in ("BridgeCreate", "BridgeDestroy"):
            out.append((e.event, "", ""))
        elif e.channel in roles:
            detail = e.headers.get("Cause") or e.headers.get("ChannelStateDesc", "")
            out.append((e.event, roles[e.channel], detail))
    return out


def _sim_sequence(ami: RecordingAmi, caller_channel: str) -> list[tuple[str, str, str]]:
    out = []
    for _, h in ami.events:
        event = h["Event"]
        if event not in _KINDS:
            continue
        if event.startswith("Dial"):
            assert h["Channel"] == caller_channel
            out.append((event, "caller", h.get("DialStatus", "")))
        elif event in ("BridgeCreate", "BridgeDestroy"):
            out.append((event, "", ""))
        else:
            role = "caller" if h["Channel"] == caller_channel else "agent"
            assert role == "caller" or h["Channel"].startswith("PJSIP/agent101-")
            detail = h.get("Cause") or (
                h.get("ChannelStateDesc", "") if event == "Newstate" else ""
            )
            out.append((event, role, detail))
    return out


@pytest.mark.parametrize("case", list(PHONES))
async def test_given_simulated_dial_then_fastagi_and_ami_match_the_real_case(
    fastagi: tuple[ScriptedServer, int], case: str
) -> None:
    script, port = fastagi
    real = CASES[case]
    ami, uniqueid = await _simulate(script, port, phone=PHONES[case], caller_hangs_up=case == "b")

    real_dial = dict(real.exchanges())[real.sent(b"EXEC Dial").data]
    assert script.dial_reply == real_dial
    assert script.replies["DIALSTATUS"] == real.variable("DIALSTATUS")
    assert script.replies["CHANNEL STATUS"] == dict(real.exchanges())[b"CHANNEL STATUS\n"][0]
    caller_channel = f"PJSIP/trunk-{uniqueid.replace('.', '')}"
    # the fixture's Newchannel/Newstate for the agent's leg are kept with the Channel only
    expected = [
        (event, role, "" if event == "Newchannel" else detail)
        for event, role, detail in _real_sequence(real)
    ]
    assert _sim_sequence(ami, caller_channel) == expected
    for name in ("HANGUPCAUSE",):
        assert script.replies[name] == real.variable(name)
    hangup_at, hangup = next(
        (t, h) for t, h in ami.events if h["Event"] == "Hangup" and h["Channel"] == caller_channel
    )
    assert hangup_at >= script.closed_at  # the caller's Hangup only once the session closed
    assert hangup["Cause"] == real.first("Hangup", Channel=real.caller).headers["Cause"]


@pytest.mark.parametrize("caller_hangs_up", [False, True])
async def test_given_simulated_answered_dial_then_times_are_caller_up_time_and_age(
    fastagi: tuple[ScriptedServer, int], caller_hangs_up: bool
) -> None:
    script, port = fastagi
    ami, _ = await _simulate(script, port, phone=PHONES["a"], caller_hangs_up=caller_hangs_up)
    started = ami.events[0][0]
    up_ms = _ms(script.replies["ANSWEREDTIME_MS"])
    age_ms = _ms(script.replies["DIALEDTIME_MS"])
    talk_ms = TALK_S * TIME_SCALE * 1000

    assert abs(up_ms - (script.dial_returned_at - script.answered_at) * 1000) <= 30
    assert abs(age_ms - (script.dial_returned_at - started) * 1000) <= 30
    assert up_ms > talk_ms + 0.8 * (RING_S * TIME_SCALE * 1000)  # IVR and ring included
    assert script.replies["ANSWEREDTIME"] == f"200 result=1 ({up_ms // 1000})\n".encode()
    assert script.replies["DIALEDTIME"] == f"200 result=1 ({age_ms // 1000})\n".encode()


async def test_given_simulated_no_answer_then_time_variables_empty(
    fastagi: tuple[ScriptedServer, int],
) -> None:
    script, port = fastagi
    await _simulate(script, port, phone=PHONES["c"])
    real = CASES["c"]
    for name in VARIABLES[1:5]:
        assert script.replies[name] == real.variable(name) == b"200 result=1 ()\n"
