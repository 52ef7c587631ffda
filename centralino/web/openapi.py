"""`GET /api/openapi.json`: an OpenAPI 3.1 description of the JSON APIs behind the pages and
the login (a skeleton: paths, methods, parameters, security and the main bodies; the admin API
will extend it). A test checks it lists exactly the `/api/` routes the app serves."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from centralino.web.admin_openapi import admin_paths, admin_schemas

OPENAPI_PATH = "/api/openapi.json"

_ERROR = {"$ref": "#/components/schemas/Error"}
_AGENT = {"$ref": "#/components/schemas/AgentView"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "bad input",
        401: "login required",
        403: "forbidden (role, team, CSRF token or Origin)",
        404: "unknown",
        409: "the state machine refuses",
        415: "not JSON",
        421: "not one of our host names",
        501: "not configured",
        503: "unavailable",
    }
    return {str(s): _json(_ERROR, reasons[s]) for s in statuses}


_AGENT_ID = {"name": "agent_id", "in": "path", "required": True, "schema": {"type": "string"}}
_CSRF = {
    "name": "X-CSRF-Token",
    "in": "header",
    "required": False,
    "description": "the session's token (GET /api/session); required with the cookie",
    "schema": {"type": "string"},
}


def spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Centralino", "version": "0.1.0"},
        "security": [{"session": []}, {"token": []}],
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "centralino_session"},
                "token": {"type": "http", "scheme": "bearer"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                },
                "AgentView": {
                    "type": "object",
                    "required": ["agent_id", "state", "reason", "teams", "load"],
                    "properties": {
                        "agent_id": {"type": "string"},
                        "state": {"type": "string"},
                        "since_epoch_s": {"type": ["number", "null"]},
                        "reason": {"type": "string"},
                        "teams": {"type": "array", "items": {"type": "string"}},
                        "load": {"type": "object", "additionalProperties": {"type": "integer"}},
                    },
                },
                **admin_schemas(),
                "Session": {
                    "type": "object",
                    "properties": {
                        "username": {"type": "string"},
                        "role": {"enum": ["agent", "supervisor", "admin"]},
                        "agent_id": {"type": ["string", "null"]},
                        "teams": {"type": "array", "items": {"type": "string"}},
                        "csrf_token": {"type": ["string", "null"]},
                    },
                },
            },
        },
        "paths": {
            "/api/openapi.json": {
                "get": {"security": [], "responses": {"200": _json({"type": "object"})}}
            },
            "/api/session": {
                "get": {
                    "summary": "who is logged in, and the session's CSRF token",
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Session"}),
                        **_errors(401),
                    },
                }
            },
            "/api/about": {
                "get": {"responses": {"200": _json({"type": "object"}), **_errors(401)}}
            },
            "/api/agents": {
                "get": {
                    "summary": "the agents this account may reach",
                    "responses": {
                        "200": _json({"type": "array", "items": _AGENT}),
                        **_errors(401),
                    },
                }
            },
            "/api/agents/{agent_id}": {
                "get": {
                    "parameters": [_AGENT_ID],
                    "responses": {"200": _json(_AGENT), **_errors(401, 403, 404)},
                }
            },
            "/api/agents/{agent_id}/state": {
                "post": {
                    "summary": "set an agent's state (audited when forced by someone else)",
                    "parameters": [_AGENT_ID, _CSRF],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["state"],
                                    "properties": {
                                        "state": {"enum": ["ready", "not_ready", "logged_out"]},
                                        "reason": {"type": "string", "maxLength": 64},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(_AGENT),
                        **_errors(400, 401, 403, 404, 409, 415),
                    },
                }
            },
            "/api/agents/{agent_id}/supervise": {
                "post": {
                    "summary": "ring the supervisor's own phone into the agent's call (ChanSpy: "
                    "listen, whisper or barge); supervisors for their teams, admins; audited",
                    "parameters": [_AGENT_ID, _CSRF],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["mode"],
                                    "properties": {
                                        "mode": {"enum": ["listen", "whisper", "barge"]},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["agent_id", "mode", "phone"],
                                "properties": {
                                    "agent_id": {"type": "string"},
                                    "mode": {"type": "string"},
                                    "phone": {"type": "string"},
                                },
                            }
                        ),
                        **_errors(400, 401, 403, 409),
                    },
                }
            },
            "/api/identities/link": {
                "post": {
                    "summary": "attach an identity (a caller's number) to a customer; audited",
                    "parameters": [_CSRF],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["identity_kind", "identity_value", "customer_id"],
                                    "properties": {
                                        "identity_kind": {"type": "string"},
                                        "identity_value": {"type": "string"},
                                        "customer_id": {"type": "integer", "minimum": 1},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json({"type": "object"}),
                        **_errors(400, 401, 403, 404, 415, 501),
                    },
                }
            },
            "/api/calls/recent": {
                "get": {
                    "summary": "recent calls of the agents this account may reach",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                        }
                    ],
                    "responses": {
                        "200": _json({"type": "array", "items": {"type": "object"}}),
                        **_errors(400, 401),
                    },
                }
            },
            "/api/wallboard": {
                "get": {
                    "summary": "queue and team figures (supervisors and admins)",
                    "responses": {"200": _json({"type": "object"}), **_errors(401, 403, 503)},
                }
            },
            **admin_paths(),
        },
    }


async def openapi_json(request: web.Request) -> web.Response:
    """The spec of the routes this app serves (an optional part, such as supervision without
    a telephony link, is left out when it is not registered)."""
    served = {
        (route.resource.canonical, route.method.lower())
        for route in request.app.router.routes()
        if route.resource is not None
    }
    document = spec()
    paths = {}
    for path, item in document["paths"].items():
        kept = {method: op for method, op in item.items() if (path, method) in served}
        if kept:
            paths[path] = kept
    return web.json_response({**document, "paths": paths})


def add_openapi(app: web.Application) -> None:
    app.router.add_get(OPENAPI_PATH, openapi_json)
