"""The administration API (admins only, `Rule.ADMIN`) and the `/admin` page.

    GET    /api/admin/{kind}          every row, each with its "version"
    POST   /api/admin/{kind}          create -> 201 the row (version 1)
    GET    /api/admin/{kind}/{key}    one row; `ETag: "<version>"`
    PUT    /api/admin/{kind}/{key}    replace; the version read goes in `If-Match: "<n>"` or
                                      the body's "version" (neither: 428); stale: 409
    DELETE /api/admin/{kind}/{key}    remove (`If-Match` optional) -> 200 {"deleted", "version"}
    GET    /api/admin/flows           the call flows in use, read only (they live in files)
    GET    /api/not-ready-reasons     the reasons' labels the desktop offers (any account)

`kind` is agents, queues, teams or not-ready-reasons (`centralino.admin.models.Kind`). Bodies
are the settings' own shapes (`[[acd.agents]]`, `[[acd.queues]]` with their `steps`), validated
as the TOML file is: a field error answers 422 with the field's path, a change the whole refuses
(a queue no agent can serve, an unknown team) 422 with `check-config`'s message. Every change
is audited with who, what, and the row before and after (in the change's own transaction) and
reaches every process through `NOTIFY config_changes` (`centralino.admin.watch`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from centralino.admin.models import Invalid, Kind, Problem, Versioned, parse_row
from centralino.admin.store import Conflict, NotFound, PgConfigStore
from centralino.web.auth import current_principal
from centralino.web.pages import _page, json_body
from ivr.flow.library import FlowLibrary

log = logging.getLogger(__name__)

ADMIN_KINDS = tuple(Kind)
KEY_PARAM = {Kind.AGENTS: "id", Kind.QUEUES: "name", Kind.TEAMS: "name", Kind.REASONS: "code"}
_ETAG = re.compile(r'^\s*(?:W/)?"?(\d{1,9})"?\s*$')


@dataclass(frozen=True, slots=True)
class AdminDeps:
    store: PgConfigStore
    flows: Callable[[], FlowLibrary] | None = None


ADMIN: web.AppKey[AdminDeps] = web.AppKey("centralino_admin", AdminDeps)
REASONS: web.AppKey[Callable[[], Sequence[str]]] = web.AppKey("centralino_reasons")


def collection_path(kind: Kind) -> str:
    return f"/api/admin/{kind.value}"


def item_path(kind: Kind) -> str:
    return f"/api/admin/{kind.value}/{{{KEY_PARAM[kind]}}}"


def _view(v: Versioned) -> dict[str, Any]:
    return v.row.model_dump(mode="json") | {"version": v.version}


def _problems(status: int, message: str, problems: list[Problem]) -> web.Response:
    return web.json_response(
        {"error": message, "problems": [{"path": p.path, "message": p.message} for p in problems]},
        status=status,
    )


def _refused(exc: Invalid, what: str) -> web.Response:
    log.warning("admin: %s refused: %s", what, exc)
    return _problems(422, str(exc), exc.problems)


def _etag(version: int) -> str:
    return f'"{version}"'


def _version(request: web.Request, body: dict[str, Any] | None) -> int | web.Response | None:
    """The version the client read: If-Match, else the body's "version" (taken out of the
    body either way: it is not a field of the row); None when neither."""
    in_body = body.pop("version", None) if body is not None else None
    header = request.headers.get("If-Match")
    if header is not None:
        m = _ETAG.match(header)
        if m is None:
            return web.json_response({"error": 'If-Match: expected "<version>"'}, status=400)
        return int(m.group(1))
    if in_body is None:
        return None
    if not isinstance(in_body, int) or isinstance(in_body, bool) or in_body < 1:
        return web.json_response({"error": "version: expected a positive integer"}, status=400)
    return in_body


def _actor(request: web.Request) -> str:
    return current_principal(request).username


def _handlers(kind: Kind) -> dict[str, Callable[[web.Request], Any]]:
    param = KEY_PARAM[kind]

    async def list_rows(request: web.Request) -> web.Response:
        config = await request.app[ADMIN].store.load()
        return web.json_response([_view(v) for v in config.of(kind)])

    async def get_row(request: web.Request) -> web.Response:
        key = request.match_info[param]
        found = (await request.app[ADMIN].store.load()).find(kind, key)
        if found is None:
            return web.json_response({"error": f"no {kind.value} {key!r}"}, status=404)
        return web.json_response(_view(found), headers={"ETag": _etag(found.version)})

    async def create_row(request: web.Request) -> web.Response:
        body = await json_body(request)
        if isinstance(body, web.Response):
            return body
        body.pop("version", None)
        try:
            row = parse_row(kind, body)
            change = await request.app[ADMIN].store.create(
                kind, row, actor=_actor(request), remote=request.remote
            )
        except Invalid as exc:
            return _refused(exc, f"creating {kind.value}")
        except Conflict as exc:
            return web.json_response({"error": str(exc)}, status=409)
        assert change.after is not None
        return web.json_response(
            _view(change.after), status=201, headers={"ETag": _etag(change.after.version)}
        )

    async def update_row(request: web.Request) -> web.Response:
        key = request.match_info[param]
        body = await json_body(request)
        if isinstance(body, web.Response):
            return body
        version = _version(request, body)
        if isinstance(version, web.Response):
            return version
        if version is None:
            return web.json_response(
                {"error": 'send the version you read: If-Match: "<version>" or "version"'},
                status=428,
            )
        try:
            row = parse_row(kind, body)
            change = await request.app[ADMIN].store.update(
                kind, key, row, version=version, actor=_actor(request), remote=request.remote
            )
        except Invalid as exc:
            return _refused(exc, f"updating {kind.value} {key!r}")
        except NotFound as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except Conflict as exc:
            return web.json_response({"error": str(exc), "version": exc.current}, status=409)
        assert change.after is not None
        return web.json_response(_view(change.after), headers={"ETag": _etag(change.after.version)})

    async def delete_row(request: web.Request) -> web.Response:
        key = request.match_info[param]
        version = _version(request, None)
        if isinstance(version, web.Response):
            return version
        try:
            change = await request.app[ADMIN].store.delete(
                kind, key, version=version, actor=_actor(request), remote=request.remote
            )
        except Invalid as exc:
            return _refused(exc, f"deleting {kind.value} {key!r}")
        except NotFound as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except Conflict as exc:
            return web.json_response({"error": str(exc), "version": exc.current}, status=409)
        assert change.before is not None
        return web.json_response({"deleted": key, "version": change.before.version})

    return {
        "list": list_rows,
        "get": get_row,
        "create": create_row,
        "update": update_row,
        "delete": delete_row,
    }


async def list_flows(request: web.Request) -> web.Response:
    flows = request.app[ADMIN].flows
    if flows is None:
        return web.json_response([])
    library = flows()
    out = []
    for name, flow in sorted(library.flows.items()):
        hours = None
        if flow.hours is not None:
            hours = {
                "timezone": flow.hours.timezone,
                "weekly": {
                    str(day): [
                        [
                            i.start.isoformat("minutes"),
                            "24:00" if i.to_midnight else i.end.isoformat("minutes"),
                        ]
                        for i in intervals
                    ]
                    for day, intervals in sorted(flow.hours.weekly.items())
                },
            }
        out.append(
            {
                "name": name,
                "description": flow.description,
                "numbers": list(flow.numbers),
                "languages": list(flow.languages),
                "start": flow.start,
                "steps": sorted(flow.steps),
                "hours": hours,
            }
        )
    return web.json_response(out)


async def not_ready_reasons(request: web.Request) -> web.Response:
    """The labels the desktop offers, as this process last applied them (any account)."""
    return web.json_response(list(request.app[REASONS]()))


async def admin_page(request: web.Request) -> web.FileResponse:
    return _page("admin.html")  # the pages' strict CSP: our own scripts and styles only


def add_admin(
    app: web.Application,
    *,
    store: PgConfigStore,
    flows: Callable[[], FlowLibrary] | None = None,
    reasons: Callable[[], Sequence[str]] = tuple,
) -> None:
    """`reasons`: the not-ready reasons as this process applied them (`ConfigWatch`)."""
    app[ADMIN] = AdminDeps(store=store, flows=flows)
    app[REASONS] = reasons
    r = app.router
    for kind in ADMIN_KINDS:
        h = _handlers(kind)
        r.add_get(collection_path(kind), h["list"])
        r.add_post(collection_path(kind), h["create"])
        r.add_get(item_path(kind), h["get"])
        r.add_put(item_path(kind), h["update"])
        r.add_delete(item_path(kind), h["delete"])
    r.add_get("/api/admin/flows", list_flows)
    r.add_get("/api/not-ready-reasons", not_ready_reasons)
    r.add_get("/admin", admin_page)
