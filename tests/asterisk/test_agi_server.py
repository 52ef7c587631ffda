"""FastAGI server end to end: calls driven by the Asterisk peer, hangups, bad input, shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from centralino.asterisk.agi import LocalProtocolError
from centralino.asterisk.agi_server import (
    ENVIRONMENT_TIMEOUT_S,
    MAX_CONNECTIONS,
    AgiCall,
    AgiDeadChannel,
    AgiRouter,
    AgiSession,
    FastAgiServer,
)
from centralino.simulator.agi_peer import AgiPeer, ChannelModel, HangupMode, environment_bytes
from ivr.errors import CallHandedBack, ChannelCommandError, ChannelHungUp
from ivr.ports import Channel, DigitInput
from tests.helpers import eventually

Handler = Callable[[AgiCall], Awaitable[None]]
ENV = environment_bytes(
    uniqueid="1795365745.0",
    channel="Local/s@caller-sim-00000000;1",
    network_script="inbound?lang=it",
    args=("foo=bar",),
)


class Recorder:
    """What the flow saw, step by step, and how it ended."""

    def __init__(self) -> None:
        self.steps: list[object] = []
        self.ended_with: BaseException | None = None
        self.done = asyncio.Event()


@pytest.fixture
async def router() -> AgiRouter:
    return AgiRouter()


@pytest.fixture
async def server(router: AgiRouter) -> AsyncIterator[FastAgiServer]:
    srv = FastAgiServer(
        router=router, port=0, idle_timeout_s=2.0, grace_s=0.5, timeout_resolution_s=0.05
    )
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def peer(server: FastAgiServer, **kwargs: object) -> AgiPeer:
    model = kwargs.pop("model", None)
    mode = kwargs.pop("mode", "default")
    assert model is None or isinstance(model, ChannelModel)
    return AgiPeer(
        host="127.0.0.1",
        port=server.port,
        environment=ENV,
        model=model,
        mode=mode,  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def recording(rec: Recorder, flow: Callable[[AgiCall], Awaitable[None]]) -> Handler:
    async def handler(call: AgiCall) -> None:
        try:
            await flow(call)
        except BaseException as exc:
            rec.ended_with = exc
            raise
        finally:
            rec.done.set()

    return handler


async def raw_exchange(server: FastAgiServer, data: bytes, *, close: bool = False) -> bytes:
    """Send raw bytes, optionally half-close, and return everything until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(data)
        if close:
            writer.write_eof()
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        writer.close()


# ---- a full call ------------------------------------------------------------------------------


async def test_given_a_call_when_flow_uses_every_channel_method_then_commands_and_results_match(
    server: FastAgiServer, router: AgiRouter
) -> None:
    rec = Recorder()

    async def flow(call: AgiCall) -> None:
        ch: Channel = call.channel  # the session satisfies the IVR port
        rec.steps += [ch.uniqueid, dict(call.query), call.env.args, call.env.script]
        await ch.answer()
        rec.steps.append(await ch.get_variable("CALLERID(num)"))
        rec.steps.append(await ch.get_variable("NONEXISTENT_VAR"))
        await ch.set_variable("FOO", "bar baz")
        rec.steps.append(await ch.get_variable("FOO"))
        rec.steps.append(await ch.stream_file("hello", "0123456789#*"))
        rec.steps.append(await ch.stream_file("hello"))
        rec.steps.append(await ch.stream_file("no-such-file"))  # missing: probe says alive
        rec.steps.append(await ch.get_data("hello", 2000, 4))
        rec.steps.append(await ch.get_data("hello", 2000, 4))
        rec.steps.append(await ch.get_data("hello", 2000, 4))
        rec.steps.append(await ch.get_data("hello", 1000, 4))
        await ch.say_number(1234)
        await ch.say_digits("42")
        rec.steps.append(await ch.wait_for_digit(500))
        rec.steps.append(await ch.wait_for_digit(3000))
        rec.steps.append(await ch.exec("MusicOnHold", "default", "2"))
        rec.steps.append(await ch.exec("NoSuchApplication", "foo"))
        await ch.set_music(True)
        await ch.set_music(False)
        await ch.verbose("hi")
        rec.steps.append(await call.channel.get_full_variable("${CALLERID(all)}"))
        await ch.hangup()

    router.add("inbound", recording(rec, flow))
    keys = {5: "5", 9: "42", 10: "1234", 11: "9#", 16: "7"}  # index 8 is the probe
    p = peer(server, model=ChannelModel(keys=keys))
    await p.run()
    assert rec.ended_with is None
    assert rec.steps == [
        "1795365745.0",
        {"lang": "it"},
        ("foo=bar",),
        "inbound",
        "+390212345678",
        None,
        "bar baz",
        "5",
        None,
        None,
        DigitInput("42", timed_out=True),
        DigitInput("1234", timed_out=False),
        DigitInput("9", timed_out=False),
        DigitInput("", timed_out=True),
        None,
        "7",
        0,
        -2,
        '"Mario Rossi" <+390212345678>',
    ]
    assert p.commands == [
        "ANSWER",
        "GET VARIABLE CALLERID(num)",
        "GET VARIABLE NONEXISTENT_VAR",
        'SET VARIABLE FOO "bar baz"',
        "GET VARIABLE FOO",
        'STREAM FILE hello "0123456789#*"',
        'STREAM FILE hello ""',
        'STREAM FILE no-such-file ""',
        "CHANNEL STATUS",
        "GET DATA hello 2000 4",
        "GET DATA hello 2000 4",
        "GET DATA hello 2000 4",
        "GET DATA hello 1000 4",
        'SAY NUMBER 1234 ""',
        'SAY DIGITS 42 ""',
        "WAIT FOR DIGIT 500",
        "WAIT FOR DIGIT 3000",
        "EXEC MusicOnHold default,2",
        "EXEC NoSuchApplication foo",
        "SET MUSIC ON default",
        "SET MUSIC OFF",
        'VERBOSE "hi" 1',
        "GET FULL VARIABLE ${CALLERID(all)}",
        "HANGUP",
    ]
    assert p.closed_by == "server"
    assert server.calls_total == 1
    assert server.commands_total == len(p.commands)
    await eventually(lambda: _assert_equal(server.calls_active, 0))


def _assert_equal(a: object, b: object) -> None:
    assert a == b


async def test_given_asterisk_errors_then_510_520_raise_command_error_and_call_goes_on(
    server: FastAgiServer, router: AgiRouter
) -> None:
    rec = Recorder()

    async def flow(call: AgiCall) -> None:
        for command in ("FOO BAR", "GET DATA"):
            try:
                await call.channel.command(command)
            except ChannelCommandError as exc:
                rec.steps.append((exc.code, exc.message))
        with pytest.raises(LocalProtocolError):
            await call.channel.set_variable("X", "line\nbreak")
        await call.channel.verbose("still usable")

    router.add("inbound", recording(rec, flow))
    p = peer(server)
    await p.run()
    assert rec.ended_with is None
    assert rec.steps == [
        (510, "Invalid or unknown command"),
        (520, "Invalid command syntax.  Proper usage follows:"),
    ]
    assert p.commands == ["FOO BAR", "GET DATA", 'VERBOSE "still usable" 1']
    assert b"line" not in bytes(p.received)


# ---- hangups -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["default", "exit_on_hangup", "no_sighup"])
async def test_given_caller_hangs_up_mid_stream_then_flow_sees_hangup_and_nothing_more_is_sent(
    server: FastAgiServer, router: AgiRouter, mode: HangupMode
) -> None:
    rec = Recorder()

    async def flow(call: AgiCall) -> None:
        await call.channel.answer()
        await call.channel.stream_file("agent")
        rec.steps.append("after stream")  # must not happen
        await call.channel.verbose("never sent")

    router.add("inbound", recording(rec, flow))
    p = peer(server, model=ChannelModel(hangup_during=1), mode=mode)
    await p.run()
    async with asyncio.timeout(5):
        await rec.done.wait()
    assert isinstance(rec.ended_with, ChannelHungUp)
    assert rec.steps == []
    if mode == "exit_on_hangup":
        # Asterisk closed at once: the probe may or may not have been read before the close.
        assert p.commands[:2] == ["ANSWER", 'STREAM FILE agent ""']
        assert p.commands[2:] in ([], ["CHANNEL STATUS"])
        assert p.closed_by == "peer"
    else:
        assert p.commands == ["ANSWER", 'STREAM FILE agent ""', "CHANNEL STATUS"]
        assert p.closed_by == "server"
    if mode == "no_sighup":
        # no HANGUP line: the CHANNEL STATUS probe's 511 told us
        dead = rec.ended_with.__cause__
        assert isinstance(dead, AgiDeadChannel) and isinstance(dead, ChannelCommandError)
        assert dead.code == 511
    await eventually(lambda: _assert_equal(server.calls_active, 0))


async def test_given_hangup_during_get_data_then_channel_hung_up(
    server: FastAgiServer, router: AgiRouter
) -> None:
    rec = Recorder()

    async def flow(call: AgiCall) -> None:
        await call.channel.get_data("beep", 10000, 4)

    router.add("inbound", recording(rec, flow))
    p = peer(server, model=ChannelModel(hangup_during=0))
    await p.run()
    assert isinstance(rec.ended_with, ChannelHungUp)
    assert p.commands == ["GET DATA beep 10000 4", "CHANNEL STATUS"]


@pytest.mark.parametrize(
    "after_hangup",
    [
        b"",  # the reply never comes and the socket stays open
        b"200 result=-1 endpos=24160\n",  # it does come, right after
        b"511 Command Not Permitted on a dead channel or intercept routine\n",
    ],
    ids=["no reply", "late 200", "late 511"],
)
async def test_given_hangup_line_while_a_command_is_outstanding_then_flow_ends_at_once(
    server: FastAgiServer,
    router: AgiRouter,
    caplog: pytest.LogCaptureFixture,
    after_hangup: bytes,
) -> None:
    """HANGUP crossed STREAM FILE on the wire. Before, the flow waited for the reply up to the
    media timeout (hours); now it sees ChannelHungUp at once and a late reply is no error. The
    simulator peer only sends HANGUP after a reply, so raw bytes play Asterisk here."""
    rec = Recorder()

    async def flow(call: AgiCall) -> None:
        await call.channel.answer()
        await call.channel.stream_file("agent")
        rec.steps.append("after stream")  # must not happen

    router.add("inbound", recording(rec, flow))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        with caplog.at_level(logging.WARNING, logger="centralino.asterisk.agi_server"):
            writer.write(ENV)
            async with asyncio.timeout(5):
                assert await reader.readline() == b"ANSWER\n"
                writer.write(b"200 result=0\n")
                assert await reader.readline() == b'STREAM FILE agent ""\n'
                writer.write(b"HANGUP\n" + after_hangup)
                await rec.done.wait()
                assert await reader.read() == b""  # the server closed, nothing more sent
    finally:
        writer.close()
    assert isinstance(rec.ended_with, ChannelHungUp)
    assert "STREAM FILE" in str(rec.ended_with)
    assert rec.steps == []
    assert server.protocol_errors_total == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    await eventually(lambda: _assert_equal(server.calls_active, 0))


async def test_given_caller_hangs_up_while_flow_is_idle_then_next_command_is_never_sent(
    server: FastAgiServer, router: AgiRouter
) -> None:
    rec = Recorder()
    sessions: list[AgiSession] = []
    resume = asyncio.Event()

    async def flow(call: AgiCall) -> None:
        sessions.append(call.channel)
        await call.channel.answer()
        await resume.wait()  # e.g. waiting on the CRM
        await call.channel.stream_file("hello")

    router.add("inbound", recording(rec, flow))
    p = peer(server, hangup_after=0, hangup_delay_s=0.05)
    running = asyncio.create_task(p.run())
    await eventually(lambda: _assert_equal(bool(sessions) and sessions[0].hung_up, True))
    resume.set()
    await asyncio.wait_for(running, 5)
    assert isinstance(rec.ended_with, ChannelHungUp)
    assert p.commands == ["ANSWER"]
    assert p.hangup_lines_sent == 1


async def test_given_our_own_hangup_then_no_command_follows(
    server: FastAgiServer, router: AgiRouter
) -> None:
    rec = Recorder()

    async def flow(call: AgiCall) -> None:
        await call.channel.hangup()
        with pytest.raises(ChannelHungUp):
            await call.channel.verbose("too late")

    router.add("inbound", recording(rec, flow))
    p = peer(server)
    await p.run()
    assert rec.ended_with is None
    assert p.commands == ["HANGUP"]


# ---- routing and failures -----------------------------------------------------------------------


async def test_given_unknown_script_then_status_variable_set_and_call_returned(
    server: FastAgiServer, router: AgiRouter, caplog: pytest.LogCaptureFixture
) -> None:
    router.add("other", recording(Recorder(), lambda call: call.channel.answer()))
    p = peer(server)
    with caplog.at_level(logging.WARNING, logger="centralino.asterisk.agi_server"):
        await p.run()
    assert p.commands == ["SET VARIABLE CENTRALINO_STATUS NOROUTE"]
    assert p.model.variables["CENTRALINO_STATUS"] == "NOROUTE"
    assert p.closed_by == "server"
    assert any("no FastAGI route" in r.getMessage() for r in caplog.records)


async def test_given_failing_handler_then_error_status_and_server_keeps_serving(
    server: FastAgiServer, router: AgiRouter
) -> None:
    calls = 0

    async def flow(call: AgiCall) -> None:
        nonlocal calls
        calls += 1
        await call.channel.answer()
        if calls == 1:
            raise RuntimeError("bug in the flow")

    router.add("inbound", flow)
    first = peer(server)
    await first.run()
    assert first.commands == ["ANSWER", "SET VARIABLE CENTRALINO_STATUS ERROR"]
    second = peer(server)
    await second.run()
    assert second.commands == ["ANSWER"]
    assert server.calls_total == 2


def test_given_router_then_duplicates_and_queries_are_refused() -> None:
    router = AgiRouter()

    async def flow(call: AgiCall) -> None:
        return None

    router.add("/inbound", flow)
    assert router.lookup("inbound") is flow
    assert router.lookup("/inbound/") is flow
    assert router.lookup("outbound") is None
    assert router.scripts == ("inbound",)
    with pytest.raises(ValueError, match="already"):
        router.add("inbound", flow)
    with pytest.raises(ValueError, match="bare"):
        router.add("inbound?x=1", flow)


# ---- bad input ---------------------------------------------------------------------------------

BAD_INPUTS = {
    "malformed environment": (b"agi_network: yes\nthis is not agi\n\n", False),
    "truncated environment then disconnect": (ENV[: len(ENV) // 2], True),
    "no blank line then disconnect": (ENV[:-1], True),
    "100 KB line without newline": (b"agi_network: " + b"y" * 100_000, False),
    "binary garbage": (bytes(range(256)) * 4, False),
    "garbage instead of a reply": (b"\xff\x00garbage\n", False),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
async def test_given_bad_input_then_connection_closed_logged_and_others_unaffected(
    server: FastAgiServer, router: AgiRouter, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    gate = asyncio.Event()
    rec = Recorder()

    async def good_flow(call: AgiCall) -> None:
        await call.channel.answer()
        await gate.wait()  # the good call spans the bad connection
        await call.channel.verbose("still fine")

    good_handler = recording(rec, good_flow)

    async def flow(call: AgiCall) -> None:
        if call.env.uniqueid == "good":
            await good_handler(call)
        else:
            await call.channel.answer()

    router.add("inbound", flow)
    good = AgiPeer(
        host="127.0.0.1",
        port=server.port,
        environment=environment_bytes(uniqueid="good", channel="Local/good;1"),
    )
    good_run = asyncio.create_task(good.run())
    await eventually(lambda: _assert_equal(good.commands, ["ANSWER"]))
    data, close = BAD_INPUTS[name]
    with caplog.at_level(logging.WARNING, logger="centralino.asterisk.agi_server"):
        if name == "garbage instead of a reply":
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(ENV)
            async with asyncio.timeout(5):
                assert await reader.readline() == b"ANSWER\n"
                writer.write(data)
                leftover = await reader.read()
            writer.close()
        else:
            leftover = await raw_exchange(server, data, close=close)
        gate.set()
        await asyncio.wait_for(good_run, 5)
    assert good.commands == ["ANSWER", 'VERBOSE "still fine" 1']
    assert rec.ended_with is None
    assert leftover == b""  # closed, nothing sent (not even a status: the peer is not Asterisk)
    assert server.protocol_errors_total == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("protocol error from 127.0.0.1:" in w for w in warnings), warnings
    # and the server still accepts new calls
    after = peer(server)
    await after.run()
    assert after.commands == ["ANSWER"]


async def test_given_disconnect_mid_command_then_call_ends_as_hangup(
    server: FastAgiServer, router: AgiRouter
) -> None:
    rec = Recorder()

    async def flow(call: AgiCall) -> None:
        await call.channel.stream_file("hello")

    router.add("inbound", recording(rec, flow))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(ENV)
    async with asyncio.timeout(5):
        assert await reader.readline() == b'STREAM FILE hello ""\n'
    writer.write(b"200 resu")  # half a reply, then gone
    writer.close()
    async with asyncio.timeout(5):
        await rec.done.wait()
    assert isinstance(rec.ended_with, ChannelHungUp)
    await eventually(lambda: _assert_equal(server.protocol_errors_total, 1))


async def test_given_environment_not_finished_in_time_then_closed_before_the_idle_timeout(
    server: FastAgiServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.idle_timeout_s = 30.0  # the reply timeout no longer bounds the environment
    server.environment_timeout_s = 0.2
    with caplog.at_level(logging.WARNING, logger="centralino.asterisk.agi_server"):
        assert await raw_exchange(server, b"agi_network: yes\n") == b""
    assert any("no complete FastAGI environment" in r.getMessage() for r in caplog.records)


def test_given_defaults_then_environment_deadline_is_short_and_its_own() -> None:
    server = FastAgiServer(router=AgiRouter())
    assert server.environment_timeout_s == ENVIRONMENT_TIMEOUT_S == 5.0
    assert server.environment_timeout_s < server.idle_timeout_s
    assert server.max_connections == MAX_CONNECTIONS
    with pytest.raises(ValueError, match="max_connections"):
        FastAgiServer(router=AgiRouter(), max_connections=0)


async def test_given_connect_and_close_without_data_then_no_protocol_error_nor_warning(
    server: FastAgiServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A TCP health check (load balancer, monitoring) connects and closes at once."""
    with caplog.at_level(logging.DEBUG, logger="centralino.asterisk.agi_server"):
        assert await raw_exchange(server, b"", close=True) == b""
        await eventually(lambda: _assert_equal(len(server._connections), 0))
    assert server.protocol_errors_total == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("closed before any data" in r.getMessage() for r in caplog.records)


async def _refused(server: FastAgiServer) -> bytes:
    """Connect to a server at its cap: the connection is closed (maybe reset) at once."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(ENV)
        async with asyncio.timeout(5):
            try:
                return await reader.read()
            except ConnectionResetError:
                return b""
    finally:
        writer.close()


async def test_given_max_connections_reached_then_new_ones_closed_until_below(
    router: AgiRouter, caplog: pytest.LogCaptureFixture
) -> None:
    router.add("inbound", lambda call: call.channel.answer())
    async with FastAgiServer(router=router, port=0, max_connections=2) as server:
        held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
        await eventually(lambda: _assert_equal(len(server._connections), 2))
        with caplog.at_level(logging.INFO, logger="centralino.asterisk.agi_server"):
            assert await _refused(server) == b""
            assert await _refused(server) == b""
            assert server.connections_refused_total == 2
            warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
            assert len(warnings) == 1 and "cap of 2 connections" in warnings[0], warnings
            # a held connection goes: below the cap, new calls are served again
            held[0][1].close()
            await eventually(lambda: _assert_equal(len(server._connections), 1))
            after = peer(server)
            await asyncio.wait_for(after.run(), 5)
        assert after.commands == ["ANSWER"]
        assert any("2 refused meanwhile" in r.getMessage() for r in caplog.records)
        assert server.protocol_errors_total == 0
        held[1][1].close()


async def test_given_asterisk_never_replies_then_flow_sees_hangup_after_idle_timeout(
    server: FastAgiServer, router: AgiRouter
) -> None:
    rec = Recorder()
    server.idle_timeout_s = 0.2

    async def flow(call: AgiCall) -> None:
        await call.channel.get_variable("X")

    router.add("inbound", recording(rec, flow))
    leftover = await raw_exchange(server, ENV)
    assert leftover == b"GET VARIABLE X\n"
    assert isinstance(rec.ended_with, ChannelHungUp)


# ---- shutdown ----------------------------------------------------------------------------------


async def test_given_stop_then_every_call_is_handed_back_with_shutdown(
    router: AgiRouter, caplog: pytest.LogCaptureFixture
) -> None:
    """A call whose flow sends another command is handed back at that command (its flow sees
    CallHandedBack); one that never sends again is cancelled after the grace period. Both
    leave with CENTRALINO_STATUS=SHUTDOWN, so the dialplan's fallback answers them."""
    server = FastAgiServer(router=router, port=0, grace_s=0.3, timeout_resolution_s=0.05)
    await server.start()
    quick_gate = asyncio.Event()
    stuck = Recorder()
    quick = Recorder()

    async def flow(call: AgiCall) -> None:
        await call.channel.answer()
        if call.env.uniqueid == "quick":
            await quick_gate.wait()
            try:
                await call.channel.verbose("finished")
            except CallHandedBack as exc:
                quick.ended_with = exc
                raise
        else:
            try:
                await asyncio.Event().wait()  # never finishes on its own
            except asyncio.CancelledError:
                stuck.ended_with = asyncio.CancelledError()
                raise

    router.add("inbound", flow)
    peers = {
        uid: AgiPeer(
            host="127.0.0.1",
            port=server.port,
            environment=environment_bytes(uniqueid=uid, channel=f"Local/{uid};1"),
        )
        for uid in ("quick", "stuck")
    }
    runs = [asyncio.create_task(p.run()) for p in peers.values()]
    await eventually(lambda: _assert_equal(server.calls_active, 2))
    with caplog.at_level(logging.WARNING, logger="centralino.asterisk.agi_server"):
        stopping = asyncio.create_task(server.stop())
        await asyncio.sleep(0)
        quick_gate.set()
        await asyncio.wait_for(stopping, 5)
    await asyncio.wait_for(asyncio.gather(*runs), 5)
    assert peers["quick"].commands == ["ANSWER", "SET VARIABLE CENTRALINO_STATUS SHUTDOWN"]
    assert isinstance(quick.ended_with, CallHandedBack)
    assert peers["stuck"].commands == ["ANSWER", "SET VARIABLE CENTRALINO_STATUS SHUTDOWN"]
    assert isinstance(stuck.ended_with, asyncio.CancelledError)
    assert any("1 call(s) still running" in r.getMessage() for r in caplog.records)
    # no longer accepting
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", peers["quick"].port)


async def test_given_a_command_running_at_stop_then_shutdown_follows_its_reply(
    router: AgiRouter,
) -> None:
    """The defect seen on a real Asterisk: SIGTERM while the hold loop's WAIT FOR DIGIT was
    outstanding never set SHUTDOWN (a command may not be sent while another one runs), so the
    caller was not handed back and was logged as abandoned. Now the reply comes, the flow's
    next command is refused, and SHUTDOWN is said well within the grace period."""
    server = FastAgiServer(router=router, port=0, grace_s=5.0, timeout_resolution_s=0.05)
    await server.start()
    waiting = asyncio.Event()
    seen: list[str] = []

    async def hold(call: AgiCall) -> None:
        await call.channel.answer()
        while True:
            waiting.set()
            try:
                await call.channel.wait_for_digit(300)
            except CallHandedBack:
                seen.append("handed back")
                raise

    async def slow_wait(line: str, model: object) -> None:
        if line.startswith("WAIT FOR DIGIT"):
            await asyncio.sleep(0.3)  # the digit wait runs its course on Asterisk's side

    router.add("inbound", hold)
    peer = AgiPeer(
        host="127.0.0.1",
        port=server.port,
        environment=environment_bytes(uniqueid="held", channel="Local/held;1"),
        on_command=slow_wait,
    )
    run = asyncio.create_task(peer.run())
    await asyncio.wait_for(waiting.wait(), 5)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(server.stop(), 5)
    took = asyncio.get_running_loop().time() - started
    await asyncio.wait_for(run, 5)

    assert peer.commands[-1] == "SET VARIABLE CENTRALINO_STATUS SHUTDOWN"
    assert seen == ["handed back"]
    assert took < 2.0  # a poll's length, not the 5 s grace


class _AgentHangsUpFirst(ChannelModel):
    """Dial returns -1 when the called party (the agent) hangs up: its normal end on a real
    Asterisk (the dialplan would hang the caller up next). Playback's -1 is a failure."""

    def _exec(self, args: tuple[str, ...], hangup_now: bool) -> tuple[list[str], bool]:
        if args[0] in ("Dial", "Playback"):
            return ["200 result=-1"], False
        return super()._exec(args, hangup_now)


async def test_given_dial_returns_minus_one_on_a_live_channel_then_no_warning(
    router: AgiRouter, caplog: pytest.LogCaptureFixture
) -> None:
    results: list[int] = []

    async def flow(call: AgiCall) -> None:
        results.append(await call.channel.exec("Dial", "Local/101@agents", "20"))
        results.append(await call.channel.exec("Playback", "no-such-file"))

    router.add("inbound", flow)
    async with FastAgiServer(router=router, port=0) as server:
        peer = AgiPeer(
            host="127.0.0.1",
            port=server.port,
            environment=environment_bytes(uniqueid="dial", channel="Local/dial;1"),
            model=_AgentHangsUpFirst(),
        )
        with caplog.at_level(logging.WARNING, logger="centralino.asterisk.agi_server"):
            await asyncio.wait_for(peer.run(), 5)

    assert results == [-1, -1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["EXEC Playback failed (result=-1) on a live channel"]
