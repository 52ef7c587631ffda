"""Structured logging: one line per event, optional JSON, carrying the current call's ids.

`bind_call(uniqueid=..., linkedid=...)` sets context variables that every log record emitted in
that task (and tasks it spawns) carries, so a call can be followed across modules.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

_call: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "centralino_call", default=None
)


@contextmanager
def bind_call(**ids: str) -> Iterator[None]:
    """Attach call ids (uniqueid, linkedid, peer, ...) to every log record in this context."""
    current = dict(_call.get() or {})
    current.update({k: v for k, v in ids.items() if v})
    token = _call.set(current)
    try:
        yield
    finally:
        _call.reset(token)


def call_ids() -> dict[str, str]:
    return dict(_call.get() or {})


class _CallFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.call = call_ids()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update(getattr(record, "call", {}) or {})
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        ids = " ".join(f"{k}={v}" for k, v in (getattr(record, "call", {}) or {}).items())
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if ids:
            line += f" [{ids}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str = "INFO", *, json_lines: bool = False) -> None:
    """Install one stderr handler on the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_centralino", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler.addFilter(_CallFilter())
    handler._centralino = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
