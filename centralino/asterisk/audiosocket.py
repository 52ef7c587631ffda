"""Sans-I/O AudioSocket codec: bytes in, frozen events out; frames we send, as bytes.

Wire format (Asterisk `res_audiosocket`, see ../shared/asterisk-real/audiosocket-frames.txt):
a frame is `kind` (1 byte) + payload length (2 bytes, big-endian) + payload.

Rules, as recorded from Asterisk 22.10.1:
- The first frame Asterisk sends is the UUID (`01 00 10` + 16 raw bytes); a second one is garbage.
- Audio (`0x10`) is signed 16-bit little-endian mono at 8 kHz: 320 bytes = 160 samples = 20 ms.
- DTMF (`0x03`) carries one ASCII byte; hangup (`0x00`) is empty; error (`0xff`) one code byte.
- The caller hanging up is an EOF with no hangup frame (fact 29): EOF at a frame boundary is the
  normal end of a call, EOF inside a frame means the peer lied about the length.
- Any other kind, an oversized or malformed payload is the peer's fault: `RemoteProtocolError`.
  Passing us bad data to encode is our own fault: `LocalProtocolError`.

No asyncio here: `centralino.asterisk.audiosocket_server` and the simulator's peer are the shells.
"""

from __future__ import annotations

import enum
import struct
import uuid
from dataclasses import dataclass

__all__ = [
    "AUDIO_FRAME_BYTES",
    "AUDIO_FRAME_SECONDS",
    "DTMF_DIGITS",
    "ERROR_CODES",
    "HEADER_BYTES",
    "MAX_PAYLOAD_BYTES",
    "SAMPLE_RATE_HZ",
    "AudioFrame",
    "AudioSocketDecoder",
    "AudioSocketError",
    "AudioSocketEvent",
    "AudioSocketUuid",
    "ConnectionClosed",
    "DtmfDigit",
    "ErrorFrame",
    "FrameKind",
    "HangupFrame",
    "LocalProtocolError",
    "RemoteProtocolError",
    "encode_audio",
    "encode_dtmf",
    "encode_error",
    "encode_frame",
    "encode_hangup",
    "encode_uuid",
]

HEADER_BYTES = 3
SAMPLE_RATE_HZ = 8000
# 20 ms of slin (8 kHz, 16-bit mono): the size of every audio frame Asterisk sent (fact 26).
AUDIO_FRAME_BYTES = 320
AUDIO_FRAME_SECONDS = 0.02
# The length field allows 65535, but Asterisk sends 320-byte audio frames. 4096 bytes still admits
# 100 ms at 16 kHz (3200 B), i.e. larger packetisation from a trunk; anything bigger is garbage
# and must not make us buffer 64 KiB per connection.
MAX_PAYLOAD_BYTES = 4096
DTMF_DIGITS = frozenset("0123456789*#ABCD")
# Error codes of `res_audiosocket` (payload of a 0xff frame).
ERROR_CODES = {0x00: "none", 0x01: "hangup", 0x02: "frame forwarding", 0x04: "memory"}


class FrameKind(enum.IntEnum):
    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    AUDIO = 0x10
    ERROR = 0xFF


class AudioSocketError(Exception):
    """Base class of AudioSocket protocol errors."""


class RemoteProtocolError(AudioSocketError):
    """The peer sent bytes that break the protocol: close the connection and log it."""


class LocalProtocolError(AudioSocketError, ValueError):
    """We asked to encode something the protocol cannot carry: a bug on our side."""


@dataclass(frozen=True, slots=True)
class AudioSocketUuid:
    """The call's identifier, always the first frame from Asterisk."""

    uuid: uuid.UUID


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """slin: signed 16-bit little-endian mono samples at 8 kHz."""

    pcm: bytes


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    digit: str


@dataclass(frozen=True, slots=True)
class HangupFrame:
    """An explicit hangup frame (kind 0x00, empty payload)."""


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    """Kind 0xff; `code` is None when the payload was empty."""

    code: int | None

    @property
    def description(self) -> str:
        if self.code is None:
            return "unspecified"
        return ERROR_CODES.get(self.code, f"unknown error 0x{self.code:02x}")


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """EOF at a frame boundary. From Asterisk this is how a caller hangup looks (fact 29)."""


AudioSocketEvent = (
    AudioSocketUuid | AudioFrame | DtmfDigit | HangupFrame | ErrorFrame | ConnectionClosed
)

_HEADER = struct.Struct(">BH")


class _State(enum.Enum):
    AWAIT_UUID = "await-uuid"  # Asterisk side: nothing but the UUID is legal yet
    OPEN = "open"
    CLOSED = "closed"  # after EOF, a hangup frame or a protocol error: no more data accepted


class AudioSocketDecoder:
    """Turns the bytes one side of an AudioSocket connection receives into events.

    `expect_uuid=True` decodes what Asterisk sends (our server's side): the first frame must be the
    UUID and no other UUID may follow. `expect_uuid=False` decodes what the server sends to
    Asterisk (the simulator's side), where a UUID frame is never legal.

    Feed bytes with `receive_data`; `receive_data(b"")` is EOF. Each call returns the complete
    events decoded so far; a partial frame stays buffered (at most one header plus
    `max_payload` bytes, because complete frames are always consumed).
    """

    def __init__(self, *, expect_uuid: bool = True, max_payload: int = MAX_PAYLOAD_BYTES) -> None:
        if not 0 < max_payload <= 0xFFFF:
            raise ValueError(f"max_payload must be in 1..65535, got {max_payload}")
        self._expect_uuid = expect_uuid
        self._max_payload = max_payload
        self._buffer = bytearray()
        self._state = _State.AWAIT_UUID if expect_uuid else _State.OPEN
        self.uuid: uuid.UUID | None = None

    @property
    def closed(self) -> bool:
        return self._state is _State.CLOSED

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._buffer)

    def receive_data(self, data: bytes) -> list[AudioSocketEvent]:
        if self._state is _State.CLOSED:
            if data:
                raise RemoteProtocolError(f"{len(data)} bytes after the connection ended")
            return []
        if not data:
            return [self._eof()]
        self._buffer += data
        events: list[AudioSocketEvent] = []
        offset = 0
        buffer = self._buffer
        try:
            while len(buffer) - offset >= HEADER_BYTES:
                kind, length = _HEADER.unpack_from(buffer, offset)
                self._check_header(kind, length)
                end = offset + HEADER_BYTES + length
                if len(buffer) < end:
                    break
                payload = bytes(buffer[offset + HEADER_BYTES : end])
                offset = end
                event = self._decode(kind, payload)
                events.append(event)
                if isinstance(event, HangupFrame):
                    self._state = _State.CLOSED
                    if offset != len(buffer):
                        raise RemoteProtocolError(
                            f"{len(buffer) - offset} bytes after the hangup frame"
                        )
                    break
        except RemoteProtocolError:
            self._state = _State.CLOSED
            self._buffer.clear()
            raise
        del buffer[:offset]
        return events

    def _eof(self) -> ConnectionClosed:
        self._state = _State.CLOSED
        pending = bytes(self._buffer)
        self._buffer.clear()
        if len(pending) >= HEADER_BYTES:
            kind, length = _HEADER.unpack_from(pending)
            raise RemoteProtocolError(
                f"EOF inside a frame: kind 0x{kind:02x} announced {length} payload bytes,"
                f" got {len(pending) - HEADER_BYTES}"
            )
        if pending:
            raise RemoteProtocolError(f"EOF inside a frame header ({len(pending)} of 3 bytes)")
        return ConnectionClosed()

    def _check_header(self, kind: int, length: int) -> None:
        if kind not in _KINDS:
            raise RemoteProtocolError(f"unknown frame kind 0x{kind:02x} (length {length})")
        if length > self._max_payload:
            raise RemoteProtocolError(
                f"frame kind 0x{kind:02x} announces {length} payload bytes,"
                f" over the {self._max_payload}-byte limit"
            )
        # Decided on the header alone, so a non-Asterisk client is refused before its payload.
        if self._state is _State.AWAIT_UUID and kind != FrameKind.UUID:
            raise RemoteProtocolError(f"first frame must be the UUID, got kind 0x{kind:02x}")
        if kind == FrameKind.UUID and length != 16:
            raise RemoteProtocolError(f"UUID payload must be 16 bytes, got {length}")

    def _decode(self, kind: int, payload: bytes) -> AudioSocketEvent:
        if kind == FrameKind.AUDIO:
            if len(payload) % 2:
                raise RemoteProtocolError(
                    f"audio payload of {len(payload)} bytes is not whole 16-bit samples"
                )
            return AudioFrame(payload)
        if kind == FrameKind.UUID:
            if self._state is not _State.AWAIT_UUID:
                raise RemoteProtocolError("unexpected UUID frame")
            self._state = _State.OPEN
            self.uuid = uuid.UUID(bytes=payload)
            return AudioSocketUuid(self.uuid)
        if kind == FrameKind.DTMF:
            digit = payload.decode("ascii", errors="replace")
            if len(payload) != 1 or digit not in DTMF_DIGITS:
                raise RemoteProtocolError(f"bad DTMF payload {payload!r}")
            return DtmfDigit(digit)
        if kind == FrameKind.HANGUP:
            if payload:
                raise RemoteProtocolError(f"hangup frame with {len(payload)} payload bytes")
            return HangupFrame()
        # FrameKind.ERROR: one code byte; tolerate an empty payload (no code given).
        if len(payload) > 1:
            raise RemoteProtocolError(f"error frame with {len(payload)} payload bytes")
        return ErrorFrame(payload[0] if payload else None)


_KINDS = frozenset(int(k) for k in FrameKind)


def encode_frame(kind: FrameKind, payload: bytes = b"", *, max_payload: int = 0xFFFF) -> bytes:
    if len(payload) > max_payload:
        raise LocalProtocolError(
            f"{FrameKind(kind).name} payload of {len(payload)} bytes exceeds {max_payload}"
        )
    return _HEADER.pack(kind, len(payload)) + payload


def encode_audio(pcm: bytes, *, max_payload: int = MAX_PAYLOAD_BYTES) -> bytes:
    """One audio frame; `pcm` is slin (8 kHz, 16-bit LE mono), normally 320 bytes."""
    if len(pcm) % 2:
        raise LocalProtocolError(f"audio of {len(pcm)} bytes is not whole 16-bit samples")
    return encode_frame(FrameKind.AUDIO, bytes(pcm), max_payload=max_payload)


def encode_hangup() -> bytes:
    return encode_frame(FrameKind.HANGUP)


def encode_uuid(call_uuid: uuid.UUID) -> bytes:
    return encode_frame(FrameKind.UUID, call_uuid.bytes)


def encode_dtmf(digit: str) -> bytes:
    if digit not in DTMF_DIGITS or len(digit) != 1:
        raise LocalProtocolError(f"not a DTMF digit: {digit!r}")
    return encode_frame(FrameKind.DTMF, digit.encode("ascii"))


def encode_error(code: int) -> bytes:
    if not 0 <= code <= 0xFF:
        raise LocalProtocolError(f"error code must fit one byte, got {code}")
    return encode_frame(FrameKind.ERROR, bytes([code]))
