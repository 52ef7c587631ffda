"""The web edge of access control: login and logout, sessions in cookies, API tokens, CSRF,
Origin and Host checks, and one middleware that applies `centralino.access.policy` to every
route.

Every route has a rule (`ROUTE_RULES`, keyed by the route's path pattern); a route without one
is refused (403, logged), so a route added later is closed until someone decides who may use it.
Probes (`/healthz`, `/readyz`, `/metrics`) are open and skip the Host check (orchestrators call
them by address). Everything else:
- the `Host` must name one of the public origins (a DNS-rebinding page reaches us under its own
  name: 421);
- pages without a login redirect to `/login?next=…`; `/api/*` and `/ws/*` answer 401 JSON; a
  request the policy forbids answers 403;
- a request authenticated by the session cookie that changes state (any method but GET, HEAD,
  OPTIONS) must come from one of our origins (`Origin`, else `Referer`) and carry the session's
  CSRF token (`X-CSRF-Token` header, or a `csrf_token` form field); a WebSocket opened with the
  cookie must come from one of our origins;
- `Authorization: Bearer <token>` (an API token) needs neither: browsers never attach it by
  themselves.
An open WebSocket re-checks its session or token every `ws_recheck_s` and is closed once it was
revoked or expired. The login form has its own CSRF value (a cookie and a hidden field), since no
session exists yet; failed logins are counted in Redis per name and per address.

Routes added by `add_access`:
    GET  /login?next=PATH      the login form
    POST /login                username, password, csrf_token, next -> 303 to next
    POST /logout               revokes the session -> 303 to /login
    GET  /api/session          {"username", "role", "agent_id", "teams", "csrf_token"}
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from aiohttp import web

from centralino.access import credentials
from centralino.access.models import (
    Account,
    Decision,
    Origin,
    Principal,
    Rule,
    SessionRecord,
    SessionStatus,
    Via,
)
from centralino.access.passwords import Passwords
from centralino.access.policy import (
    LoginLimits,
    SessionPolicy,
    authorise,
    can_reach_agent,
    host_allowed,
    landing_page,
    origin_allowed,
    parse_origin,
    safe_next,
    session_status,
    should_touch,
)

log = logging.getLogger(__name__)

SESSION_COOKIE = "centralino_session"
# Over HTTPS the cookie gets the __Host- prefix: the browser then refuses it unless Secure,
# Path=/ and host-only, so a sibling subdomain cannot plant or shadow it.
SECURE_SESSION_COOKIE = "__Host-centralino_session"
LOGIN_NONCE_COOKIE = "centralino_login"
LOGIN_NONCE_MAX_AGE_S = 1800  # a login form left open over lunch still works
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
# Typed username and password lengths we read at all (the policy allows 256-character
# passwords; anything longer is not a login).
MAX_USERNAME_CHARS = 128
MAX_PASSWORD_FIELD_CHARS = 1024
# argon2 costs 64 MiB and ~50 ms per check: at most this many at once, so a burst of logins
# queues instead of exhausting memory or starving the event loop's threads.
MAX_CONCURRENT_HASHES = 4
# How often an open WebSocket re-checks its session or token.
WS_RECHECK_S = 30.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})

# Route pattern -> rule. Resources are matched by their canonical path (static: its prefix).
ROUTE_RULES: dict[str, Rule] = {
    "/login": Rule.PUBLIC,
    "/logout": Rule.ANY_ACCOUNT,
    "/static": Rule.PUBLIC,
    "/api/openapi.json": Rule.PUBLIC,  # describes the API, holds no data
    "/api/session": Rule.ANY_ACCOUNT,
    "/": Rule.ANY_ACCOUNT,
    "/api/about": Rule.ANY_ACCOUNT,
    "/api/agents": Rule.ANY_ACCOUNT,  # filtered to the agents the account may reach
    "/api/calls/recent": Rule.ANY_ACCOUNT,  # filtered likewise
    "/api/identities/link": Rule.ANY_ACCOUNT,
    "/desktop/{agent_id}": Rule.AGENT_SCOPED,
    "/ws/agent/{agent_id}": Rule.AGENT_SCOPED,
    "/api/agents/{agent_id}": Rule.AGENT_SCOPED,
    "/api/agents/{agent_id}/state": Rule.AGENT_SCOPED,
    # Their teams' agents (the handler also requires a supervisor's or admin's role).
    "/api/agents/{agent_id}/supervise": Rule.AGENT_SCOPED,
    # The agent desktop's own API (centralino/web/desktop_api.py).
    "/api/desktop/{agent_id}/config": Rule.AGENT_SCOPED,
    "/api/agents/{agent_id}/outcome": Rule.AGENT_SCOPED,
    "/api/agents/{agent_id}/notes": Rule.AGENT_SCOPED,
    "/api/agents/{agent_id}/tickets": Rule.AGENT_SCOPED,
    "/api/agents/{agent_id}/tickets/{ticket_id}/move": Rule.AGENT_SCOPED,
    "/api/agents/{agent_id}/transfer": Rule.AGENT_SCOPED,
    "/wallboard": Rule.SUPERVISION,
    "/api/wallboard": Rule.SUPERVISION,
    "/ws/wallboard": Rule.SUPERVISION,
    # Filtered to the supervisor's teams, their agents and the queues they serve (web/reports.py).
    "/reports": Rule.SUPERVISION,
    "/api/reports": Rule.SUPERVISION,
    "/api/reports.csv": Rule.SUPERVISION,
    # Messaging providers' webhooks: their HMAC signatures authenticate them (web/webhooks.py).
    "/webhooks/whatsapp": Rule.PUBLIC,
    "/webhooks/twilio/sms": Rule.PUBLIC,
    # The web chat widget and its WebSocket: visitors are anonymous customers.
    "/chat": Rule.PUBLIC,
    "/ws/chat": Rule.PUBLIC,
    "/api/timeline": Rule.SUPERVISION,
    # Checked per conversation, contact, team or ticket in the handler (web/scopes.py).
    "/api/messages": Rule.ANY_ACCOUNT,
    "/api/conversations": Rule.ANY_ACCOUNT,
    "/api/conversations/{conversation_id}/close": Rule.ANY_ACCOUNT,
    "/board/{team}": Rule.ANY_ACCOUNT,
    "/api/board": Rule.ANY_ACCOUNT,
    "/api/tickets": Rule.ANY_ACCOUNT,
    "/api/tickets/{ticket_id}/move": Rule.ANY_ACCOUNT,
    "/api/tickets/{ticket_id}/history": Rule.ANY_ACCOUNT,
    # The configuration (centralino/web/admin.py): admins only.
    "/admin": Rule.ADMIN,
    "/api/admin/flows": Rule.ADMIN,
    "/api/admin/agents": Rule.ADMIN,
    "/api/admin/agents/{id}": Rule.ADMIN,
    "/api/admin/queues": Rule.ADMIN,
    "/api/admin/queues/{name}": Rule.ADMIN,
    "/api/admin/teams": Rule.ADMIN,
    "/api/admin/teams/{name}": Rule.ADMIN,
    "/api/admin/not-ready-reasons": Rule.ADMIN,
    "/api/admin/not-ready-reasons/{code}": Rule.ADMIN,
    "/api/not-ready-reasons": Rule.ANY_ACCOUNT,  # what the desktop offers
}
# Called by the providers at the address configured in their consoles (often a tunnel's or a
# proxy's name, not one of our public origins): the Host check does not apply, the signature does.
SIGNED_WEBHOOKS = frozenset({"/webhooks/whatsapp", "/webhooks/twilio/sms"})

LOGIN_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


# --- ports ------------------------------------------------------------------------------------


class AccountStore(Protocol):
    """What the web edge needs from the account store (`PgAccounts` has these)."""

    async def account_by_name(self, username: str) -> Account | None: ...

    async def set_password(self, username: str, password_hash: str) -> Account: ...

    async def create_session(
        self,
        *,
        account_id: int,
        id_digest: bytes,
        now: datetime,
        expires_at: datetime,
        remote: str | None,
    ) -> None: ...

    async def session(self, id_digest: bytes) -> tuple[SessionRecord, Account] | None: ...

    async def touch_session(self, id_digest: bytes, *, now: datetime) -> None: ...

    async def revoke_session(self, id_digest: bytes, *, now: datetime) -> bool: ...

    async def token_account(self, token_digest: bytes, *, now: datetime) -> Account | None: ...

    async def audit(
        self,
        *,
        actor: str | None,
        action: str,
        target: str | None = None,
        detail: Mapping[str, Any] | None = None,
        remote: str | None = None,
    ) -> None: ...


class LoginLimiter(Protocol):
    """Failed-login counting shared across processes (`RedisLoginLimiter`)."""

    limits: LoginLimits

    async def blocked(self, *, username: str, address: str) -> bool: ...

    async def failed(self, *, username: str, address: str) -> None: ...

    async def succeeded(self, *, username: str) -> None: ...


# --- request state ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Credential:
    via: Via
    secret: str  # the raw session id or token, kept only for this request


@dataclass(slots=True)
class _AuditNote:
    action: str
    target: str | None
    detail: dict[str, Any] = field(default_factory=dict)


PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("centralino_principal", Principal)
_CREDENTIAL: web.RequestKey[_Credential] = web.RequestKey("centralino_credential", _Credential)
_AUDIT: web.RequestKey[list[_AuditNote]] = web.RequestKey("centralino_audit", list)


def current_principal(request: web.Request) -> Principal:
    """The account the request acts for. A handler reached without the access middleware has
    none: refuse (closed by default) rather than serve anyone."""
    if PRINCIPAL not in request:
        raise web.HTTPUnauthorized(text="login required")
    return request[PRINCIPAL]


def note_audit(request: web.Request, action: str, target: str | None = None, **detail: Any) -> None:
    """Record `action` in the audit log once the handler has answered with success."""
    request.setdefault(_AUDIT, []).append(_AuditNote(action, target, dict(detail)))


def reachable_agents(
    request: web.Request, agents: Iterable[tuple[str, Collection[str]]]
) -> set[str]:
    """Of these (agent id, teams), the ids the request's account may reach."""
    principal = current_principal(request)
    return {a for a, teams in agents if can_reach_agent(principal, a, teams)}


# --- the access object ------------------------------------------------------------------------


@dataclass(slots=True)
class AccessConfig:
    origins: set[Origin]  # our public origins; `Access.allow_local` adds loopback ones
    cookie_secure: bool | None = None  # None: Secure when the request came over HTTPS
    session: SessionPolicy = field(default_factory=SessionPolicy)
    ws_recheck_s: float = WS_RECHECK_S


def origins_from_urls(urls: Iterable[str]) -> set[Origin]:
    found = set()
    for url in urls:
        origin = parse_origin(url)
        if origin is None:
            raise ValueError(f"{url!r} is not an http(s) URL")
        found.add(origin)
    return found


class Access:
    def __init__(
        self,
        *,
        accounts: AccountStore,
        limiter: LoginLimiter,
        passwords: Passwords,
        config: AccessConfig,
        agent_teams: Mapping[str, Collection[str]],
        now: Callable[[], datetime],
    ) -> None:
        """`agent_teams`: every agent the ACD knows, with its teams (read at each request)."""
        self.accounts = accounts
        self.limiter = limiter
        self.passwords = passwords
        self.config = config
        self.agent_teams = agent_teams
        self.now = now
        self._hashing = asyncio.Semaphore(MAX_CONCURRENT_HASHES)
        self._watchdogs: set[asyncio.Task[None]] = set()

    def allow_local(self, port: int, hosts: Iterable[str] = ("127.0.0.1", "localhost")) -> None:
        """With no public URL configured: our own listening address is the origin."""
        for host in hosts:
            if host not in ("0.0.0.0", "::", ""):
                self.config.origins.add(Origin("http", host.lower(), port))

    # --- who is asking ------------------------------------------------------------------------

    def cookie_secure(self, request: web.Request) -> bool:
        secure = self.config.cookie_secure
        return request.secure if secure is None else secure

    async def authenticate(self, request: web.Request) -> Principal | None:
        """The bearer token's or session cookie's account, or None (stale ones are ignored)."""
        authorization = request.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            credential = _Credential(Via.TOKEN, token.strip())
        else:
            session_id = request.cookies.get(SECURE_SESSION_COOKIE) or request.cookies.get(
                SESSION_COOKIE
            )
            if not session_id:
                return None
            credential = _Credential(Via.SESSION, session_id)
        account = await self._check(credential)
        if account is None:
            return None
        request[_CREDENTIAL] = credential
        return Principal(
            account_id=account.id,
            username=account.username,
            role=account.role,
            agent_id=account.agent_id,
            teams=account.teams,
            via=credential.via,
        )

    async def _check(self, credential: _Credential) -> Account | None:
        now = self.now()
        digest = credentials.digest(credential.secret)
        if credential.via is Via.TOKEN:
            return await self.accounts.token_account(digest, now=now)
        found = await self.accounts.session(digest)
        if found is None:
            return None
        record, account = found
        policy = self.config.session
        if session_status(record, now=now, policy=policy) is not SessionStatus.VALID:
            return None
        if should_touch(record, now=now, policy=policy):
            await self.accounts.touch_session(digest, now=now)
        return account

    # --- passwords ----------------------------------------------------------------------------

    async def verify_password(self, account: Account | None, password: str) -> bool:
        async with self._hashing:
            return await asyncio.to_thread(
                self.passwords.verify, None if account is None else account.password_hash, password
            )

    async def _rehash_if_needed(self, account: Account, password: str) -> None:
        if self.passwords.needs_rehash(account.password_hash):
            async with self._hashing:
                new_hash = await asyncio.to_thread(self.passwords.hash, password)
            await self.accounts.set_password(account.username, new_hash)

    # --- WebSockets ---------------------------------------------------------------------------

    def watch_socket(self, request: web.Request) -> asyncio.Task[None] | None:
        """Close this request's connection once its credential stops being valid."""
        credential = request.get(_CREDENTIAL)
        transport = request.transport
        if credential is None or transport is None:
            return None

        async def watch() -> None:
            while True:
                await asyncio.sleep(self.config.ws_recheck_s)
                try:
                    valid = await self._check(credential) is not None
                except Exception:  # storage down: keep the agent's desktop, try again later
                    log.warning("could not re-check a WebSocket's session", exc_info=True)
                    continue
                if not valid:
                    log.info("closing a WebSocket: its session or token ended (%s)", request.path)
                    transport.close()
                    return

        task = asyncio.get_running_loop().create_task(watch(), name="ws-access-watch")
        self._watchdogs.add(task)
        task.add_done_callback(self._watchdogs.discard)
        return task

    async def close(self) -> None:
        for task in list(self._watchdogs):
            task.cancel()
        await asyncio.gather(*self._watchdogs, return_exceptions=True)


ACCESS = web.AppKey("access", Access)


# --- responses --------------------------------------------------------------------------------


def _is_api(path: str) -> bool:
    return path.startswith(("/api/", "/ws/"))


def _refuse(request: web.Request, status: int, message: str) -> web.Response:
    if _is_api(request.path):
        return web.json_response({"error": message}, status=status)
    return web.Response(status=status, text=message + "\n", content_type="text/plain")


def _to_login(request: web.Request) -> web.Response:
    if _is_api(request.path):
        return web.json_response({"error": "login required"}, status=401)
    target = quote(request.path_qs, safe="/")
    raise web.HTTPSeeOther(f"/login?next={target}")


def _same_origin(request: web.Request, allowed: Collection[Origin]) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        referer = request.headers.get("Referer")
        if referer is None:
            return False
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    return origin_allowed(origin, allowed)


async def _presented_csrf(request: web.Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.content_type == "application/x-www-form-urlencoded":
        form = await request.post()  # cached: the handler reads the same form
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


def _route_pattern(request: web.Request) -> str | None:
    resource = request.match_info.route.resource
    return None if resource is None else resource.canonical


# --- the middleware ---------------------------------------------------------------------------


@web.middleware
async def access_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    access = request.app[ACCESS]
    if request.match_info.http_exception is not None:
        return await handler(request)  # 404 / 405 as aiohttp answers them
    pattern = _route_pattern(request)
    if pattern in PROBES or pattern in SIGNED_WEBHOOKS:
        return await handler(request)
    allowed = access.config.origins
    if not host_allowed(request.host, allowed):
        log.warning(
            "refused Host %.100r from %s (not a public origin)", request.host, request.remote
        )
        return _refuse(request, 421, "this server does not answer for that host name")
    rule = ROUTE_RULES.get(pattern or "")
    if rule is None:
        log.error("route %s has no access rule: refused (add it to ROUTE_RULES)", pattern)
        return _refuse(request, 403, "forbidden")
    if rule is Rule.PUBLIC:
        return await handler(request)

    principal = await access.authenticate(request)
    agent_id = request.match_info.get("agent_id")
    teams = access.agent_teams.get(agent_id, ()) if agent_id is not None else ()
    decision = authorise(principal, rule, agent_id=agent_id, agent_teams=teams)
    if decision is Decision.UNAUTHENTICATED or principal is None:
        return _to_login(request)
    if decision is Decision.FORBIDDEN:
        log.warning(
            "%s (%s) refused %s %s",
            principal.username,
            principal.role,
            request.method,
            request.path,
        )
        return _refuse(request, 403, "forbidden")

    websocket = request.headers.get("Upgrade", "").lower() == "websocket"
    if principal.via is Via.SESSION:
        if websocket and not origin_allowed(request.headers.get("Origin"), allowed):
            log.warning(
                "refused a cross-origin WebSocket to %s from %s", request.path, request.remote
            )
            return _refuse(request, 403, "cross-origin WebSocket refused")
        if request.method not in SAFE_METHODS:
            if not _same_origin(request, allowed):
                log.warning("refused a cross-origin %s %s", request.method, request.path)
                return _refuse(request, 403, "cross-origin request refused")
            session_id = request[_CREDENTIAL].secret
            if not credentials.csrf_matches(session_id, await _presented_csrf(request)):
                log.warning(
                    "refused %s %s: missing or wrong CSRF token", request.method, request.path
                )
                return _refuse(request, 403, "missing or wrong CSRF token")
    request[PRINCIPAL] = principal

    watchdog = access.watch_socket(request) if websocket else None
    try:
        response = await handler(request)
    finally:
        if watchdog is not None:
            watchdog.cancel()
    if _is_api(request.path) and not response.prepared:
        # Customers' names and numbers must not linger in a shared computer's disk cache.
        response.headers["Cache-Control"] = "no-store"
    if response.status < 400:
        for note in request.get(_AUDIT, []):
            try:
                await access.accounts.audit(
                    actor=principal.username,
                    action=note.action,
                    target=note.target,
                    detail=note.detail,
                    remote=request.remote,
                )
            except Exception:  # the change happened; losing its audit line must be loud
                log.exception(
                    "audit write failed: %s %s by %s", note.action, note.target, principal.username
                )
    return response


# --- login and logout -------------------------------------------------------------------------


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _login_form(
    *, next_path: str, nonce: str, username: str = "", error: str = "", status: int = 200
) -> web.Response:
    esc = html.escape
    message = f'<p class="error" role="alert">{esc(error)}</p>' if error else ""
    body = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · Centralino</title>
<link rel="stylesheet" href="/static/centralino.css">
</head>
<body>
<header class="topbar"><span class="brand">Centralino</span></header>
<main class="login">
<section class="panel">
<h1>Log in</h1>
{message}
<form method="post" action="/login" class="login-form">
<input type="hidden" name="{CSRF_FIELD}" value="{esc(nonce)}">
<input type="hidden" name="next" value="{esc(next_path)}">
<label>Username <input name="username" autocomplete="username" required
  maxlength="{MAX_USERNAME_CHARS}" value="{esc(username)}"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"
  required></label>
<button type="submit" id="login" class="btn primary">Log in</button>
</form>
</section>
</main>
</body>
</html>
"""
    response = web.Response(status=status, text=body, content_type="text/html")
    response.headers["Content-Security-Policy"] = LOGIN_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


def _with_nonce(response: web.Response, request: web.Request, nonce: str) -> web.Response:
    response.set_cookie(
        LOGIN_NONCE_COOKIE,
        nonce,
        max_age=LOGIN_NONCE_MAX_AGE_S,
        path="/login",
        secure=request.app[ACCESS].cookie_secure(request),
        httponly=True,
        samesite="Strict",
    )
    return response


async def login_page(request: web.Request) -> web.StreamResponse:
    # Shown even with a session: logging in again (as someone else) replaces it.
    next_path = safe_next(request.query.get("next"), default="")
    nonce = credentials.new_form_nonce()
    return _with_nonce(_login_form(next_path=next_path, nonce=nonce), request, nonce)


async def login_submit(request: web.Request) -> web.StreamResponse:
    access = request.app[ACCESS]
    remote = request.remote or "unknown"
    if not _same_origin(request, access.config.origins):
        log.warning("refused a cross-origin login from %s", remote)
        return _refuse(request, 403, "cross-origin request refused")
    form = await request.post()
    fields = {k: form.get(k) for k in ("username", "password", "next", CSRF_FIELD)}
    username, password, raw_next, nonce = (v if isinstance(v, str) else "" for v in fields.values())
    next_path = safe_next(raw_next, default="")
    new_nonce = credentials.new_form_nonce()

    def again(error: str, status: int) -> web.Response:
        form = _login_form(
            next_path=next_path,
            nonce=new_nonce,
            username=username[:MAX_USERNAME_CHARS],
            error=error,
            status=status,
        )
        return _with_nonce(form, request, new_nonce)

    if not credentials.same_secret(request.cookies.get(LOGIN_NONCE_COOKIE), nonce):
        log.warning("login from %s without its form's CSRF value", remote)
        return again("The form expired; please try again.", 403)
    if not username or not password:
        return again("Enter your username and password.", 400)
    if len(username) > MAX_USERNAME_CHARS or len(password) > MAX_PASSWORD_FIELD_CHARS:
        return again("Wrong username or password.", 400)
    try:
        blocked = await access.limiter.blocked(username=username, address=remote)
    except Exception:
        # Without the shared counters a guesser would be unlimited: refuse logins meanwhile.
        log.exception("login counters unavailable; refusing logins")
        return again("Logging in is unavailable right now; try again in a minute.", 503)
    if blocked:
        await access.accounts.audit(
            actor=None, action="login_blocked", target=username[:MAX_USERNAME_CHARS], remote=remote
        )
        log.warning("login for %.64r from %s blocked: too many failures", username, remote)
        response = again("Too many failed attempts; try again later.", 429)
        response.headers["Retry-After"] = str(int(access.limiter.limits.window_s))
        return response
    account = await access.accounts.account_by_name(username)
    verified = await access.verify_password(account, password)
    if account is None or not verified or account.disabled:
        await access.limiter.failed(username=username, address=remote)
        await access.accounts.audit(
            actor=None,
            action="login_failed",
            target=username[:MAX_USERNAME_CHARS],
            detail={"reason": "disabled" if account and verified else "wrong credentials"},
            remote=remote,
        )
        log.warning("failed login for %.64r from %s", username, remote)
        return again("Wrong username or password.", 401)

    await access.limiter.succeeded(username=username)
    await access._rehash_if_needed(account, password)
    for name in (SESSION_COOKIE, SECURE_SESSION_COOKIE):
        # A session this browser already had ends: a login never keeps a planted id alive.
        if previous := request.cookies.get(name):
            await access.accounts.revoke_session(credentials.digest(previous), now=access.now())
    session_id = credentials.new_session_id()
    now = access.now()
    policy = access.config.session
    await access.accounts.create_session(
        account_id=account.id,
        id_digest=credentials.digest(session_id),
        now=now,
        expires_at=policy.expires_at(now),
        remote=remote,
    )
    await access.accounts.audit(actor=account.username, action="login", remote=remote)
    log.info("%s logged in from %s", account.username, remote)
    principal = Principal(
        account_id=account.id,
        username=account.username,
        role=account.role,
        agent_id=account.agent_id,
        teams=account.teams,
        via=Via.SESSION,
    )
    response = _see_other(next_path or landing_page(principal))
    secure = access.cookie_secure(request)
    response.set_cookie(
        SECURE_SESSION_COOKIE if secure else SESSION_COOKIE,
        session_id,
        max_age=int(policy.ttl_s),
        path="/",
        secure=secure,
        httponly=True,
        samesite="Strict",
    )
    response.del_cookie(LOGIN_NONCE_COOKIE, path="/login")
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    access = request.app[ACCESS]
    principal = current_principal(request)
    credential = request.get(_CREDENTIAL)
    if principal.via is not Via.SESSION or credential is None:
        return web.json_response(
            {"error": "API tokens are revoked with `centralino user disable`"}, status=400
        )
    await access.accounts.revoke_session(credentials.digest(credential.secret), now=access.now())
    note_audit(request, "logout")
    response = _see_other("/login")
    for name in (SESSION_COOKIE, SECURE_SESSION_COOKIE):
        if name in request.cookies:
            response.del_cookie(name, path="/")
    return response


async def session_api(request: web.Request) -> web.Response:
    principal = current_principal(request)
    credential = request.get(_CREDENTIAL)
    csrf = (
        credentials.csrf_for(credential.secret)
        if credential is not None and credential.via is Via.SESSION
        else None
    )
    return web.json_response(
        {
            "username": principal.username,
            "role": principal.role.value,
            "agent_id": principal.agent_id,
            "teams": sorted(principal.teams),
            "csrf_token": csrf,
        }
    )


# --- wiring -----------------------------------------------------------------------------------


def add_access(app: web.Application, access: Access) -> None:
    """Install the access middleware and the login, logout and session routes on `app`."""
    app[ACCESS] = access
    app.middlewares.append(access_middleware)

    async def stop_watchdogs(app: web.Application) -> None:
        await access.close()

    app.on_shutdown.append(stop_watchdogs)
    r = app.router
    r.add_get("/login", login_page)
    r.add_post("/login", login_submit)
    r.add_post("/logout", logout)
    r.add_get("/api/session", session_api)
