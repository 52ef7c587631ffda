"""The sans-I/O AudioSocket codec against the recorded frames and hostile input."""

from __future__ import annotations

import re
import struct
import uuid
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from centralino.asterisk.audiosocket import (
    MAX_PAYLOAD_BYTES,
    AudioFrame,
    AudioSocketDecoder,
    AudioSocketEvent,
    AudioSocketUuid,
    ConnectionClosed,
    DtmfDigit,
    ErrorFrame,
    FrameKind,
    HangupFrame,
    LocalProtocolError,
    RemoteProtocolError,
    encode_audio,
    encode_dtmf,
    encode_error,
    encode_frame,
    encode_hangup,
    encode_uuid,
)
from centralino.simulator.transcripts import transcripts_dir

TRANSCRIPT = transcripts_dir() / "audiosocket-frames.txt"
RECORDED_UUID = uuid.UUID("40325ec2-5efd-4bd3-805f-53576e581d13")
FRAME_LINE = re.compile(
    r"^frame\s+(\d+) t=\+([\d.]+)s hdr=([0-9a-f ]{8}) type=.*? len=(\d+)"
    r" first=((?:[0-9a-f]{2} ?)+)"
)


@dataclass(frozen=True)
class RecordedFrame:
    number: int
    t_s: float
    header: bytes
    length: int
    first: bytes

    def wire(self) -> bytes:
        """The frame's bytes: the recorded header and leading payload, the rest zero-filled."""
        return self.header + self.first + bytes(self.length - len(self.first))


def recorded_calls() -> list[list[RecordedFrame]]:
    calls: list[list[RecordedFrame]] = []
    for line in TRANSCRIPT.read_text().splitlines():
        if line.startswith("# [t=") and "connection accepted" in line:
            calls.append([])
        match = FRAME_LINE.match(line)
        if match:
            number, t_s, hdr, length, first = match.groups()
            calls[-1].append(
                RecordedFrame(
                    int(number),
                    float(t_s),
                    bytes.fromhex(hdr),
                    int(length),
                    bytes.fromhex(first),
                )
            )
    return calls


def decode_all(data: bytes, *, chunk: int | None = None) -> list[AudioSocketEvent]:
    decoder = AudioSocketDecoder()
    events: list[AudioSocketEvent] = []
    step = chunk or max(len(data), 1)
    for i in range(0, len(data), step):
        events += decoder.receive_data(data[i : i + step])
    events += decoder.receive_data(b"")
    return events


def test_given_the_transcript_then_two_calls_with_their_frames_are_found() -> None:
    calls = recorded_calls()
    assert len(calls) == 2
    assert [len(c) for c in calls] == [76, 73]


def test_given_recorded_headers_then_they_match_the_documented_layout() -> None:
    for call in recorded_calls():
        uuid_frame = call[0]
        assert uuid_frame.header == b"\x01\x00\x10"
        assert uuid_frame.first == RECORDED_UUID.bytes
        assert encode_uuid(RECORDED_UUID) == uuid_frame.wire()
        for frame in call[1:]:
            kind, length = struct.unpack(">BH", frame.header)
            assert length == frame.length
            assert kind in (FrameKind.AUDIO, FrameKind.DTMF)


@pytest.mark.parametrize("chunk", [None, 1, 7, 320, 323])
def test_given_recorded_call_2_when_decoded_then_uuid_audio_and_dtmf_in_order(
    chunk: int | None,
) -> None:
    call = recorded_calls()[1]
    events = decode_all(b"".join(f.wire() for f in call), chunk=chunk)
    assert events[0] == AudioSocketUuid(RECORDED_UUID)
    assert events[-1] == ConnectionClosed()  # the caller hung up: EOF, no hangup frame
    middle = events[1:-1]
    assert [e.digit for e in middle if isinstance(e, DtmfDigit)] == ["5", "#"]
    audio = [e for e in middle if isinstance(e, AudioFrame)]
    assert len(audio) == 70
    assert all(len(a.pcm) == 320 for a in audio)
    for event, frame in zip(middle, call[1:], strict=True):
        if isinstance(event, AudioFrame):
            assert event.pcm.startswith(frame.first)
    # DTMF '5' (0x35) is slotted between audio frames 61 and 63.
    assert isinstance(middle[60], DtmfDigit)
    assert middle[60].digit == "5"


def test_given_recorded_near_silent_frames_then_samples_read_little_endian() -> None:
    frame40 = next(f for f in recorded_calls()[0] if f.number == 40)
    (pcm_event,) = decode_all(encode_uuid(RECORDED_UUID) + frame40.wire())[1:-1]
    assert isinstance(pcm_event, AudioFrame)
    samples = struct.unpack("<8h", pcm_event.pcm[:16])
    assert samples == (2, -2, 2, -2, 2, -2, 1, -2)


def test_given_server_hangup_frame_then_it_is_the_documented_three_bytes() -> None:
    assert encode_hangup() == b"\x00\x00\x00"
    assert decode_all(encode_uuid(RECORDED_UUID) + encode_hangup())[1:] == [HangupFrame()]


def test_given_whole_stream_with_trailing_partial_frame_then_complete_frames_come_out() -> None:
    decoder = AudioSocketDecoder()
    data = encode_uuid(RECORDED_UUID) + encode_audio(bytes(320)) + b"\x10\x01\x40" + b"\x01" * 10
    events = decoder.receive_data(data)
    assert events == [AudioSocketUuid(RECORDED_UUID), AudioFrame(bytes(320))]
    assert decoder.buffered == 13
    events = decoder.receive_data(b"\x02" * 310 + encode_dtmf("7"))
    assert events == [AudioFrame(b"\x01" * 10 + b"\x02" * 310), DtmfDigit("7")]
    assert decoder.buffered == 0


def test_given_error_frames_then_codes_are_reported() -> None:
    events = decode_all(encode_uuid(RECORDED_UUID) + encode_error(2) + b"\xff\x00\x00")
    assert events[1:3] == [ErrorFrame(2), ErrorFrame(None)]
    assert ErrorFrame(2).description == "frame forwarding"
    assert ErrorFrame(0x7F).description == "unknown error 0x7f"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x10\x01\x40" + bytes(320), "first frame must be the UUID"),
        (b"\x01\x00\x0f" + bytes(15), "UUID payload must be 16"),
        (b"\x02\x00\x00", "unknown frame kind 0x02"),
        (b"\x10\xff\xff", "over the 4096-byte limit"),
        (b"\x10\x00\x03abc", "not whole 16-bit samples"),
        (b"\x03\x00\x01x", "bad DTMF"),
        (b"\x03\x00\x02" + b"12", "bad DTMF"),
        (b"\x00\x00\x01x", "hangup frame with 1 payload"),
        (b"\xff\x00\x02ab", "error frame with 2"),
        (encode_uuid(RECORDED_UUID), "unexpected UUID frame"),
        (encode_hangup() + b"\x10", "after the hangup frame"),
    ],
)
def test_given_bad_frames_then_remote_protocol_error(data: bytes, message: str) -> None:
    decoder = AudioSocketDecoder()
    prefix = encode_uuid(RECORDED_UUID) if not data.startswith(b"\x10\x01\x40") else b""
    if data.startswith(b"\x01\x00\x0f"):
        prefix = b""
    with pytest.raises(RemoteProtocolError, match=message):
        decoder.receive_data(prefix + data)
    assert decoder.closed
    assert decoder.buffered == 0


def test_given_oversized_header_then_rejected_before_the_payload_arrives() -> None:
    decoder = AudioSocketDecoder()
    decoder.receive_data(encode_uuid(RECORDED_UUID))
    with pytest.raises(RemoteProtocolError, match="65535 payload bytes"):
        decoder.receive_data(b"\x10\xff\xff")  # only the header: nothing buffered for 64 KiB


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (b"\x10\x01\x40" + bytes(100), "announced 320 payload bytes, got 100"),
        (b"\x10\x01", "frame header"),
    ],
)
def test_given_frame_that_lies_about_its_length_when_eof_then_remote_protocol_error(
    tail: bytes, message: str
) -> None:
    decoder = AudioSocketDecoder()
    decoder.receive_data(encode_uuid(RECORDED_UUID) + tail)
    with pytest.raises(RemoteProtocolError, match=message):
        decoder.receive_data(b"")
    assert decoder.closed


def test_given_closed_decoder_then_more_data_is_an_error_and_eof_is_quiet() -> None:
    decoder = AudioSocketDecoder()
    decoder.receive_data(encode_uuid(RECORDED_UUID))
    assert decoder.receive_data(b"") == [ConnectionClosed()]
    assert decoder.receive_data(b"") == []
    with pytest.raises(RemoteProtocolError):
        decoder.receive_data(b"\x00")


def test_given_client_side_decoder_then_uuid_is_never_legal() -> None:
    decoder = AudioSocketDecoder(expect_uuid=False)
    assert decoder.receive_data(encode_audio(bytes(4))) == [AudioFrame(bytes(4))]
    with pytest.raises(RemoteProtocolError):
        decoder.receive_data(encode_uuid(RECORDED_UUID))


def test_given_our_bad_input_then_local_protocol_error() -> None:
    with pytest.raises(LocalProtocolError):
        encode_audio(bytes(3))
    with pytest.raises(LocalProtocolError):
        encode_audio(bytes(MAX_PAYLOAD_BYTES + 2))
    with pytest.raises(LocalProtocolError):
        encode_dtmf("x")
    with pytest.raises(LocalProtocolError):
        encode_dtmf("12")
    with pytest.raises(LocalProtocolError):
        encode_error(256)
    with pytest.raises(LocalProtocolError):
        encode_frame(FrameKind.AUDIO, bytes(70000))
    with pytest.raises(ValueError):
        AudioSocketDecoder(max_payload=0)


@given(st.binary(max_size=600), st.integers(min_value=1, max_value=64))
def test_any_bytes_either_decode_or_raise_remote_protocol_error(data: bytes, chunk: int) -> None:
    decoder = AudioSocketDecoder()
    try:
        for i in range(0, len(data), chunk):
            decoder.receive_data(data[i : i + chunk])
            assert decoder.buffered <= 3 + MAX_PAYLOAD_BYTES
        decoder.receive_data(b"")
    except RemoteProtocolError:
        assert decoder.closed


frame_strategy = st.one_of(
    st.binary(max_size=400).map(lambda b: b[: len(b) // 2 * 2]).map(encode_audio),
    st.sampled_from(sorted("0123456789*#ABCD")).map(encode_dtmf),
    st.integers(0, 255).map(encode_error),
)


@given(st.lists(frame_strategy, max_size=20), st.integers(min_value=1, max_value=50))
def test_any_valid_stream_decodes_the_same_whole_or_chunked(
    frames: list[bytes], chunk: int
) -> None:
    data = encode_uuid(RECORDED_UUID) + b"".join(frames) + encode_hangup()
    whole = decode_all(data)
    assert decode_all(data, chunk=chunk) == whole
    assert len(whole) == len(frames) + 2
    assert whole[-1] == HangupFrame()
