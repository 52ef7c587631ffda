"""Sans-I/O codec for the Asterisk Manager Interface (AMI): bytes in, typed packets out.

Wire format (see /work/shared/asterisk-real/README.md, facts 12-17):

- On connect Asterisk sends one banner line, ``Asterisk Call Manager/11.0.0\\r\\n``, with no empty
  line after it.
- After that every packet (action, response, event) is ``Key: Value`` lines ending in CRLF and one
  empty line closes the packet. Keys repeat (``Output:`` once per line of command output,
  ``Variable:`` on Originate), so headers are kept as an ordered tuple of pairs.
- A packet with an ``Event:`` header is an event even if it also has ``Response:``
  (``OriginateResponse``, fact 15); otherwise it must have ``Response:``.

Rules this module enforces:

- Lines are cut on LF (a preceding CR is dropped, so a bare LF is tolerated) and decoded as whole
  lines, so a multi-byte UTF-8 character split across reads is never damaged. Invalid UTF-8 is
  decoded with U+FFFD replacement rather than treated as garbage: Asterisk relays caller names
  from SIP peers verbatim, and one Latin-1 byte in a caller name must not cost us the AMI link.
- Garbage (a line with no colon, an empty key, a NUL byte, an oversized line or packet, a packet
  that is neither event nor response, a missing banner) raises `RemoteProtocolError`: the peer's
  fault; the shell closes the connection and logs it.
- Our misuse (CR/LF inside a header, feeding data after EOF) raises `LocalProtocolError`.
- EOF is an input (``receive_data(b"")``). EOF between packets yields `ConnectionClosed`; EOF in
  the middle of a packet raises `RemoteProtocolError` once and never loops.

`AmiClientConnection` is the client side (Centralino talking to Asterisk); `AmiServerConnection`
is the manager side used by the test peer. Both share the same packet reader.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

__all__ = [
    "DEFAULT_BANNER_VERSION",
    "MAX_CLIENT_LINE_BYTES",
    "MAX_CLIENT_PACKET_BYTES",
    "MAX_CLIENT_PACKET_HEADERS",
    "MAX_SERVER_LINE_BYTES",
    "MAX_SERVER_PACKET_HEADERS",
    "AmiAction",
    "AmiActionError",
    "AmiBanner",
    "AmiClientConnection",
    "AmiError",
    "AmiEvent",
    "AmiEventList",
    "AmiResponse",
    "AmiServerConnection",
    "ClientEvent",
    "ConnectionClosed",
    "HeaderValue",
    "Headers",
    "LocalProtocolError",
    "RemoteProtocolError",
    "ServerEvent",
    "encode_packet",
]

# --- Buffer limits ---------------------------------------------------------------------------
# One header line. Asterisk's longest lines are variable values and command output; dialplan
# variables are capped well below this in practice, so 64 KiB without a newline is not AMI.
MAX_CLIENT_LINE_BYTES = 64 * 1024
# Headers in one received packet. `Command` output arrives as one `Output:` header per line and a
# busy box's `core show channels` runs to thousands of lines; 20,000 still bounds the memory.
MAX_CLIENT_PACKET_HEADERS = 20_000
# Bytes in one received packet, for the same reason: big command output, but bounded (4 MiB).
MAX_CLIENT_PACKET_BYTES = 4 * 1024 * 1024
# What our fake manager accepts from a client. Asterisk itself stops at 128 headers per action
# (AST_MAX_MANHEADERS) and about 1 KiB per header line; we mirror that order of magnitude.
MAX_SERVER_LINE_BYTES = 4 * 1024
MAX_SERVER_PACKET_HEADERS = 128
MAX_SERVER_PACKET_BYTES = 64 * 1024

DEFAULT_BANNER_VERSION = "11.0.0"
_BANNER_PREFIX = "Asterisk Call Manager/"
_CRLF = b"\r\n"

HeaderValue: TypeAlias = str | int | Sequence[str]


# --- Errors ----------------------------------------------------------------------------------
class AmiError(Exception):
    """Base of every AMI error raised by Centralino."""


class RemoteProtocolError(AmiError):
    """The peer sent something that is not AMI: close the connection and log it."""


class LocalProtocolError(AmiError):
    """We misused the codec (CR/LF in a value, data after EOF): a bug on our side."""


class AmiActionError(AmiError):
    """Asterisk answered an action with ``Response: Error`` (raised by `raise_for_error`)."""

    def __init__(self, response: AmiResponse) -> None:
        self.response = response
        super().__init__(
            f"AMI action {response.action_id!r} failed: {response.message or response.response}"
        )


# --- Packets ---------------------------------------------------------------------------------
Headers: TypeAlias = tuple[tuple[str, str], ...]


def _index(headers: Headers) -> dict[str, tuple[str, ...]]:
    index: dict[str, list[str]] = {}
    for key, value in headers:
        index.setdefault(key.lower(), []).append(value)
    return {k: tuple(v) for k, v in index.items()}


class _HeaderLookup:
    """Case-insensitive access over an ordered tuple of headers (AMI keys are case-insensitive)."""

    __slots__ = ()
    headers: Headers
    _by_key: dict[str, tuple[str, ...]]

    def get(self, key: str, default: str | None = None) -> str | None:
        """The first value of `key` (case-insensitive), or `default`."""
        values = self._by_key.get(key.lower())
        return values[0] if values else default

    def get_all(self, key: str) -> list[str]:
        """Every value of a repeated key, in wire order (``Output:``, ``Variable:``)."""
        return list(self._by_key.get(key.lower(), ()))

    def __getitem__(self, key: str) -> str:
        values = self._by_key.get(key.lower())
        if not values:
            raise KeyError(key)
        return values[0]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._by_key

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")


@dataclass(frozen=True, slots=True)
class AmiBanner:
    """The first line Asterisk sends: ``Asterisk Call Manager/<version>``."""

    version: str


@dataclass(frozen=True, slots=True)
class AmiResponse(_HeaderLookup):
    """A ``Response:`` packet (Success, Error, Goodbye, Follows)."""

    headers: Headers
    _by_key: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_key", _index(self.headers))

    @property
    def response(self) -> str:
        return self.get("Response", "") or ""

    @property
    def message(self) -> str | None:
        return self.get("Message")

    @property
    def ok(self) -> bool:
        """True unless Asterisk said ``Response: Error``."""
        return self.response.lower() != "error"

    @property
    def output(self) -> list[str]:
        """The ``Output:`` lines of a ``Command`` action, in order."""
        return self.get_all("Output")

    def raise_for_error(self) -> AmiResponse:
        if not self.ok:
            raise AmiActionError(self)
        return self


@dataclass(frozen=True, slots=True)
class AmiEvent(_HeaderLookup):
    """An ``Event:`` packet; `name` is the value of its ``Event:`` header."""

    headers: Headers
    _by_key: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_key", _index(self.headers))

    @property
    def name(self) -> str:
        return self.get("Event", "") or ""


@dataclass(frozen=True, slots=True)
class AmiAction(_HeaderLookup):
    """An ``Action:`` packet as the manager (our test peer) receives it."""

    headers: Headers
    _by_key: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_key", _index(self.headers))

    @property
    def name(self) -> str:
        """The ``Action:`` value ('' when missing; Asterisk answers that with an Error)."""
        return self.get("Action", "") or ""


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed the TCP connection cleanly (between packets)."""


@dataclass(frozen=True, slots=True)
class AmiEventList:
    """The result of a list action (QueueStatus, CoreShowChannels, ...): fact 17.

    `response` is the ``EventList: start`` response (or an Error, then `events` is empty and
    `complete` is None); `events` are the item events; `complete` the ``...Complete`` event.
    """

    response: AmiResponse
    events: tuple[AmiEvent, ...]
    complete: AmiEvent | None

    @property
    def ok(self) -> bool:
        return self.response.ok


ClientEvent: TypeAlias = AmiBanner | AmiResponse | AmiEvent | ConnectionClosed
ServerEvent: TypeAlias = AmiAction | ConnectionClosed


# --- Encoding --------------------------------------------------------------------------------
def _check_text(kind: str, text: str, *, echo: bool = True) -> None:
    if "\r" in text or "\n" in text:
        shown = f" {text!r}" if echo else ""  # values may be secrets: never echo those
        raise LocalProtocolError(f"AMI {kind}{shown} contains CR or LF; refusing to send it")


def _check_key(key: str) -> None:
    _check_text("header name", key)
    if not key or ":" in key or any(c.isspace() for c in key):  # the parser refuses these too
        raise LocalProtocolError(f"invalid AMI header name {key!r}")


def encode_packet(headers: Iterable[tuple[str, str]]) -> bytes:
    """Encode ordered ``(key, value)`` pairs as one CRLF-framed packet with its closing blank line.

    Raises `LocalProtocolError` if a key or value contains CR/LF: such a value would inject
    headers or end the packet early, so it never reaches the wire.
    """
    out: list[str] = []
    for key, value in headers:
        _check_key(key)
        _check_text(f"value of {key}", value, echo=False)
        out.append(f"{key}: {value}\r\n")
    if not out:
        raise LocalProtocolError("an AMI packet needs at least one header")
    out.append("\r\n")
    return "".join(out).encode("utf-8")


def _expand(headers: Mapping[str, HeaderValue]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in headers.items():
        if isinstance(value, str):
            pairs.append((key, value))
        elif isinstance(value, bool):
            pairs.append((key, "true" if value else "false"))
        elif isinstance(value, int):
            pairs.append((key, str(value)))
        else:  # a sequence: one header per value (Variable: on Originate)
            pairs.extend((key, str(v)) for v in value)
    return pairs


# --- Decoding --------------------------------------------------------------------------------
class _PacketReader:
    """Cuts a byte stream into lines and packets, with limits. Shared by both sides."""

    __slots__ = (
        "_buf",
        "_headers",
        "_max_line",
        "_max_packet_bytes",
        "_max_packet_headers",
        "_packet_bytes",
        "_scan_from",
    )

    def __init__(self, *, max_line: int, max_packet_headers: int, max_packet_bytes: int) -> None:
        self._buf = bytearray()
        self._scan_from = 0  # bytes already searched for LF, so a long line is not rescanned
        self._headers: list[tuple[str, str]] = []
        self._packet_bytes = 0
        self._max_line = max_line
        self._max_packet_headers = max_packet_headers
        self._max_packet_bytes = max_packet_bytes

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def pending(self) -> bool:
        """Bytes or headers of an unfinished packet are buffered."""
        return bool(self._buf) or bool(self._headers)

    def next_line(self) -> str | None:
        """One decoded line without its line ending, or None if no full line is buffered."""
        idx = self._buf.find(b"\n", self._scan_from)
        if idx < 0:
            self._scan_from = len(self._buf)
            if len(self._buf) > self._max_line:
                raise RemoteProtocolError(
                    f"AMI line longer than {self._max_line} bytes without a newline"
                )
            return None
        if idx > self._max_line:
            raise RemoteProtocolError(f"AMI line longer than {self._max_line} bytes")
        raw = bytes(self._buf[:idx])
        del self._buf[: idx + 1]
        self._scan_from = 0
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if b"\x00" in raw:
            raise RemoteProtocolError("NUL byte in an AMI line (binary garbage)")
        self._packet_bytes += idx + 1
        return raw.decode("utf-8", errors="replace")

    def next_packet(self) -> Headers | None:
        """The headers of the next complete packet, or None if it is not complete yet."""
        while (line := self.next_line()) is not None:
            if not line:
                if not self._headers:
                    self._packet_bytes = 0
                    continue  # stray blank line between packets: harmless
                packet = tuple(self._headers)
                self._headers = []
                self._packet_bytes = 0
                return packet
            key, sep, value = line.partition(":")
            if not sep:
                raise RemoteProtocolError(f"AMI line without a colon: {line[:80]!r}")
            if not key or key != key.strip() or any(c.isspace() for c in key):
                raise RemoteProtocolError(f"invalid AMI header name: {line[:80]!r}")
            self._headers.append((key, value.lstrip(" \t")))
            if len(self._headers) > self._max_packet_headers:
                raise RemoteProtocolError(
                    f"AMI packet with more than {self._max_packet_headers} headers"
                )
            if self._packet_bytes > self._max_packet_bytes:
                raise RemoteProtocolError(f"AMI packet larger than {self._max_packet_bytes} bytes")
        return None


class _State(enum.Enum):
    BANNER = "banner"  # client only: waiting for the banner line
    PACKETS = "packets"
    CLOSED = "closed"  # EOF seen
    ERROR = "error"  # the peer sent garbage; the connection is finished


class _Connection:
    __slots__ = ("_eof", "_error", "_reader", "_state")

    def __init__(self, *, state: _State, max_line: int, max_headers: int, max_bytes: int) -> None:
        self._reader = _PacketReader(
            max_line=max_line, max_packet_headers=max_headers, max_packet_bytes=max_bytes
        )
        self._state = state
        self._eof = False
        self._error: RemoteProtocolError | None = None

    def _feed(self, data: bytes) -> None:
        if self._eof:
            raise LocalProtocolError("receive_data() called after EOF")
        if data:
            self._reader.feed(data)
        else:
            self._eof = True

    def _fail(self, error: RemoteProtocolError) -> RemoteProtocolError:
        self._state = _State.ERROR
        self._error = error
        return error

    def _next_headers(self) -> Headers | ConnectionClosed | None:
        if self._state is _State.ERROR:
            assert self._error is not None
            raise self._error
        if self._state is _State.CLOSED:
            return None
        try:
            packet = self._reader.next_packet()
        except RemoteProtocolError as exc:
            raise self._fail(exc) from None
        if packet is not None:
            return packet
        if self._eof:
            if self._reader.pending:
                raise self._fail(
                    RemoteProtocolError("AMI connection closed in the middle of a packet")
                )
            self._state = _State.CLOSED
            return ConnectionClosed()
        return None


class AmiClientConnection(_Connection):
    """Client side: parses the banner, responses and events; encodes actions.

    Usage: ``for event in conn.receive_data(chunk): ...`` (``b""`` signals EOF). Events are parsed
    as the returned iterator is consumed, so packets before a garbage line are delivered before
    the `RemoteProtocolError`; unconsumed events stay buffered for the next call.
    """

    __slots__ = ()

    def __init__(
        self,
        *,
        max_line_bytes: int = MAX_CLIENT_LINE_BYTES,
        max_packet_headers: int = MAX_CLIENT_PACKET_HEADERS,
        max_packet_bytes: int = MAX_CLIENT_PACKET_BYTES,
    ) -> None:
        super().__init__(
            state=_State.BANNER,
            max_line=max_line_bytes,
            max_headers=max_packet_headers,
            max_bytes=max_packet_bytes,
        )

    def receive_data(self, data: bytes) -> Iterator[ClientEvent]:
        self._feed(data)
        return self._drain()

    def _drain(self) -> Iterator[ClientEvent]:
        while (event := self.next_event()) is not None:
            yield event

    def next_event(self) -> ClientEvent | None:
        """The next complete event, or None if more data is needed (or after ConnectionClosed)."""
        if self._state is _State.BANNER:
            try:
                line = self._reader.next_line()
            except RemoteProtocolError as exc:
                raise self._fail(exc) from None
            if line is None:
                if self._eof:
                    if self._reader.pending:
                        raise self._fail(RemoteProtocolError("AMI connection closed mid-banner"))
                    self._state = _State.CLOSED
                    return ConnectionClosed()
                return None
            if not line.startswith(_BANNER_PREFIX):
                raise self._fail(RemoteProtocolError(f"not an AMI banner: {line[:80]!r}"))
            self._state = _State.PACKETS
            return AmiBanner(version=line[len(_BANNER_PREFIX) :].strip())
        packet = self._next_headers()
        if packet is None or isinstance(packet, ConnectionClosed):
            return packet
        keys = {k.lower() for k, _ in packet}
        if "event" in keys:  # fact 15: OriginateResponse has Response: too, and is an event
            return AmiEvent(headers=packet)
        if "response" in keys:
            return AmiResponse(headers=packet)
        raise self._fail(
            RemoteProtocolError(f"AMI packet is neither a response nor an event: {packet[:3]!r}")
        )

    def send_action(
        self, name: str, headers: Mapping[str, HeaderValue] | None = None, *, action_id: str
    ) -> bytes:
        """Bytes for ``Action``, ``ActionID`` and `headers` (a sequence value repeats its key)."""
        _check_text("action name", name)
        if not name:
            raise LocalProtocolError("empty AMI action name")
        pairs = _expand(headers or {})
        for key, _ in pairs:
            if key.lower() in ("action", "actionid"):
                raise LocalProtocolError(f"pass {key} through send_action's arguments, not headers")
        return encode_packet([("Action", name), ("ActionID", action_id), *pairs])


class AmiServerConnection(_Connection):
    """Manager side for the test peer: parses actions; encodes the banner, responses, events."""

    __slots__ = ()

    def __init__(
        self,
        *,
        max_line_bytes: int = MAX_SERVER_LINE_BYTES,
        max_packet_headers: int = MAX_SERVER_PACKET_HEADERS,
        max_packet_bytes: int = MAX_SERVER_PACKET_BYTES,
    ) -> None:
        super().__init__(
            state=_State.PACKETS,
            max_line=max_line_bytes,
            max_headers=max_packet_headers,
            max_bytes=max_packet_bytes,
        )

    def receive_data(self, data: bytes) -> Iterator[ServerEvent]:
        self._feed(data)
        return self._drain()

    def _drain(self) -> Iterator[ServerEvent]:
        while (event := self.next_event()) is not None:
            yield event

    def next_event(self) -> ServerEvent | None:
        packet = self._next_headers()
        if packet is None or isinstance(packet, ConnectionClosed):
            return packet
        return AmiAction(headers=packet)

    @staticmethod
    def banner(version: str = DEFAULT_BANNER_VERSION) -> bytes:
        """The greeting line; no blank line follows it (fact 12)."""
        _check_text("banner version", version)
        return f"{_BANNER_PREFIX}{version}\r\n".encode()

    @staticmethod
    def send_response(
        response: str, action_id: str | None, headers: Iterable[tuple[str, str]] = ()
    ) -> bytes:
        """``Response:`` first, then ``ActionID`` (fact 14: always the second header) if any."""
        first = [("Response", response)]
        if action_id is not None:
            first.append(("ActionID", action_id))
        return encode_packet([*first, *headers])

    @staticmethod
    def send_event(name: str, headers: Iterable[tuple[str, str]] = ()) -> bytes:
        """``Event: name`` then `headers` in the given order (order differs per event, fact 17)."""
        return encode_packet([("Event", name), *headers])
