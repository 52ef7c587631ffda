"""Why a webhook delivery was refused. Every one is the sender's fault (the provider, or
whoever pretends to be it): the handler answers 4xx, logs it and stores nothing."""

from __future__ import annotations


class WebhookRejected(ValueError):
    """Base: the request is refused; `str()` says why, for the log."""


class BadSignature(WebhookRejected):
    """The signature header is missing, malformed or does not match the body."""


class MalformedPayload(WebhookRejected):
    """The body is not the provider's format (bad JSON or form, missing fields, wrong types)."""


class HandshakeRefused(WebhookRejected):
    """A verification handshake with the wrong token or mode."""
