"""The sans-I/O AMI codec against every packet of the recorded transcripts, and bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from centralino.asterisk.ami import (
    AmiAction,
    AmiBanner,
    AmiClientConnection,
    AmiEvent,
    AmiResponse,
    AmiServerConnection,
    ConnectionClosed,
    LocalProtocolError,
    RemoteProtocolError,
    encode_packet,
)
from centralino.simulator.ami_server import TranscriptPacket, load_ami_transcript
from centralino.simulator.transcripts import transcripts_dir

AMI_FILES = ("ami-actions.txt", "ami-queue-call.txt", "ami-during-fastagi.txt")


def connections(filename: str) -> list[list[TranscriptPacket]]:
    """Split a transcript into its TCP connections (each starts with a banner)."""
    result: list[list[TranscriptPacket]] = []
    for packet in load_ami_transcript(transcripts_dir() / filename):
        if packet.kind == "banner":
            result.append([])
        result[-1].append(packet)
    return result


ALL_CONNECTIONS = [
    pytest.param(conn, id=f"{name}#{i}")
    for name in AMI_FILES
    for i, conn in enumerate(connections(name))
]


def received_stream(conn: list[TranscriptPacket]) -> bytes:
    return b"".join(p.wire for p in conn if p.direction == "<<<")


def expected_events(conn: list[TranscriptPacket]) -> list[object]:
    out: list[object] = []
    for p in conn:
        if p.direction != "<<<":
            continue
        if p.kind == "banner":
            out.append(AmiBanner(version="11.0.0"))
        elif p.kind == "packet":
            is_event = any(k == "Event" for k, _ in p.headers)
            out.append(AmiEvent(headers=p.headers) if is_event else AmiResponse(headers=p.headers))
    return out


def ends_with_eof(conn: list[TranscriptPacket]) -> bool:
    return conn[-1].kind == "eof"


def test_transcripts_hold_what_the_readme_describes() -> None:
    conns = {name: connections(name) for name in AMI_FILES}
    assert [len(c) for c in conns.values()] == [3, 1, 1]
    total = sum(len(expected_events(c)) for cs in conns.values() for c in cs)
    assert total > 400  # every packet of the three files is a fixture below


@pytest.mark.parametrize("conn", ALL_CONNECTIONS)
def test_golden_whole_stream(conn: list[TranscriptPacket]) -> None:
    codec = AmiClientConnection()
    events = list(codec.receive_data(received_stream(conn)))
    assert events == expected_events(conn)
    if ends_with_eof(conn):
        assert list(codec.receive_data(b"")) == [ConnectionClosed()]


@pytest.mark.parametrize("conn", ALL_CONNECTIONS)
def test_golden_byte_at_a_time(conn: list[TranscriptPacket]) -> None:
    codec = AmiClientConnection()
    data = received_stream(conn)
    events: list[object] = []
    for i in range(len(data)):
        events.extend(codec.receive_data(data[i : i + 1]))
    assert events == expected_events(conn)


@pytest.mark.parametrize("conn", ALL_CONNECTIONS)
def test_golden_actions_encode_byte_identical(conn: list[TranscriptPacket]) -> None:
    """Every action we would send for a recorded `>>>` packet is the recorded bytes."""
    client = AmiClientConnection()
    server = AmiServerConnection()
    sent = [p for p in conn if p.direction == ">>>"]
    assert sent
    for packet in sent:
        (_, name), (_, action_id), *rest = packet.headers
        assert client.send_action(name, dict(rest), action_id=action_id) == packet.wire
        assert list(server.receive_data(packet.wire)) == [AmiAction(headers=packet.headers)]


def test_originate_response_is_an_event_even_with_a_response_header() -> None:
    codec = AmiClientConnection()
    data = (
        b"Asterisk Call Manager/11.0.0\r\n"
        b"Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: o-3\r\n"
        b"Response: Success\r\nReason: 4\r\n\r\n"
    )
    banner, event = codec.receive_data(data)
    assert banner == AmiBanner(version="11.0.0")
    assert isinstance(event, AmiEvent)
    assert (event.name, event.action_id, event["response"]) == (
        "OriginateResponse",
        "o-3",
        "Success",
    )


def test_lookup_is_case_insensitive_and_repeated_keys_are_kept_in_order() -> None:
    codec = AmiClientConnection()
    (_banner, response) = codec.receive_data(
        b"Asterisk Call Manager/11.0.0\r\n"
        b"Response: Success\r\nActionID: c-1\r\nMessage: Command output follows\r\n"
        b"Output: System uptime: 6 minutes, 29 seconds\r\n"
        b"Output: Last reload: 6 minutes, 29 seconds\r\n\r\n"
    )
    assert isinstance(response, AmiResponse)
    assert response.output == [
        "System uptime: 6 minutes, 29 seconds",
        "Last reload: 6 minutes, 29 seconds",
    ]
    assert response.get("OUTPUT") == "System uptime: 6 minutes, 29 seconds"
    assert response.get("actionid") == "c-1" == response.action_id
    assert response.message == "Command output follows"
    assert response.ok
    assert "output" in response
    assert response.get("Missing") is None
    with pytest.raises(KeyError):
        response["Missing"]


def test_empty_values_keep_their_key_and_values_keep_colons() -> None:
    codec = AmiClientConnection(max_line_bytes=200)
    events = list(
        codec.receive_data(
            b"Asterisk Call Manager/11.0.0\r\n"
            b"Event: RequestBadFormat\r\nAccountCode: \r\nRequestType: Action: NoSuchAction\r\n\r\n"
        )
    )
    assert events[1] == AmiEvent(
        headers=(
            ("Event", "RequestBadFormat"),
            ("AccountCode", ""),
            ("RequestType", "Action: NoSuchAction"),
        )
    )


def test_trailing_partial_packet_waits_for_the_rest() -> None:
    codec = AmiClientConnection()
    first = b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nActionID: a\r\n\r\nEvent: Hang"
    assert [type(e) for e in codec.receive_data(first)] == [AmiBanner, AmiResponse]
    assert list(codec.receive_data(b"up\r\nCause: 16\r")) == []
    (event,) = codec.receive_data(b"\n\r\n")
    assert isinstance(event, AmiEvent)
    assert event.headers == (("Event", "Hangup"), ("Cause", "16"))


def test_utf8_split_across_reads_is_decoded_whole() -> None:
    data = "Asterisk Call Manager/11.0.0\r\nEvent: Newchannel\r\nCallerIDName: Niccolò €\r\n\r\n"
    codec = AmiClientConnection()
    events: list[object] = []
    for byte in data.encode():
        events.extend(codec.receive_data(bytes([byte])))
    event = events[-1]
    assert isinstance(event, AmiEvent)
    assert event["CallerIDName"] == "Niccolò €"


def test_invalid_utf8_becomes_replacement_characters_not_an_error() -> None:
    codec = AmiClientConnection()
    data = b"Asterisk Call Manager/11.0.0\r\nEvent: Newchannel\r\nCallerIDName: Nicol\xf2\r\n\r\n"
    event = list(codec.receive_data(data))[-1]
    assert isinstance(event, AmiEvent)
    assert event["CallerIDName"] == "Nicol\ufffd"


def test_blank_lines_between_packets_are_ignored() -> None:
    codec = AmiClientConnection()
    data = b"Asterisk Call Manager/11.0.0\r\n\r\n\r\nEvent: A\r\n\r\n\r\nEvent: B\r\n\r\n"
    assert [e.name for e in codec.receive_data(data) if isinstance(e, AmiEvent)] == ["A", "B"]


# --- bad input ---------------------------------------------------------------------------------
def test_garbage_line_raises_after_the_packets_before_it() -> None:
    codec = AmiClientConnection()
    data = b"Asterisk Call Manager/11.0.0\r\nEvent: A\r\n\r\n\x8f\x01garbage without colon\r\n\r\n"
    stream = codec.receive_data(data)
    assert next(stream) == AmiBanner(version="11.0.0")
    assert isinstance(next(stream), AmiEvent)
    with pytest.raises(RemoteProtocolError, match="without a colon"):
        next(stream)
    with pytest.raises(RemoteProtocolError):  # the connection stays failed
        codec.next_event()


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\r\n",  # not a banner
        b"Asterisk Call Manager/11.0.0\r\nActionID: x\r\nMessage: hi\r\n\r\n",  # neither kind
        b"Asterisk Call Manager/11.0.0\r\n: empty key\r\n\r\n",
        b"Asterisk Call Manager/11.0.0\r\nbad key: x\r\n\r\n",
        b"Asterisk Call Manager/11.0.0\r\nEvent: A\x00B\r\n\r\n",
    ],
)
def test_garbage_is_a_remote_protocol_error(data: bytes) -> None:
    codec = AmiClientConnection()
    with pytest.raises(RemoteProtocolError):
        list(codec.receive_data(data))


def test_line_without_newline_past_the_limit_is_refused_without_buffering_forever() -> None:
    codec = AmiClientConnection(max_line_bytes=1024)
    list(codec.receive_data(b"Asterisk Call Manager/11.0.0\r\nEvent: Big\r\nValue: "))
    with pytest.raises(RemoteProtocolError, match="longer than 1024"):
        list(codec.receive_data(b"x" * 100_000))


def test_complete_line_past_the_limit_is_refused() -> None:
    codec = AmiClientConnection(max_line_bytes=64)
    with pytest.raises(RemoteProtocolError, match="longer than 64"):
        list(codec.receive_data(b"Asterisk Call Manager/11.0.0\r\nValue: " + b"y" * 80 + b"\r\n"))


def test_packet_header_and_byte_limits() -> None:
    codec = AmiClientConnection(max_packet_headers=3)
    with pytest.raises(RemoteProtocolError, match="more than 3 headers"):
        list(codec.receive_data(b"Asterisk Call Manager/11.0.0\r\n" + b"Output: x\r\n" * 4))
    codec = AmiClientConnection(max_packet_bytes=100)
    with pytest.raises(RemoteProtocolError, match="larger than 100 bytes"):
        list(
            codec.receive_data(b"Asterisk Call Manager/11.0.0\r\n" + b"Output: xxxxxxxxxx\r\n" * 8)
        )


def test_eof_mid_packet_raises_once_and_never_loops() -> None:
    codec = AmiClientConnection()
    assert len(list(codec.receive_data(b"Asterisk Call Manager/11.0.0\r\nEvent: Half\r\n"))) == 1
    with pytest.raises(RemoteProtocolError, match="middle of a packet"):
        list(codec.receive_data(b""))
    with pytest.raises(LocalProtocolError):
        codec.receive_data(b"more")


def test_eof_mid_banner_and_clean_eof_before_banner() -> None:
    codec = AmiClientConnection()
    list(codec.receive_data(b"Asterisk Call Man"))
    with pytest.raises(RemoteProtocolError, match="mid-banner"):
        list(codec.receive_data(b""))
    assert list(AmiClientConnection().receive_data(b"")) == [ConnectionClosed()]


def test_after_connection_closed_no_more_events() -> None:
    codec = AmiClientConnection()
    assert list(codec.receive_data(b"")) == [ConnectionClosed()]
    assert codec.next_event() is None


# --- encoding ----------------------------------------------------------------------------------
def test_send_action_frames_with_crlf_and_repeats_sequence_values() -> None:
    codec = AmiClientConnection()
    data = codec.send_action(
        "Originate",
        {
            "Channel": "Local/s@caller-sim",
            "Priority": 1,
            "Async": "true",
            "Variable": ["A=1", "B=2"],
        },
        action_id="o-1",
    )
    assert data == (
        b"Action: Originate\r\nActionID: o-1\r\nChannel: Local/s@caller-sim\r\nPriority: 1\r\n"
        b"Async: true\r\nVariable: A=1\r\nVariable: B=2\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("name", "headers"),
    [
        ("Setvar", {"Value": "42\r\nAction: Hangup"}),
        ("Setvar", {"Value": "a\nb"}),
        ("Ping\r\n", {}),
        ("Ping", {"Bad Key": "x"}),
        ("Ping", {"Key:": "x"}),
        ("Ping", {"ActionID": "mine"}),
        ("", {}),
    ],
)
def test_our_misuse_raises_local_protocol_error(name: str, headers: dict[str, str]) -> None:
    with pytest.raises(LocalProtocolError):
        AmiClientConnection().send_action(name, headers, action_id="x")


def test_secret_values_are_not_echoed_in_errors() -> None:
    with pytest.raises(LocalProtocolError) as info:
        AmiClientConnection().send_action("Login", {"Secret": "s3cr3t\r\n"}, action_id="l")
    assert "s3cr3t" not in str(info.value)


def test_server_side_encodes_banner_responses_and_events() -> None:
    assert AmiServerConnection.banner() == b"Asterisk Call Manager/11.0.0\r\n"
    assert AmiServerConnection.send_response("Success", "p-1", [("Ping", "Pong")]) == (
        b"Response: Success\r\nActionID: p-1\r\nPing: Pong\r\n\r\n"
    )
    assert AmiServerConnection.send_event("VarSet", [("Value", "")]) == (
        b"Event: VarSet\r\nValue: \r\n\r\n"
    )
    with pytest.raises(LocalProtocolError):
        encode_packet([])


def test_server_side_limits_follow_asterisk_not_the_client() -> None:
    server = AmiServerConnection()
    with pytest.raises(RemoteProtocolError):
        list(server.receive_data(b"Action: Ping\r\n" + b"X-H: v\r\n" * 200 + b"\r\n"))


def test_server_side_missing_action_header_is_an_action_with_no_name() -> None:
    (action,) = AmiServerConnection().receive_data(b"ActionID: 1\r\n\r\n")
    assert isinstance(action, AmiAction)
    assert (action.name, action.action_id) == ("", "1")


# --- properties ----------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.booleans())
def test_any_bytes_parse_or_raise_remote_protocol_error(data: bytes, with_banner: bool) -> None:
    codec = AmiClientConnection(max_line_bytes=256, max_packet_headers=16, max_packet_bytes=1024)
    prefix = b"Asterisk Call Manager/11.0.0\r\n" if with_banner else b""
    try:
        for event in codec.receive_data(prefix + data) if prefix + data else ():
            assert isinstance(event, AmiBanner | AmiResponse | AmiEvent)
        for event in codec.receive_data(b""):
            assert isinstance(event, ConnectionClosed)
    except RemoteProtocolError:
        pass


_keys = st.from_regex(r"[A-Za-z][A-Za-z0-9_\-]{0,15}", fullmatch=True)
_values = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\x00"),
    max_size=40,
).map(lambda v: v.lstrip(" \t"))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(_keys, _values), min_size=1, max_size=12), st.data())
def test_encode_then_parse_round_trips_in_any_chunking(
    headers: list[tuple[str, str]], data: st.DataObject
) -> None:
    wire = encode_packet(headers)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    server = AmiServerConnection()
    got: list[object] = []
    start = 0
    for cut in [*cuts, len(wire)]:
        if cut > start:  # an empty chunk would mean EOF
            got.extend(server.receive_data(wire[start:cut]))
        start = cut
    assert got == [AmiAction(headers=tuple(headers))]


_fragments = st.sampled_from(
    [
        b"Event: Hangup",
        b"Response: Success",
        b"ActionID: 1",
        b"Output: x",
        b"Key:",
        b": v",
        b"no colon",
        b"\r\n",
        b"\n",
        b"\r",
        b"\xc3",
        b"\xa8",
        b"\x00",
        b" ",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_fragments, max_size=60), st.integers(1, 7))
def test_near_valid_streams_parse_or_raise_remote_protocol_error(
    fragments: list[bytes], chunk: int
) -> None:
    """Streams built from AMI-looking pieces reach the deep paths; still only our error."""
    codec = AmiClientConnection(max_line_bytes=64, max_packet_headers=8, max_packet_bytes=256)
    data = b"Asterisk Call Manager/11.0.0\r\n" + b"".join(fragments)
    try:
        for start in range(0, len(data), chunk):
            for event in codec.receive_data(data[start : start + chunk]):
                assert isinstance(event, AmiBanner | AmiResponse | AmiEvent)
        assert all(isinstance(e, ConnectionClosed) for e in codec.receive_data(b""))
    except RemoteProtocolError:
        pass
