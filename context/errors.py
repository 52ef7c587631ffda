"""Errors of the customer-context domain, named for whose fault they are."""

from __future__ import annotations


class ContextError(Exception):
    """Base class for context errors."""


# --- our misuse (raise loudly) -------------------------------------------------------------


class ConfigurationError(ContextError):
    """A connector, pipeline or fan-out was configured wrongly (our fault, found at build time)."""


class UnknownPhase(ContextError):
    """A ticket move named a phase that the ticket's pipeline does not have."""


class IllegalMove(ContextError):
    """A ticket move the pipeline forbids in every case (same phase, or a closed ticket)."""


class NotFound(ContextError):
    """A customer or ticket id that does not exist (or no longer does, after a merge)."""


class MergeError(ContextError):
    """A merge that makes no sense: a customer into itself, or into an already merged one."""


# --- the owner of the data misbehaved (mark the source failed, never crash the call) ---------


class ConnectorError(ContextError):
    """A backend (ERP, CRM, ...) did not give a usable answer. `source` names the backend."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message


class BackendUnavailable(ConnectorError):
    """Connection refused/reset or an HTTP 5xx: the backend is down or failing."""


class BackendBadResponse(ConnectorError):
    """The backend answered, but with something we cannot use (bad JSON, oversized, wrong shape)."""
