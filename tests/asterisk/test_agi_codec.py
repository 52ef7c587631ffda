"""The sans-I/O FastAGI codec: transcripts as golden fixtures, chunking, limits, garbage."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from centralino.asterisk.agi import (
    MAX_COMMAND_BYTES,
    MAX_ENVIRONMENT_BYTES,
    MAX_ENVIRONMENT_LINES,
    MAX_LINE_BYTES,
    MAX_USAGE_LINES,
    NEED_DATA,
    AgiEnvironment,
    AgiEvent,
    AgiHangup,
    AgiResponse,
    AgiServerConnection,
    ConnectionClosed,
    LocalProtocolError,
    NeedData,
    Quoted,
    RemoteProtocolError,
    encode_command,
    parse_command,
)
from centralino.simulator.transcripts import Transcript, load_transcript, load_transcripts

SESSION = load_transcript("fastagi-session.txt", "main")
HANGUPS = load_transcripts("fastagi-hangup.txt")
ENV = SESSION.environment


def drain(conn: AgiServerConnection) -> list[AgiEvent]:
    events: list[AgiEvent] = []
    while True:
        event = conn.next_event()
        if isinstance(event, NeedData):
            return events
        events.append(event)
        if isinstance(event, ConnectionClosed):
            return events


def feed(conn: AgiServerConnection, data: bytes, *, bytewise: bool = False) -> list[AgiEvent]:
    if not bytewise:
        conn.receive_data(data)
        return drain(conn)
    events: list[AgiEvent] = []
    for i in range(len(data)):
        conn.receive_data(data[i : i + 1])
        events.extend(drain(conn))
    return events


def started() -> AgiServerConnection:
    conn = AgiServerConnection()
    (env,) = feed(conn, ENV)
    assert isinstance(env, AgiEnvironment)
    return conn


def replay(transcript: Transcript, *, bytewise: bool) -> list[AgiEvent]:
    """Feed Asterisk's side of a transcript, sending each recorded command through the codec."""
    conn = AgiServerConnection()
    events = feed(conn, transcript.environment, bytewise=bytewise)
    for command, replies in transcript.exchanges():
        assert command is not None
        if conn.closed:
            break
        words = command.decode()[:-1]
        if conn.can_send:
            conn.send_command(words)
        for reply in replies:
            events.extend(feed(conn, reply, bytewise=bytewise))
    return events


# ---- environment ----------------------------------------------------------------------------


def test_given_recorded_environment_when_parsed_then_every_field_is_typed() -> None:
    conn = AgiServerConnection()
    (env,) = feed(conn, ENV)
    assert isinstance(env, AgiEnvironment)
    assert env.network is True
    assert env.network_script == "inbound?lang=it"
    assert env.request == "agi://127.0.0.1:4573/inbound?lang=it"
    assert env.script == "inbound"
    assert dict(env.query) == {"lang": "it"}
    assert env.args == ("foo=bar",)
    assert env.channel == "Local/s@caller-sim-00000000;1"
    assert env.uniqueid == "1795365745.0"
    assert env.callerid == "+390212345678"
    assert env.calleridname == "Mario Rossi"
    assert (env.callingpres, env.callingani2, env.callington, env.callingtns) == (0, 0, 0, 0)
    assert (env.dnid, env.rdnis) == ("unknown", "unknown")
    assert (env.context, env.extension, env.priority) == ("ivr-test", "s", "3")
    assert env.enhanced is False
    assert env.accountcode == ""
    assert env.threadid == "140462535284416"
    assert env.version == "22.10.1"
    assert env.raw["accountcode"] == "" and env.raw["arg_1"] == "foo=bar"
    assert len(env.raw) == 23


@pytest.mark.parametrize("bytewise", [False, True])
def test_given_environment_with_trailing_reply_then_both_are_parsed(bytewise: bool) -> None:
    conn = AgiServerConnection()
    events = feed(conn, ENV + b"HANGUP\n", bytewise=bytewise)
    assert [type(e) for e in events] == [AgiEnvironment, AgiHangup]


def test_given_query_with_several_pairs_and_escapes_then_query_is_decoded() -> None:
    env = ENV.replace(b"inbound?lang=it\n", b"/inbound/sales?q=a%20b&lang=it&x=\n", 1)
    (parsed,) = feed(AgiServerConnection(), env)
    assert isinstance(parsed, AgiEnvironment)
    assert parsed.script == "inbound/sales"
    assert dict(parsed.query) == {"q": "a b", "lang": "it", "x": ""}


def test_given_args_out_of_many_then_they_keep_their_order() -> None:
    extra = b"".join(f"agi_arg_{i}: v{i}\n".encode() for i in range(2, 12))
    (env,) = feed(AgiServerConnection(), ENV[:-1] + extra + b"\n")
    assert isinstance(env, AgiEnvironment)
    assert env.args == ("foo=bar", *(f"v{i}" for i in range(2, 12)))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\n", "empty environment"),
        (b"agi_network yes\n\n", "malformed"),
        (b"hello: world\n\n", "not an agi_"),
        (b"\x00\x01\x02garbage\xff\xfe\n\n", "not an agi_"),
        (b"agi_Network: yes\n\n", "malformed"),
        (ENV.replace(b"agi_callingpres: 0", b"agi_callingpres: zero"), "not a number"),
        (ENV.replace(b"agi_uniqueid: 1795365745.0\n", b""), "uniqueid"),
    ],
)
def test_given_malformed_environment_then_remote_protocol_error(data: bytes, why: str) -> None:
    conn = AgiServerConnection()
    conn.receive_data(data)
    with pytest.raises(RemoteProtocolError, match=why):
        conn.next_event()
    # the error sticks: the connection is dead
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


@pytest.mark.parametrize("cut", [1, 10, len(ENV) // 2, len(ENV) - 1])
def test_given_truncated_environment_then_eof_is_a_remote_error(cut: int) -> None:
    conn = AgiServerConnection()
    conn.receive_data(ENV[:cut])
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="before the environment ended"):
        conn.next_event()


def test_given_long_line_without_newline_then_rejected_at_the_limit() -> None:
    conn = AgiServerConnection()
    conn.receive_data(b"agi_network: " + b"y" * (MAX_LINE_BYTES - 20))
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"y" * 100_000)
    with pytest.raises(RemoteProtocolError, match="line longer"):
        conn.next_event()


def test_given_environment_over_the_size_limit_then_rejected() -> None:
    conn = AgiServerConnection()
    line = b"agi_arg_1: " + b"x" * 1000 + b"\n"
    conn.receive_data(line * (MAX_ENVIRONMENT_BYTES // len(line) + 1))
    with pytest.raises(RemoteProtocolError, match="larger than"):
        conn.next_event()


def test_given_too_many_environment_lines_then_rejected() -> None:
    conn = AgiServerConnection()
    conn.receive_data(b"agi_x: 1\n" * (MAX_ENVIRONMENT_LINES + 1) + b"\n")
    with pytest.raises(RemoteProtocolError, match="longer than"):
        conn.next_event()


# ---- replies --------------------------------------------------------------------------------


def response(line: bytes) -> AgiResponse:
    conn = started()
    conn.send_command("NOOP")
    (event,) = feed(conn, line)
    assert isinstance(event, AgiResponse)
    assert conn.can_send
    return event


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"200 result=0\n", AgiResponse(200, "0")),
        (b"200 result=1 (bar baz)\n", AgiResponse(200, "1", data="bar baz")),
        (
            b'200 result=1 ("Mario Rossi" <+390212345678>)\n',
            AgiResponse(200, "1", data='"Mario Rossi" <+390212345678>'),
        ),
        (b"200 result=1 (f(x) = (y))\n", AgiResponse(200, "1", data="f(x) = (y)")),
        (b"200 result=53 endpos=9120\n", AgiResponse(200, "53", endpos=9120)),
        (b"200 result=-1 endpos=0\n", AgiResponse(200, "-1", endpos=0)),
        (b"200 result=42 (timeout)\n", AgiResponse(200, "42", data="timeout")),
        (b"200 result= (timeout)\n", AgiResponse(200, "", data="timeout")),
        (b"200 result=0 (timeout) endpos=0\n", AgiResponse(200, "0", data="timeout", endpos=0)),
        (b"200 result=35 (dtmf) endpos=0\n", AgiResponse(200, "35", data="dtmf", endpos=0)),
        (b"200 result=1 ()\n", AgiResponse(200, "1", data="")),
        (
            b"510 Invalid or unknown command\n",
            AgiResponse(510, "", message="Invalid or unknown command"),
        ),
        (
            b"511 Command Not Permitted on a dead channel or intercept routine\n",
            AgiResponse(
                511, "", message="Command Not Permitted on a dead channel or intercept routine"
            ),
        ),
    ],
)
def test_given_reply_forms_then_parsed(line: bytes, expected: AgiResponse) -> None:
    assert response(line) == expected
    # the one-line fast path gives the same answer
    conn = started()
    conn.send_command("NOOP")
    assert conn.receive_reply(line) in (expected, None)


def test_given_520_block_then_one_response_with_usage_lines() -> None:
    block = [replies for command, replies in SESSION.exchanges() if command == b"GET DATA\n"]
    (lines,) = block
    for bytewise in (False, True):
        conn = started()
        conn.send_command("GET DATA")
        events = feed(conn, b"".join(lines), bytewise=bytewise)
        assert events == [
            AgiResponse(
                code=520,
                result="",
                message="Invalid command syntax.  Proper usage follows:",
                usage=(
                    "Stream the given <replaceable>file</replaceable>, and receive DTMF data.",
                    "Returns the digits received from the channel at the other end.",
                ),
            )
        ]


def test_given_520_block_that_never_ends_then_rejected() -> None:
    conn = started()
    conn.send_command("GET DATA")
    conn.receive_data(b"520-Invalid command syntax.\n" + b"usage\n" * (MAX_USAGE_LINES + 1))
    with pytest.raises(RemoteProtocolError, match="usage block"):
        drain(conn)


def test_given_hangup_between_replies_and_twice_then_events_in_order() -> None:
    conn = started()
    conn.send_command("STREAM FILE", "agent", Quoted(""))
    events = feed(conn, b"200 result=-1 endpos=24160\nHANGUP\nHANGUP\n")
    events += feed(conn, b"")
    assert events == [
        AgiResponse(200, "-1", endpos=24160),
        AgiHangup(),
        AgiHangup(),
        ConnectionClosed(),
    ]


def test_given_hangup_while_command_pending_then_reply_still_expected() -> None:
    conn = started()
    conn.send_command("CHANNEL STATUS")
    assert feed(conn, b"HANGUP\n") == [AgiHangup()]
    assert conn.awaiting_reply
    assert feed(conn, b"511 Command Not Permitted on a dead channel\n")[0] == AgiResponse(
        511, "", message="Command Not Permitted on a dead channel"
    )


def _crossed_hangup(transcript: Transcript) -> tuple[bytes, bytes]:
    """From a recorded hangup: the HANGUP line and the reply Asterisk gave to the command the
    server sent next. Sent a moment earlier, that command crosses the HANGUP on the wire."""
    lines = transcript.from_asterisk
    at = lines.index(b"HANGUP\n")
    return lines[at], lines[at + 1]


@pytest.mark.parametrize("scenario", ["hangup_stream", "hangup_idle", "hangup_getdata"])
@pytest.mark.parametrize("bytewise", [False, True])
def test_given_hangup_crossing_a_command_then_its_late_reply_is_consumed_not_an_error(
    scenario: str, bytewise: bool
) -> None:
    hangup, reply = _crossed_hangup(load_transcript("fastagi-hangup.txt", scenario))
    conn = started()
    conn.send_command("CHANNEL STATUS")
    events = feed(conn, hangup + reply, bytewise=bytewise)
    assert events[0] == AgiHangup()
    assert [type(e) for e in events] == [AgiHangup, AgiResponse]
    assert isinstance(events[1], AgiResponse) and str(events[1].code) == reply[:3].decode()
    assert conn.can_send and not conn.closed


def test_given_hangup_crossing_a_command_then_the_fast_path_agrees() -> None:
    conn = started()
    conn.send_command("STREAM FILE", "agent", Quoted(""))
    assert conn.receive_reply(b"HANGUP\n") == AgiHangup()
    assert conn.awaiting_reply  # the reply may still come
    assert conn.receive_reply(b"200 result=-1\n") == AgiResponse(200, "-1")
    assert conn.can_send


def test_given_hangup_crossing_a_command_and_no_reply_ever_then_eof_is_a_clean_close() -> None:
    """AGIEXITONHANGUP=yes (scenario E): HANGUP twice, then Asterisk closes unanswered."""
    conn = started()
    conn.send_command("GET VARIABLE", "CALLERID(num)")
    assert feed(conn, b"HANGUP\nHANGUP\n") == [AgiHangup(), AgiHangup()]
    assert feed(conn, b"") == [ConnectionClosed()]
    assert conn.closed


def test_given_connect_and_close_without_a_byte_then_clean_close_not_an_error() -> None:
    """A TCP health check (a load balancer's connect-and-close) is not a protocol error."""
    conn = AgiServerConnection()
    assert feed(conn, b"") == [ConnectionClosed()]
    assert conn.closed and not conn.can_send
    assert conn.next_event() == ConnectionClosed()
    # one byte is enough to make it a (broken) FastAGI peer
    conn = AgiServerConnection()
    conn.receive_data(b"a")
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="before the environment ended"):
        conn.next_event()


@pytest.mark.parametrize(
    "line",
    [b"hello\n", b"20 result=0\n", b"200result=0\n", b"200 foo=1\n", b"301-x\n", b"\xff\xfe\n"],
)
def test_given_garbage_reply_then_remote_protocol_error(line: bytes) -> None:
    conn = started()
    conn.send_command("NOOP")
    conn.receive_data(line)
    with pytest.raises(RemoteProtocolError):
        drain(conn)


def test_given_reply_with_no_command_outstanding_then_remote_protocol_error() -> None:
    conn = started()
    conn.receive_data(b"200 result=0\n")
    with pytest.raises(RemoteProtocolError, match="no command outstanding"):
        conn.next_event()


def test_given_eof_mid_reply_then_remote_error_and_clean_eof_is_closed() -> None:
    conn = started()
    conn.send_command("NOOP")
    conn.receive_data(b"200 res")
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="middle of a line"):
        drain(conn)
    conn = started()
    conn.send_command("NOOP")
    assert feed(conn, b"") == [ConnectionClosed()]
    assert conn.next_event() == ConnectionClosed()


def test_given_long_reply_line_then_rejected() -> None:
    conn = started()
    conn.send_command("GET VARIABLE", "X")
    conn.receive_data(b"200 result=1 (" + b"x" * 100_000)
    with pytest.raises(RemoteProtocolError, match="line longer"):
        drain(conn)


# ---- transcripts as golden fixtures ----------------------------------------------------------


def expected_session_events() -> list[type]:
    kinds: list[type] = [AgiEnvironment]
    for _, replies in SESSION.exchanges():
        if replies and replies[0].startswith(b"520-"):
            kinds.append(AgiResponse)
            continue
        kinds.extend(AgiHangup if r == b"HANGUP\n" else AgiResponse for r in replies)
    return kinds


@pytest.mark.parametrize("bytewise", [False, True])
def test_given_session_transcript_then_every_reply_is_parsed(bytewise: bool) -> None:
    events = replay(SESSION, bytewise=bytewise)
    assert [type(e) for e in events] == expected_session_events()
    responses = [e for e in events if isinstance(e, AgiResponse)]
    assert len(responses) == 44
    by_command = dict(zip([c for c, _ in SESSION.exchanges()], responses, strict=False))
    assert by_command[b'STREAM FILE hello "0123456789#*"\n'] == AgiResponse(200, "53", endpos=9120)
    assert (
        by_command[b"GET FULL VARIABLE ${CALLERID(all)}\n"].data == '"Mario Rossi" <+390212345678>'
    )
    assert by_command[b"FOO BAR\n"].code == 510
    assert by_command[b"GET DATA\n"].code == 520
    assert by_command[b'RECORD FILE <path>/rec wav "#" 3000 0 s=2\n'] == AgiResponse(
        200, "0", data="timeout", endpos=0
    )
    assert [r.code for r in responses[-4:]] == [200, 511, 511, 200]
    assert responses[-4].data == "bar baz"


@pytest.mark.parametrize("transcript", HANGUPS, ids=[t.scenario for t in HANGUPS])
@pytest.mark.parametrize("bytewise", [False, True])
def test_given_hangup_transcripts_then_events_match(transcript: Transcript, bytewise: bool) -> None:
    events = replay(transcript, bytewise=bytewise)
    hangups = sum(1 for line in transcript.from_asterisk if line == b"HANGUP\n")
    assert sum(isinstance(e, AgiHangup) for e in events) == hangups
    assert isinstance(events[0], AgiEnvironment)
    assert events[0].extension in ("s", "exit", "nosighup")
    replies = [line for line in transcript.from_asterisk[24:] if line != b"HANGUP\n"]
    responses = [e for e in events if isinstance(e, AgiResponse)]
    assert len(responses) == len(replies)
    for line, parsed in zip(replies, responses, strict=True):
        assert str(parsed.code) == line[:3].decode()
    if transcript.scenario in ("hangup_stream", "hangup_exitonhangup", "hangup_nosighup"):
        assert responses[1] == AgiResponse(200, "-1", endpos=24160)


# ---- commands -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "args", "wire"),
    [
        ("ANSWER", (), b"ANSWER\n"),
        ("SET VARIABLE", ("FOO", "bar baz"), b'SET VARIABLE FOO "bar baz"\n'),
        ("STREAM FILE", ("hello", Quoted("0123456789#*")), b'STREAM FILE hello "0123456789#*"\n'),
        ("STREAM FILE", ("hello", ""), b'STREAM FILE hello ""\n'),
        ("VERBOSE", (Quoted("hi"), "1"), b'VERBOSE "hi" 1\n'),
        ("EXEC", ("Set", "MYVAR=hello,world"), b"EXEC Set MYVAR=hello,world\n"),
        ("GET FULL VARIABLE", ("${CALLERID(all)}",), b"GET FULL VARIABLE ${CALLERID(all)}\n"),
        ("SET VARIABLE", ("Q", 'say "hi"\\'), b'SET VARIABLE Q "say \\"hi\\"\\\\"\n'),
        ("SET VARIABLE", ("T", "a\tb"), b'SET VARIABLE T "a\tb"\n'),
    ],
)
def test_given_commands_then_encoded_like_the_transcripts(
    command: str, args: tuple[str | Quoted, ...], wire: bytes
) -> None:
    assert encode_command(command, *args) == wire


def test_given_every_recorded_command_then_encoding_round_trips() -> None:
    forced = {b'STREAM FILE hello "0123456789#*"\n', b'VERBOSE "hi" 1\n'}
    for command in SESSION.from_server:
        if b"<path>" in command or command in forced:
            continue
        words = parse_command(command.decode()[:-1])
        assert encode_command(words[0], *words[1:]) == command


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "\n", "x\x00y"])
def test_given_cr_or_lf_in_a_value_then_local_error_and_nothing_encoded(bad: str) -> None:
    conn = started()
    with pytest.raises(LocalProtocolError):
        conn.send_command("SET VARIABLE", "X", bad)
    with pytest.raises(LocalProtocolError):
        conn.send_command("VERBOSE", Quoted(bad), "1")
    with pytest.raises(LocalProtocolError):
        conn.send_command("GET VARIABLE\n", "X")
    assert conn.can_send  # the failed attempts did not change state


def test_given_misuse_then_local_protocol_error() -> None:
    conn = AgiServerConnection()
    with pytest.raises(LocalProtocolError, match="ENVIRONMENT"):
        conn.send_command("ANSWER")
    conn = started()
    conn.send_command("ANSWER")
    with pytest.raises(LocalProtocolError, match="AWAITING_REPLY"):
        conn.send_command("ANSWER")
    with pytest.raises(LocalProtocolError, match="longer than"):
        encode_command("VERBOSE", "x" * MAX_COMMAND_BYTES)
    with pytest.raises(LocalProtocolError, match="words"):
        encode_command("NOOP", *(["x"] * 200))
    conn = started()
    conn.receive_data(b"")
    with pytest.raises(LocalProtocolError, match="after EOF"):
        conn.receive_data(b"x")


# ---- properties -----------------------------------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(
        categories=("L", "M", "N", "P", "S", "Z", "Cc", "Cf", "Co"), blacklist_characters="\r\n\x00"
    ),
    max_size=30,
)


@given(st.lists(_TEXT, min_size=1, max_size=8))
def test_property_any_arguments_survive_asterisk_parsing(args: list[str]) -> None:
    wire = encode_command("SET VARIABLE", *args)
    assert wire.endswith(b"\n") and wire.count(b"\n") == 1
    assert parse_command(wire.decode()[:-1]) == ("SET", "VARIABLE", *args)


@given(st.binary(max_size=600), st.integers(min_value=1, max_value=64))
@settings(max_examples=300)
def test_property_any_bytes_parse_or_raise_our_protocol_error(data: bytes, chunk: int) -> None:
    for prefix in (b"", ENV):
        conn = AgiServerConnection()
        stream = prefix + data
        try:
            for i in range(0, len(stream), chunk):
                conn.receive_data(stream[i : i + chunk])
                drain(conn)
                if conn.can_send:
                    conn.send_command("NOOP")
            conn.receive_data(b"")
            drain(conn)
        except RemoteProtocolError:
            pass


@given(st.binary(max_size=200))
def test_property_fast_path_agrees_with_general_path(line: bytes) -> None:
    data = line.replace(b"\n", b"") + b"\n"
    fast = started()
    fast.send_command("NOOP")
    quick = fast.receive_reply(data)
    slow = started()
    slow.send_command("NOOP")
    slow.receive_data(data)
    try:
        general: list[AgiEvent] | None = drain(slow)
    except RemoteProtocolError:
        general = None
    if quick is not None:
        assert general == [quick]
        assert fast.can_send == slow.can_send
