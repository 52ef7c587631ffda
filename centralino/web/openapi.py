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
        413: "body too large",
        415: "not JSON",
        421: "not one of our host names",
        501: "not configured",
        502: "the provider refused it or stayed unavailable",
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


def _id_path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


def _object(required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


_STRING = {"type": "string"}
# The written channels (centralino/messaging.py): timeline, replies, conversations, tickets.
_MESSAGING_PATHS: dict[str, Any] = {
    "/api/timeline": {
        "get": {
            "summary": "a customer's timeline on every channel, newest first (supervisors "
            "and admins)",
            "parameters": [
                {"name": "phone", "in": "query", "description": "E.164", "schema": _STRING},
                {"name": "email", "in": "query", "schema": _STRING},
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1},
                },
            ],
            "responses": {
                "200": _json(_object(["customer", "items"], customer={}, items={})),
                **_errors(400, 401, 403, 404, 409),
            },
        }
    },
    "/api/messages": {
        "post": {
            "summary": "send a WhatsApp or SMS reply once per idempotency key (an agent to "
            "their conversations' contacts, a supervisor to their teams', an admin to anyone)",
            "parameters": [_CSRF],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": _object(
                            ["channel", "to", "text"],
                            channel={"enum": ["whatsapp", "sms"]},
                            to=_STRING,
                            text=_STRING,
                            idempotency_key=_STRING,
                            customer_id={"type": "integer"},
                        )
                    }
                },
            },
            "responses": {
                "200": _json(_object(["state"], state=_STRING)),
                **_errors(400, 401, 403, 409, 413, 502, 503),
            },
        }
    },
    "/api/conversations": {
        "get": {
            "summary": "an agent's open written conversations and their latest messages",
            "parameters": [
                {"name": "agent_id", "in": "query", "required": True, "schema": _STRING}
            ],
            "responses": {
                "200": _json({"type": "array", "items": {"type": "object"}}),
                **_errors(400, 401, 403),
            },
        }
    },
    "/api/conversations/{conversation_id}/close": {
        "post": {
            "summary": "the agent is done with a conversation; its ACD capacity is freed",
            "parameters": [_id_path("conversation_id"), _CSRF],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": _object(["agent_id"], agent_id=_STRING)}
                },
            },
            "responses": {
                "200": _json(_object(["conversation_id", "state"], conversation_id={}, state={})),
                **_errors(400, 401, 403, 404, 413),
            },
        }
    },
    "/api/board": {
        "get": {
            "summary": "a team's tickets board: pipeline, cards and figures per phase (the "
            "team's supervisors and agents; every team: admins)",
            "parameters": [
                {"name": "team", "in": "query", "schema": _STRING},
                {"name": "pipeline", "in": "query", "schema": _STRING},
            ],
            "responses": {"200": _json({"type": "object"}), **_errors(400, 401, 403)},
        }
    },
    "/api/tickets": {
        "post": {
            "summary": "open a ticket for a team (the logged-in account is its actor)",
            "parameters": [_CSRF],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": _object(
                            ["title", "team"],
                            title=_STRING,
                            team=_STRING,
                            owner=_STRING,
                            channel=_STRING,
                            customer_id={"type": "integer"},
                            pipeline=_STRING,
                        )
                    }
                },
            },
            "responses": {"201": _json(_object(["id"], id={})), **_errors(400, 401, 403)},
        }
    },
    "/api/tickets/{ticket_id}/move": {
        "post": {
            "summary": "move a ticket from the phase the mover saw (409 if it moved since); "
            "off the usual path with a reason",
            "parameters": [_id_path("ticket_id"), _CSRF],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": _object(
                            ["from_phase", "to_phase"],
                            from_phase=_STRING,
                            to_phase=_STRING,
                            reason=_STRING,
                        )
                    }
                },
            },
            "responses": {
                "200": _json({"type": "object"}),
                **_errors(400, 401, 403, 404, 409),
            },
        }
    },
    "/api/tickets/{ticket_id}/history": {
        "get": {
            "summary": "every phase the ticket went through: who, when, why",
            "parameters": [_id_path("ticket_id")],
            "responses": {
                "200": _json({"type": "array", "items": {"type": "object"}}),
                **_errors(400, 401, 403, 404),
            },
        }
    },
}


_REPORT_PARAMETERS = [
    {
        "name": "group",
        "in": "query",
        "required": True,
        "schema": {"enum": ["queue", "team", "agent"]},
    },
    {"name": "interval", "in": "query", "required": True, "schema": {"enum": ["15m", "1h", "1d"]}},
    {
        "name": "from",
        "in": "query",
        "required": True,
        "description": "ISO 8601 date or date-time (read in tz without an offset)",
        "schema": {"type": "string", "maxLength": 64},
    },
    {
        "name": "to",
        "in": "query",
        "required": True,
        "description": "end, excluded; at most 93 days after from (31 with 15m)",
        "schema": {"type": "string", "maxLength": 64},
    },
    {
        "name": "tz",
        "in": "query",
        "required": False,
        "description": "IANA time zone of the intervals (default UTC)",
        "schema": {"type": "string", "maxLength": 64},
    },
]
_NUMBER_OR_NULL = {"type": ["number", "null"]}
_REPORT_LINE = {
    "type": "object",
    "required": ["key", "start", "offered", "answered", "abandoned", "service_level"],
    "properties": {
        "key": {"type": "string"},
        "start": {"type": "string", "format": "date-time"},
        "offered": {"type": "integer"},
        "answered": {"type": "integer"},
        "abandoned": {"type": ["integer", "null"]},
        "short_abandoned": {"type": "integer"},
        "answered_within_sl": {"type": "integer"},
        "service_level": _NUMBER_OR_NULL,
        "asa_s": _NUMBER_OR_NULL,
        "aht_s": _NUMBER_OR_NULL,
        "talk_s": _NUMBER_OR_NULL,
        "wrap_up_s": _NUMBER_OR_NULL,
        "handled": {"type": "integer"},
        "transfers": {"type": "integer"},
        "callbacks": {"type": "integer"},
        "satisfaction": _NUMBER_OR_NULL,
        "surveys": {"type": "integer"},
    },
}
_REPORT = {
    "type": "object",
    "required": ["group", "interval", "tz", "from", "to", "keys", "starts", "lines", "totals"],
    "properties": {
        "group": {"enum": ["queue", "team", "agent"]},
        "interval": {"enum": ["15m", "1h", "1d"]},
        "tz": {"type": "string"},
        "from": {"type": "string"},
        "to": {"type": "string"},
        "keys": {"type": "array", "items": {"type": "string"}},
        "starts": {"type": "array", "items": {"type": "string"}},
        "lines": {"type": "array", "items": _REPORT_LINE},
        "totals": {"type": "array", "items": _REPORT_LINE},
    },
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
                "Report": _REPORT,
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
            "/api/reports": {
                "get": {
                    "summary": "figures per queue, team or agent by interval (supervisors: "
                    "their teams, their agents and the queues they serve; admins: all)",
                    "parameters": _REPORT_PARAMETERS,
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Report"}),
                        **_errors(400, 401, 403),
                    },
                }
            },
            "/api/reports.csv": {
                "get": {
                    "summary": "the same report's lines as CSV (an attachment, a header row)",
                    "parameters": _REPORT_PARAMETERS,
                    "responses": {
                        "200": {
                            "description": "OK",
                            "content": {"text/csv": {"schema": {"type": "string"}}},
                        },
                        **_errors(400, 401, 403),
                    },
                }
            },
            **_MESSAGING_PATHS,
            **admin_paths(),
        },
    }


def _desktop_paths() -> dict[str, Any]:
    """The agent desktop's own API (centralino/web/desktop_api.py)."""
    note = {
        "type": "object",
        "required": ["id", "agent_id", "author", "body", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "customer_id": {"type": ["integer", "null"]},
            "linkedid": {"type": ["string", "null"]},
            "agent_id": {"type": "string"},
            "author": {"type": "string"},
            "body": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
        },
    }

    ticket = {
        "type": "object",
        "required": ["id", "title", "phase", "out_of_order"],
        "properties": {
            "id": {"type": "integer"},
            "title": {"type": "string"},
            "phase": {"type": "string"},
            "out_of_order": {"type": "boolean"},
        },
    }

    def body(schema: dict[str, Any]) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    return {
        "/api/desktop/{agent_id}/config": {
            "get": {
                "summary": "the desktop's not-ready reasons, outcome codes and shortcuts",
                "parameters": [_AGENT_ID],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "not_ready_reasons": {"type": "array", "items": {"type": "string"}},
                                "outcomes": {"type": "array", "items": {"type": "string"}},
                                "shortcuts": {"type": "array", "items": {"type": "object"}},
                            },
                        }
                    ),
                    **_errors(401, 403),
                },
            }
        },
        "/api/agents/{agent_id}/outcome": {
            "post": {
                "summary": "the wrap-up outcome of the agent's call, on its interaction record",
                "parameters": [_AGENT_ID, _CSRF],
                "requestBody": body(
                    {
                        "type": "object",
                        "required": ["linkedid", "outcome"],
                        "properties": {
                            "linkedid": {"type": "string", "maxLength": 64},
                            "outcome": {"type": "string"},
                        },
                    }
                ),
                "responses": {
                    "200": _json({"type": "object"}),
                    **_errors(400, 401, 403, 404, 415),
                },
            }
        },
        "/api/agents/{agent_id}/notes": {
            "get": {
                "summary": "notes on a customer and/or a call, newest first",
                "parameters": [
                    _AGENT_ID,
                    {"name": "customer_id", "in": "query", "schema": {"type": "integer"}},
                    {"name": "linkedid", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _json({"type": "array", "items": note}),
                    **_errors(400, 401, 403),
                },
            },
            "post": {
                "summary": "write a note on the current call or customer",
                "parameters": [_AGENT_ID, _CSRF],
                "requestBody": body(
                    {
                        "type": "object",
                        "required": ["text"],
                        "properties": {
                            "text": {"type": "string", "minLength": 1, "maxLength": 2000},
                            "customer_id": {"type": ["integer", "null"], "minimum": 1},
                            "linkedid": {"type": ["string", "null"], "maxLength": 64},
                        },
                    }
                ),
                "responses": {"200": _json(note), **_errors(400, 401, 403, 404, 415)},
            },
        },
        "/api/agents/{agent_id}/tickets": {
            "post": {
                "summary": "open a ticket for the customer on the call",
                "parameters": [_AGENT_ID, _CSRF],
                "requestBody": body(
                    {
                        "type": "object",
                        "required": ["customer_id", "title"],
                        "properties": {
                            "customer_id": {"type": "integer", "minimum": 1},
                            "title": {"type": "string", "minLength": 1, "maxLength": 200},
                        },
                    }
                ),
                "responses": {"200": _json(ticket), **_errors(400, 401, 403, 404, 415, 501)},
            }
        },
        "/api/agents/{agent_id}/transfer": {
            "post": {
                "summary": "blind-transfer the agent's current caller to a queue (AMI)",
                "parameters": [_AGENT_ID, _CSRF],
                "requestBody": body(
                    {
                        "type": "object",
                        "required": ["queue"],
                        "properties": {"queue": {"type": "string"}},
                    }
                ),
                "responses": {
                    "200": _json({"type": "object"}),
                    **_errors(400, 401, 403, 404, 409, 415, 501),
                },
            }
        },
        "/api/agents/{agent_id}/tickets/{ticket_id}/move": {
            "post": {
                "summary": "move a ticket to another phase (off the usual path: with a reason)",
                "parameters": [
                    _AGENT_ID,
                    {
                        "name": "ticket_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    },
                    _CSRF,
                ],
                "requestBody": body(
                    {
                        "type": "object",
                        "required": ["to_phase"],
                        "properties": {
                            "to_phase": {"type": "string"},
                            "reason": {"type": "string", "maxLength": 500},
                        },
                    }
                ),
                "responses": {"200": _json(ticket), **_errors(400, 401, 403, 404, 415, 501)},
            }
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
    document["paths"].update(_desktop_paths())
    paths = {}
    for path, item in document["paths"].items():
        kept = {method: op for method, op in item.items() if (path, method) in served}
        if kept:
            paths[path] = kept
    return web.json_response({**document, "paths": paths})


def add_openapi(app: web.Application) -> None:
    app.router.add_get(OPENAPI_PATH, openapi_json)
