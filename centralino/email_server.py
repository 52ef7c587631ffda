"""The SMTP server that takes customers' email (aiosmtpd): a thin shell around
`centralino.channels.email_mime` and the message inbox.

Mail is accepted for the configured domains only (no relaying). `250` is answered only once
the message is committed in PostgreSQL; with the database unreachable the answer is `451`
(temporary), so the sending server queues it and retries, as SMTP servers do. A re-delivered
message (same Message-ID) is answered 250 and stored once. Malformed messages and loops are
refused with a permanent 554; messages over the size limit with 552 (by aiosmtpd, during DATA).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

from aiosmtpd.smtp import SMTP, Envelope, Session

from centralino.channels.email_mime import MailLoop, parse_email
from centralino.channels.errors import MalformedPayload
from context.inbox import MessageInbox
from context.messages import MessageBatch, MessageKind

log = logging.getLogger(__name__)

# RFC 5321 section 4.5.3.1.7 asks for at least 64 KB; providers accept 25 to 35 MB.
DEFAULT_MAX_MESSAGE_BYTES = 25 * 1024 * 1024


class InboundMailHandler:
    """aiosmtpd's handler hooks (`handle_RCPT`, `handle_DATA`)."""

    def __init__(self, *, inbox: MessageInbox, domains: Collection[str]) -> None:
        self._inbox = inbox
        self._domains = frozenset(d.lower().strip() for d in domains)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        domain = address.rpartition("@")[2].lower()
        if domain not in self._domains:
            log.warning("SMTP from %s: refused recipient %s (not ours)", session.peer, address)
            return "550 5.7.1 we do not accept mail for that domain"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        raw = content.encode() if isinstance(content, str) else content or b""
        try:
            message = parse_email(raw, recipients=tuple(envelope.rcpt_tos))
        except MailLoop as exc:
            log.warning("SMTP from %s: refused, %s", session.peer, exc)
            return "554 5.4.6 routing loop detected"
        except MalformedPayload as exc:
            log.warning("SMTP from %s: refused malformed message: %s", session.peer, exc)
            return f"554 5.6.0 malformed message: {str(exc)[:200]}"
        try:
            (stored,) = await self._inbox.receive(MessageBatch(messages=(message,)))
        except Exception as exc:  # the transaction's boundary: the sender will retry
            log.warning(
                "SMTP message %s not stored, the sender will retry (%s: %s)",
                message.provider_message_id,
                type(exc).__name__,
                exc,
            )
            return "451 4.3.0 temporarily unable to store the message, try again later"
        if message.kind is not MessageKind.MESSAGE:
            log.info(
                "SMTP message %s from %s is an %s: kept, not routed",
                message.provider_message_id,
                message.sender,
                message.kind,
            )
        return f"250 2.0.0 OK {'already stored' if stored.duplicate else 'stored'}"


class EmailServer:
    """Owns the listening socket; every session is aiosmtpd's protocol on our event loop."""

    def __init__(
        self,
        *,
        handler: InboundMailHandler,
        host: str,
        port: int,
        hostname: str = "centralino",
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._hostname = hostname
        self._max_bytes = max_message_bytes
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the SMTP server is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        loop = asyncio.get_running_loop()

        def protocol() -> SMTP:
            return SMTP(
                self._handler,
                data_size_limit=self._max_bytes,
                enable_SMTPUTF8=True,
                hostname=self._hostname,
                ident="Centralino ESMTP",
                loop=loop,
            )

        self._server = await loop.create_server(protocol, self._host, self._port)
        log.info("SMTP server on %s:%d", self._host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
