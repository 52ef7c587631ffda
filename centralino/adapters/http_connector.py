"""A generic HTTP/JSON connector, configured per backend (ERP, CRM, anything with an API).

Per backend: a base URL; one or more requests, each a URL template (`{phone}`, `{email}`,
`{chat}`, `{whatsapp}` from the caller's identity, `{link}` for the id in the system the
backend `needs_link`s, `{link:SYSTEM}` for any other linked id); where the list of items sits in
the JSON answer; a field mapping (fact field -> dotted path in each item); the auth header value
read from an environment variable (never from the config file); a per-request timeout and a
maximum body size. The `HttpClient` is passed in (the root owns its connection pools).

Faults are the backend's: 5xx and connection errors raise `BackendUnavailable`; malformed JSON,
an oversized body or a wrong shape raise `BackendBadResponse`; a timeout raises `TimeoutError`.
A 404 means "this backend knows nothing about the customer": no facts, no error.
"""

from __future__ import annotations

import asyncio
import os
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from centralino.adapters.http_client import (
    HttpBodyTooLarge,
    HttpClient,
    HttpConnectionError,
    HttpError,
)
from context.errors import BackendBadResponse, BackendUnavailable, ConfigurationError
from context.identity import phone_twin
from context.models import ConnectorQuery, Fact, IdentityKind, JsonValue
from context.ports import Clock

# A pop needs a customer's summary, not their archive: answers above this are refused rather
# than buffered (protects memory under load; the demo backends answer in a few KiB).
DEFAULT_MAX_BODY_BYTES = 256 * 1024
# The desktop shows the latest few items per kind; more would only cost bytes and parsing.
DEFAULT_MAX_ITEMS = 50


@dataclass(frozen=True, slots=True)
class FactExtract:
    """One kind of fact taken out of an answer."""

    kind: str  # the fact kind, e.g. "invoice"
    items_path: str = ""  # dotted path to the list of items; "" = the body (object or list)
    fields: Mapping[str, str] = field(default_factory=dict)  # fact field -> dotted item path;
    # empty = keep each item whole


@dataclass(frozen=True, slots=True)
class HttpRequestSpec:
    url_template: str  # relative to base_url, e.g. "/customers/{link}/invoices"
    extracts: tuple[FactExtract, ...]  # one answer may feed several kinds (invoices, orders)

    def placeholders(self) -> set[str]:
        return {f for _, f, _, _ in string.Formatter().parse(self.url_template) if f}


@dataclass(frozen=True, slots=True)
class HttpBackendConfig:
    name: str
    base_url: str
    requests: tuple[HttpRequestSpec, ...]
    needs_link: str | None = None
    auth_header: str = "Authorization"
    auth_env: str | None = None  # name of the environment variable holding the header value
    timeout_s: float = 1.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_items: int = DEFAULT_MAX_ITEMS


_IDENTITY_KEYS = {k.value for k in IdentityKind}


class HttpConnector:
    def __init__(
        self,
        *,
        config: HttpBackendConfig,
        client: HttpClient,
        clock: Clock,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if not config.requests or not all(r.extracts for r in config.requests):
            raise ConfigurationError(f"backend {config.name!r}: no requests or no extracts")
        for spec in config.requests:
            for name in spec.placeholders():
                if name in _IDENTITY_KEYS or name == "link" or name.startswith("link:"):
                    continue
                raise ConfigurationError(
                    f"backend {config.name!r}: unknown placeholder {{{name}}} in "
                    f"{spec.url_template!r}"
                )
            if "link" in spec.placeholders() and config.needs_link is None:
                raise ConfigurationError(f"backend {config.name!r} uses {{link}}: set needs_link")
        parts = urlsplit(config.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ConfigurationError(
                f"backend {config.name!r}: base_url must be http(s)://host[:port][/path]"
            )
        self._config = config
        self._pool = client.pool(f"{parts.scheme}://{parts.netloc}")
        self._prefix = parts.path.rstrip("/")
        # Placeholders of each request and the dotted paths of its extracts, taken apart once
        # (they never change; a pop maps dozens of fields).
        self._specs = [
            (
                spec,
                frozenset(spec.placeholders()),
                tuple(_ExtractPlan.of(extract) for extract in spec.extracts),
            )
            for spec in config.requests
        ]
        self._clock = clock
        self._headers: dict[str, str] = {"Accept": "application/json"}
        if config.auth_env:
            env = os.environ if environ is None else environ
            value = env.get(config.auth_env)
            if not value:
                raise ConfigurationError(
                    f"backend {config.name!r}: environment variable {config.auth_env} is not set"
                )
            self._headers[config.auth_header] = value
        try:
            self._pool.request_bytes(self._prefix + "/", self._headers)
        except ValueError as exc:
            raise ConfigurationError(f"backend {config.name!r}: {exc}") from None

    @property
    def name(self) -> str:
        return self._config.name

    @property
    def needs_link(self) -> str | None:
        return self._config.needs_link

    def _values(self, query: ConnectorQuery) -> dict[str, str]:
        values: dict[str, str] = {}
        if query.identity is not None:
            values[str(query.identity.kind)] = query.identity.value
            twin = phone_twin(query.identity)  # a WhatsApp id (wa_id digits) is a phone number
            if query.identity.kind is IdentityKind.WHATSAPP and twin is not None:
                values.setdefault("phone", twin.value)
        for system, external_id in query.links.items():
            values[f"link:{system}"] = external_id
        if self._config.needs_link and self._config.needs_link in query.links:
            values["link"] = query.links[self._config.needs_link]
        return values

    async def fetch(self, query: ConnectorQuery) -> list[Fact]:
        values = self._values(query)
        plans = [(s, plan) for s, needs, plan in self._specs if needs <= values.keys()]
        if len(plans) == 1:
            return await self._one(*plans[0], values)
        results = await asyncio.gather(*(self._one(s, plan, values) for s, plan in plans))
        return [fact for facts in results for fact in facts]

    async def _one(
        self,
        spec: HttpRequestSpec,
        extracts: tuple[_ExtractPlan, ...],
        values: Mapping[str, str],
    ) -> list[Fact]:
        path = spec.url_template.format_map({k: quote(v, safe="") for k, v in values.items()})
        name = self._config.name
        limit = self._config.max_body_bytes
        request = self._pool.request_bytes(self._prefix + path, self._headers)
        try:
            async with asyncio.timeout(self._config.timeout_s):
                answer = await self._pool.get(request, max_body=limit)
        except HttpBodyTooLarge as exc:
            raise BackendBadResponse(name, f"body of {path} over {limit} bytes") from exc
        except HttpConnectionError as exc:
            raise BackendUnavailable(name, f"{exc} ({path})") from exc
        except HttpError as exc:  # not HTTP: a proxy's page, a wrong port, a broken server
            raise BackendBadResponse(name, f"{exc} ({path})") from exc
        if answer.status == 404:
            return []
        if answer.status >= 500:
            raise BackendUnavailable(name, f"HTTP {answer.status} from {path}")
        if answer.status != 200:
            raise BackendBadResponse(name, f"HTTP {answer.status} from {path}")
        body = answer.body
        fetched_at = self._clock.now()
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BackendBadResponse(name, f"malformed JSON from {path}") from exc
        facts: list[Fact] = []
        for extract in extracts:
            items = _items(document, extract.items_path)
            if items is None:
                raise BackendBadResponse(name, f"no list at {extract.items_dotted!r} in {path}")
            for item in items[: self._config.max_items]:
                if not isinstance(item, dict):
                    raise BackendBadResponse(name, f"an item of {path} is not an object")
                data = (
                    {out: _get(item, parts) for out, parts in extract.fields}
                    if extract.fields
                    else dict(item)
                )
                facts.append(Fact(source=name, kind=extract.kind, data=data, fetched_at=fetched_at))
        return facts

    async def warm_up(self, connections: int) -> int:
        """Open up to `connections` keep-alive connections to the backend now, so a burst of
        calls finds them pooled instead of paying a TCP (and TLS) handshake each. Returns how
        many are ready."""
        return await self._pool.warm_up(connections)


def _parts(dotted: str) -> tuple[str, ...]:
    return tuple(dotted.split(".")) if dotted else ()


@dataclass(frozen=True, slots=True)
class _ExtractPlan:
    """A `FactExtract` with its dotted paths taken apart."""

    kind: str
    items_dotted: str
    items_path: tuple[str, ...]
    fields: tuple[tuple[str, tuple[str, ...]], ...]  # (fact field, item path); () = whole item

    @classmethod
    def of(cls, extract: FactExtract) -> _ExtractPlan:
        return cls(
            kind=extract.kind,
            items_dotted=extract.items_path,
            items_path=_parts(extract.items_path),
            fields=tuple((out, _parts(src)) for out, src in extract.fields.items()),
        )


def _get(document: Any, parts: tuple[str, ...]) -> JsonValue:
    node = document
    for part in parts:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node  # type: ignore[no-any-return]


def _items(document: Any, path: tuple[str, ...]) -> list[Any] | None:
    node = _get(document, path)
    if isinstance(node, dict):
        return [node]
    if isinstance(node, list):
        return node
    return None
