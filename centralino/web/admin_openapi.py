"""The administration API's part of `/api/openapi.json`: its paths, and its bodies' schemas
taken from the settings' own pydantic models (what the API validates against is what it
describes)."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from centralino.admin.models import MODELS, Kind
from centralino.web.admin import KEY_PARAM, collection_path, item_path

_SCHEMA_NAMES = {
    Kind.AGENTS: "Agent",
    Kind.QUEUES: "Queue",
    Kind.TEAMS: "Team",
    Kind.REASONS: "NotReadyReason",
}
_REF = "#/components/schemas/{model}"
_VERSION = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_REASONS = {
    400: "bad input (not JSON, a malformed If-Match or version)",
    401: "login required",
    403: "forbidden (admins only; CSRF token or Origin)",
    404: "unknown",
    409: "changed since the version sent, or exists already",
    413: "body too large",
    415: "not JSON",
    422: "refused by the configuration's checks (each problem with its field path)",
    428: "send the version read (If-Match or the body's version)",
}


def _errors(*statuses: int) -> dict[str, Any]:
    return {
        str(s): _json(_ref("AdminError" if s == 422 else "Error"), _REASONS[s]) for s in statuses
    }


def _with_version(schema: dict[str, Any], *, required: bool) -> dict[str, Any]:
    out = copy.deepcopy(schema)
    out["properties"] = {**out.get("properties", {}), "version": _VERSION}
    if required:
        out["required"] = [*out.get("required", []), "version"]
    return out


def admin_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {
        "AdminError": {
            "type": "object",
            "required": ["error", "problems"],
            "properties": {
                "error": {"type": "string"},
                "problems": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["path", "message"],
                        "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
                    },
                },
            },
        },
        "Flow": {
            "type": "object",
            "required": ["name", "numbers", "languages", "start", "steps"],
            "properties": {
                "name": {"type": "string"},
                "description": {"type": "string"},
                "numbers": {"type": "array", "items": {"type": "string"}},
                "languages": {"type": "array", "items": {"type": "string"}},
                "start": {"type": "string"},
                "steps": {"type": "array", "items": {"type": "string"}},
                "hours": {"type": ["object", "null"]},
            },
        },
    }
    for kind, name in _SCHEMA_NAMES.items():
        model: type[BaseModel] = MODELS[kind]
        schema = model.model_json_schema(ref_template=_REF, mode="validation")
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
        schemas[f"{name}Update"] = _with_version(schema, required=False)
        shown = model.model_json_schema(ref_template=_REF, mode="serialization")
        shown.pop("$defs", None)  # the same as the validation schema's
        schemas[f"{name}Row"] = _with_version(shown, required=True)
    return schemas


def _if_match(required: bool) -> dict[str, Any]:
    return {
        "name": "If-Match",
        "in": "header",
        "required": required,
        "description": 'the version read, as its ETag ("3"); or the body\'s "version"',
        "schema": {"type": "string"},
    }


_CSRF = {
    "name": "X-CSRF-Token",
    "in": "header",
    "required": False,
    "description": "the session's token (GET /api/session); required with the cookie",
    "schema": {"type": "string"},
}


def admin_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for kind, name in _SCHEMA_NAMES.items():
        key = {
            "name": KEY_PARAM[kind],
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
        }
        row = _ref(f"{name}Row")
        body = {"required": True, "content": {"application/json": {"schema": _ref(name)}}}
        update = {
            "required": True,
            "content": {"application/json": {"schema": _ref(f"{name}Update")}},
        }
        etag = {"ETag": {"description": "the row's version", "schema": {"type": "string"}}}
        paths[collection_path(kind)] = {
            "get": {
                "summary": f"every {kind.value} row, with its version (admins)",
                "responses": {"200": _json({"type": "array", "items": row}), **_errors(401, 403)},
            },
            "post": {
                "summary": f"create one of {kind.value}; validated, audited, applied everywhere",
                "parameters": [_CSRF],
                "requestBody": body,
                "responses": {
                    "200": _json(row, "never sent: creation answers 201"),
                    "201": {**_json(row, "created"), "headers": etag},
                    **_errors(400, 401, 403, 409, 413, 415, 422),
                },
            },
        }
        paths[item_path(kind)] = {
            "get": {
                "parameters": [key],
                "responses": {
                    "200": {**_json(row), "headers": etag},
                    **_errors(401, 403, 404),
                },
            },
            "put": {
                "summary": "replace it, naming the version read (If-Match or version)",
                "parameters": [key, _if_match(False), _CSRF],
                "requestBody": update,
                "responses": {
                    "200": {**_json(row), "headers": etag},
                    **_errors(400, 401, 403, 404, 409, 413, 415, 422, 428),
                },
            },
            "delete": {
                "summary": "remove it (refused when the rest would not hold: 422)",
                "parameters": [key, _if_match(False), _CSRF],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["deleted", "version"],
                            "properties": {"deleted": {"type": "string"}, "version": _VERSION},
                        }
                    ),
                    **_errors(400, 401, 403, 404, 409, 422),
                },
            },
        }
    paths["/api/admin/flows"] = {
        "get": {
            "summary": "the call flows in use, read only (they live in the settings and files)",
            "responses": {
                "200": _json({"type": "array", "items": _ref("Flow")}),
                **_errors(401, 403),
            },
        }
    }
    paths["/api/not-ready-reasons"] = {
        "get": {
            "summary": "the not-ready reasons' labels the desktop offers (any account)",
            "responses": {
                "200": _json({"type": "array", "items": {"type": "string"}}),
                **_errors(401),
            },
        }
    }
    return paths
