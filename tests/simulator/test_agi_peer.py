"""The FastAGI peer reproduces the recorded Asterisk 22 traffic byte for byte where it is
deterministic: the environment, every reply, the HANGUP lines and who closes the socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from centralino.asterisk.agi import AgiEnvironment, AgiServerConnection
from centralino.simulator.agi_peer import AgiPeer, ChannelModel, HangupMode, environment_bytes
from centralino.simulator.transcripts import Transcript, load_transcript, load_transcripts

SESSION = load_transcript("fastagi-session.txt", "main")
HANGUPS = {t.scenario: t for t in load_transcripts("fastagi-hangup.txt")}
ALL = [SESSION, *HANGUPS.values()]
# Keys pressed in fastagi-session.txt, by command index (PlayDTMF during that command).
SESSION_KEYS = {7: "5", 10: "42", 11: "1234", 12: "9#", 17: "7", 19: "#"}


def recorded_environment(transcript: Transcript) -> AgiEnvironment:
    conn = AgiServerConnection()
    conn.receive_data(transcript.environment)
    env = conn.next_event()
    assert isinstance(env, AgiEnvironment)
    return env


def environment_like(transcript: Transcript) -> bytes:
    env = recorded_environment(transcript)
    return environment_bytes(
        uniqueid=env.uniqueid,
        channel=env.channel,
        network_script=env.network_script,
        args=env.args,
        extension=env.extension,
        threadid=env.threadid,
    )


@pytest.mark.parametrize("transcript", ALL, ids=[t.scenario for t in ALL])
def test_given_recorded_values_then_environment_is_byte_identical(transcript: Transcript) -> None:
    assert environment_like(transcript) == transcript.environment


def test_given_environment_values_with_line_breaks_then_refused() -> None:
    with pytest.raises(ValueError, match="line break"):
        environment_bytes(uniqueid="1.1", channel="Local/x;1", callerid="+39\n02")


def test_given_session_commands_then_model_replies_exactly_as_asterisk() -> None:
    model = ChannelModel(keys=SESSION_KEYS)
    for command, recorded in SESSION.exchanges():
        assert command is not None
        reply = model.handle(command.decode()[:-1])
        produced = list(reply.lines) + ([b"HANGUP\n"] if reply.hangup else [])
        assert produced == list(recorded), command


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("GET DATA hello 2000 4", b"200 result= (timeout)\n"),
        ("get variable CALLERID(name)", b"200 result=1 (Mario Rossi)\n"),
        ("DATABASE DEL fam key", b"200 result=0\n"),
        ("EXEC Dial PJSIP/101,20", b"200 result=0\n"),
        ("SET VARIABLE ONLYNAME", b"520-Invalid command syntax.  Proper usage follows:\n"),
        ("SPEAK GIBBERISH", b"510 Invalid or unknown command\n"),
        ('SAY NUMBER 5 "5"', b"200 result=0\n"),
    ],
)
def test_given_other_commands_then_model_answers_like_res_agi(line: str, expected: bytes) -> None:
    assert ChannelModel().handle(line).lines[0] == expected


def test_given_dead_channel_then_only_dead_safe_commands_run() -> None:
    model = ChannelModel(variables={"FOO": "bar"})
    model.hang_up()
    replies = {
        line: model.handle(line).lines[0]
        for line in (
            "GET VARIABLE FOO",
            'VERBOSE "x" 1',
            "CHANNEL STATUS",
            'STREAM FILE a ""',
            "WAIT FOR DIGIT 100",
            "HANGUP",
            "FOO BAR",
            "EXEC Wait 1",
        )
    }
    dead = b"511 Command Not Permitted on a dead channel or intercept routine\n"
    assert replies == {
        "GET VARIABLE FOO": b"200 result=1 (bar)\n",
        'VERBOSE "x" 1': b"200 result=1\n",
        "CHANNEL STATUS": dead,
        'STREAM FILE a ""': dead,
        "WAIT FOR DIGIT 100": dead,
        "HANGUP": dead,
        "FOO BAR": b"510 Invalid or unknown command\n",
        "EXEC Wait 1": b"200 result=0\n",
    }


# ---- over TCP: a server that replays the recorded FastAGI side ----------------------------------


@dataclass
class Replay:
    """A FastAGI server that sends the transcript's commands and checks the peer's answers."""

    transcript: Transcript
    mismatches: list[str] = field(default_factory=list)
    got_eof: bool = False
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                env = await reader.readuntil(b"\n\n")
                if env != self.transcript.environment:
                    self.mismatches.append(f"environment {env!r}")
                for command, expected in self.transcript.exchanges():
                    assert command is not None
                    if not writer.is_closing():
                        writer.write(command)
                    for want in expected:
                        got = await reader.readline()
                        if got != want:
                            self.mismatches.append(f"after {command!r}: {got!r} != {want!r}")
                self.got_eof = await reader.read() == b"" if self.eof_expected else False
        except ConnectionError as exc:
            if self.eof_expected:
                self.got_eof = True  # as recorded: writes after Asterisk's close fail
            else:
                self.mismatches.append(f"connection: {exc!r}")
        except asyncio.IncompleteReadError as exc:
            self.mismatches.append(f"connection: {exc!r}")
        finally:
            writer.close()
            self.finished.set()

    @property
    def eof_expected(self) -> bool:
        return self.transcript.scenario == "hangup_exitonhangup"


@pytest.fixture
async def replay_server() -> AsyncIterator[tuple[list[Replay], int]]:
    replays: list[Replay] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await replays[0].handle(reader, writer)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    try:
        yield replays, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


SCENARIOS: dict[str, dict[str, object]] = {
    "main": {"model": ChannelModel(keys=SESSION_KEYS)},
    "hangup_stream": {"model": ChannelModel(hangup_during=1)},
    "hangup_idle": {"hangup_after": 0, "hangup_delay_s": 0.05},
    "hangup_getdata": {"model": ChannelModel(hangup_during=1)},
    "hangup_exec": {"model": ChannelModel(hangup_during=1)},
    "hangup_exitonhangup": {"model": ChannelModel(hangup_during=1), "mode": "exit_on_hangup"},
    "hangup_nosighup": {"model": ChannelModel(hangup_during=1), "mode": "no_sighup"},
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_given_recorded_server_side_then_peer_answers_byte_for_byte(
    replay_server: tuple[list[Replay], int], scenario: str
) -> None:
    transcript = SESSION if scenario == "main" else HANGUPS[scenario]
    replays, port = replay_server
    replay = Replay(transcript)
    replays.append(replay)
    options = dict(SCENARIOS[scenario])
    model = options.pop("model", None)
    mode: HangupMode = options.pop("mode", "default")  # type: ignore[assignment]
    assert model is None or isinstance(model, ChannelModel)
    peer = AgiPeer(
        host="127.0.0.1",
        port=port,
        environment=environment_like(transcript),
        model=model,
        mode=mode,
        hangup_after=options.get("hangup_after"),  # type: ignore[arg-type]
        hangup_delay_s=options.get("hangup_delay_s", 0.0),  # type: ignore[arg-type]
    )
    await asyncio.wait_for(peer.run(), 10)
    await asyncio.wait_for(replay.finished.wait(), 10)
    assert replay.mismatches == []
    # what the peer sent is exactly Asterisk's side of the transcript
    assert bytes(peer.sent) == b"".join(transcript.from_asterisk)
    if scenario == "hangup_exitonhangup":
        assert peer.closed_by == "peer" and replay.got_eof
        assert peer.hangup_lines_sent == 2
    else:
        assert peer.closed_by == "server"  # Asterisk never closes first (fact 8)
    received = list(transcript.from_server)[: len(peer.commands)]
    assert [c.decode()[:-1] for c in received] == peer.commands
