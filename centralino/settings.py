"""Settings: one TOML file plus `CENTRALINO_*` environment overrides, validated at start.

`CENTRALINO_<SECTION>_<KEY>` overrides `[section] key` (sections have no underscores, so
`CENTRALINO_SERVER_HTTP_PORT` is `[server] http_port`). `CENTRALINO_CONFIG` names the file.
Secrets (the AMI secret, passwords in URLs) are read from the environment only and never logged:
pydantic validates, and every error names the key and the expected form.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from acd.models import AgentDefinition
from contact.rules import DEFAULT_ROUTES, IntentRoute, route_problems

ENV_PREFIX = "CENTRALINO_"


class SettingsError(ValueError):
    """The configuration is invalid; the message names each bad key and what it expects."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    agi_port: int = Field(4573, ge=0, le=65535)
    audiosocket_port: int = Field(9092, ge=0, le=65535)
    http_port: int = Field(8080, ge=0, le=65535)
    # Calls still running this long after a shutdown request go back to the dialplan.
    grace_s: float = Field(10.0, gt=0)
    # A FastAGI connection silent for this long is closed (Asterisk always answers in ms).
    idle_timeout_s: float = Field(300.0, gt=0)
    # The base URL providers reach us at (behind a proxy it is not ours): Twilio signs the URL
    # it requested, so its webhook checks signatures against this plus the request's path.
    public_url: str | None = None

    @field_validator("public_url")
    @classmethod
    def _public_http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("expected the http:// or https:// base URL providers reach us at")
        return value.rstrip("/") if value else value


def _no_password_in_file(url: str | None) -> str | None:
    if url and urlsplit(url).password:
        raise ValueError("a password in a URL must come from the environment, not the file")
    return url


class DatabaseSettings(_Section):
    url: SecretStr | None = None
    pool_min: int = Field(2, ge=1)
    pool_max: int = Field(20, ge=1)
    # Interaction records wait here (one file per process) while PostgreSQL is unreachable.
    spool_dir: Path = Path(".centralino-spool")


class RedisSettings(_Section):
    url: SecretStr | None = None
    # Per-call context lives this long after the last write (a call rarely lasts 2 hours).
    call_context_ttl_s: int = Field(7200, gt=0)


class AsteriskServerSettings(_Section):
    """One more Asterisk server, with its own agents' phones (the first one is [ami] itself);
    agents whose phones it hosts name it in `acd.agents[].asterisk`."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    host: str
    port: int = Field(5038, ge=1, le=65535)
    username: str = "centralino"
    secret_env: str  # the environment variable that holds this server's AMI secret


class AmiSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(5038, ge=0, le=65535)
    username: str = "centralino"
    secret: SecretStr | None = None
    ping_interval_s: float = Field(2.0, gt=0)
    servers: list[AsteriskServerSettings] = Field(default_factory=list)


class WhatsAppSettings(_Section):
    """WhatsApp Cloud API webhook secrets (environment only); unset = that webhook answers 503."""

    app_secret: SecretStr | None = None  # signs X-Hub-Signature-256
    verify_token: SecretStr | None = None  # the verification handshake's hub.verify_token
    # Replies (POST /api/messages) go out through the Cloud API when these are set.
    access_token: SecretStr | None = None  # environment only
    phone_number_id: str | None = None
    display_number: str = ""  # our number as customers see it, for the timeline
    api_url: str = "https://graph.facebook.com/v21.0"


class TwilioSettings(_Section):
    auth_token: SecretStr | None = None  # signs X-Twilio-Signature (environment only)
    # Replies by SMS go out through Twilio's API when these are set (with auth_token).
    account_sid: str | None = None
    from_number: str | None = None  # E.164
    api_url: str = "https://api.twilio.com"


class EmailSettings(_Section):
    """The SMTP server taking customers' mail (centralino/email_server.py)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(2525, ge=0, le=65535)
    domains: list[str] = Field(default_factory=list)  # mail is accepted for these only
    max_message_bytes: int = Field(25 * 1024 * 1024, gt=0)

    @model_validator(mode="after")
    def _domains_when_enabled(self) -> EmailSettings:
        if self.enabled and not self.domains:
            raise ValueError("email.domains: name the domains to accept mail for")
        return self


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_lines: bool = Field(False, alias="json")


class ExtractSettings(_Section):
    kind: str  # the fact kind shown on the pop, e.g. "invoice"
    items_path: str = ""  # dotted path to the list of items in the answer; "" = the body
    fields: dict[str, str] = Field(default_factory=dict)  # fact field -> dotted item path


class RequestSettings(_Section):
    url_template: str  # relative to base_url; {phone}, {email} or {link} are filled per call
    extracts: list[ExtractSettings] = Field(min_length=1)


class BackendSettings(_Section):
    """An owner of customer data (ERP, CRM) reached over HTTP/JSON at every call."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    base_url: str
    requests: list[RequestSettings] = Field(min_length=1)
    needs_link: str | None = None  # look up by this external id (e.g. "crm") instead of phone
    timeout_ms: int = Field(300, gt=0)
    auth_header: str = "Authorization"
    auth_env: str | None = None  # the header's value is read from this environment variable
    max_body_bytes: int = Field(256 * 1024, gt=0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value


class ContextSettings(_Section):
    deadline_ms: int = Field(400, gt=0)
    default_region: str = Field("IT", min_length=2, max_length=2)
    backends: list[BackendSettings] = Field(default_factory=list)


class StepSettings(_Section):
    after_s: float = Field(ge=0)
    preferred_only: bool = False
    min_level: int | None = Field(None, ge=1, le=5)
    action: Literal["none", "overflow", "callback", "voicemail", "hangup"] = "none"
    target: str = ""  # the queue to overflow to


# Asterisk's own extensions of more than one letter, which [centralino-transfer]'s queue pattern
# would otherwise match (one-letter ones, h among them, are kept out by the two-letter minimum).
RESERVED_QUEUE_NAMES = frozenset({"fax", "talk"})


class QueueSettings(_Section):
    # A queue is an extension of [centralino-transfer] by its name (two characters at least).
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]+$")
    skill: str | None = None
    strategy: Literal["longest_idle", "most_skilled", "least_occupied"] = "longest_idle"
    steps: list[StepSettings] = Field(
        default_factory=lambda: [
            StepSettings(after_s=0, preferred_only=True),
            StepSettings(after_s=20, min_level=4),
            StepSettings(after_s=60, min_level=2),
            StepSettings(after_s=120, min_level=1),
        ]
    )
    max_length: int = Field(200, ge=1)
    max_wait_s: float = Field(1800, gt=0)
    on_no_agents: Literal["callback", "voicemail", "hangup"] = "callback"
    sl_target_s: float = Field(20, gt=0)
    sl_goal: float = Field(0.8, gt=0, le=1)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_QUEUE_NAMES:
            raise ValueError(f"{name!r} is an Asterisk special extension, not a queue name")
        return name


class AgentSettings(_Section):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = ""
    skills: dict[str, int] = Field(default_factory=dict)
    teams: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    endpoint: str = ""  # what Dial() rings; default PJSIP/<id>
    wrap_up_s: float = Field(10, ge=0)
    asterisk: str = ""  # the Asterisk server hosting their phone: one of ami.servers; "" = [ami]


def _default_queues() -> list[QueueSettings]:
    return [
        QueueSettings(name="billing", skill="billing"),
        QueueSettings(name="support", skill="support"),
        QueueSettings(name="sales", skill="sales"),
    ]


# The dialplan context whose extensions are our queues by name (docs/ami.md): an agent's phone
# that blind-transfers a caller to `billing@centralino-transfer` puts them in the billing queue.
TRANSFER_CONTEXT = "centralino-transfer"


# The agent desktop's defaults: why an agent is not ready, and how a call ended for them.
DEFAULT_NOT_READY_REASONS = (
    "Break",
    "Lunch",
    "Meeting",
    "Training",
    "Back office",
    "Technical problem",
)
DEFAULT_WRAP_UP_OUTCOMES = (
    "resolved",
    "follow_up",
    "escalated",
    "callback_promised",
    "wrong_number",
)
# A reason is a label on a button, an outcome a code in reports: short, and a screenful of them.
MAX_DESK_LABEL_CHARS = 64
MAX_DESK_CHOICES = 30
_OUTCOME_CODE = r"^[a-z][a-z0-9_]{0,31}$"


def _desk_choices(values: list[str], what: str) -> list[str]:
    cleaned = [v.strip() for v in values]
    if not cleaned:
        raise ValueError(f"{what}: at least one is needed")
    if len(cleaned) > MAX_DESK_CHOICES:
        raise ValueError(f"{what}: at most {MAX_DESK_CHOICES}")
    for value in cleaned:
        if not value or len(value) > MAX_DESK_LABEL_CHARS:
            raise ValueError(f"{what}: {value!r} must be 1..{MAX_DESK_LABEL_CHARS} characters")
    if len(set(cleaned)) != len(cleaned):
        raise ValueError(f"{what}: duplicates in {cleaned}")
    return cleaned


class AcdSettings(_Section):
    queues: list[QueueSettings] = Field(default_factory=_default_queues)
    agents: list[AgentSettings] = Field(default_factory=list)
    # The desktop's not-ready reasons (labels, as shown) and wrap-up outcome codes
    # (lower_snake_case, stored on the interaction record).
    not_ready_reasons: list[str] = Field(default_factory=lambda: list(DEFAULT_NOT_READY_REASONS))
    wrap_up_outcomes: list[str] = Field(default_factory=lambda: list(DEFAULT_WRAP_UP_OUTCOMES))

    @field_validator("not_ready_reasons")
    @classmethod
    def _reasons_valid(cls, value: list[str]) -> list[str]:
        return _desk_choices(value, "acd.not_ready_reasons")

    @field_validator("wrap_up_outcomes")
    @classmethod
    def _outcomes_valid(cls, value: list[str]) -> list[str]:
        codes = _desk_choices(value, "acd.wrap_up_outcomes")
        for code in codes:
            if not re.match(_OUTCOME_CODE, code):
                raise ValueError(f"acd.wrap_up_outcomes: {code!r} is not a lower_snake_case code")
        return codes

    # More blind-transfer targets that are our queues, "exten@context" -> queue name (e.g.
    # "8001@centralino-agents" = "billing"); every queue is `<name>@centralino-transfer` anyway.
    transfer_targets: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _transfer_targets_known(self) -> AcdSettings:
        names = {q.name for q in self.queues}
        for target, queue in self.transfer_targets.items():
            exten, at, context = target.partition("@")
            if not (exten and at and context):
                raise ValueError(f"transfer target {target!r}: expected exten@context")
            if queue not in names:
                raise ValueError(f"transfer target {target!r}: no queue named {queue!r}")
        return self

    def transfer_queues(self) -> dict[str, str]:
        """Every blind-transfer target ("exten@context") that is one of our queues."""
        return {f"{q.name}@{TRANSFER_CONTEXT}": q.name for q in self.queues} | dict(
            self.transfer_targets
        )


class IntentRouteSettings(_Section):
    queue: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    skill: str
    min_level: int = Field(1, ge=1, le=5)


def _default_intents() -> dict[str, IntentRouteSettings]:
    return {
        intent: IntentRouteSettings(queue=r.queue, skill=r.skill, min_level=r.min_level)
        for intent, r in DEFAULT_ROUTES.items()
    }


class ContactSettings(_Section):
    # intent -> where its callers wait and what their agent must know (contact/rules.py)
    intents: dict[str, IntentRouteSettings] = Field(default_factory=_default_intents)

    def routes(self) -> dict[str, IntentRoute]:
        return {
            intent: IntentRoute(queue=r.queue, skill=r.skill, min_level=r.min_level)
            for intent, r in self.intents.items()
        }


class SpeechEngineSettings(_Section):
    # whisper: faster-whisper per utterance; vosk: streaming (centralino/adapters/speech_*.py)
    engine: Literal["whisper", "vosk"]
    # A folder, `package:PKG/folder` (a model wheel) or `parts:PKG1/dir+PKG2/dir` (a model
    # split across wheels, joined once under speech.cache_dir). Never downloaded.
    model: str = Field(min_length=1)
    # Whisper's prompt (what the caller was asked); unset: the language's built-in one.
    prompt: str | None = None


class SpeechSettings(_Section):
    # language -> engine; none: the IVR asks by DTMF only. Models load at start: a missing
    # one stops the start, naming it.
    engines: dict[str, SpeechEngineSettings] = Field(default_factory=dict)
    cache_dir: Path = Path("build/models")
    no_input_ms: int = Field(5000, ge=500, le=60000)
    end_silence_ms: int = Field(700, ge=200, le=5000)
    max_speech_ms: int = Field(15000, ge=1000, le=30000)


class DemoSettings(_Section):
    data_dir: Path = Path(".demo-data")
    calls_per_minute: float = Field(8.0, ge=0)
    agents: int = Field(6, ge=1)
    erp_latency_ms: int = Field(120, ge=0)
    crm_latency_ms: int = Field(180, ge=0)
    failure_rate: float = Field(0.02, ge=0, le=1)
    seed: int = 7
    # Every demo account's password (CENTRALINO_DEMO_PASSWORD); unset: a new one at each start.
    password: SecretStr | None = None


class AccessSettings(_Section):
    """Logins, sessions and the origins browsers may reach us from (centralino/web/auth.py)."""

    # Where people open Centralino, e.g. ["https://centralino.example.com"]: the only origins
    # (scheme, host, port) whose pages may post or open WebSockets, and the only Host names
    # answered (DNS rebinding). Empty: http://127.0.0.1:<port> and http://localhost:<port>.
    # From the environment: CENTRALINO_ACCESS_PUBLIC_URLS="https://a.example,https://b.example".
    public_urls: list[str] = Field(default_factory=list)
    # Secure cookies: None = when the request came over HTTPS; true behind a TLS proxy.
    cookie_secure: bool | None = None
    session_ttl_s: float = Field(12 * 3600, gt=0)  # a shift with overtime
    session_idle_s: float = Field(3600, gt=0)  # an unattended browser stops being a way in
    login_max_failures: int = Field(5, ge=1)  # per username within login_window_s
    login_max_failures_per_address: int = Field(20, ge=1)  # an office behind one NAT
    login_window_s: float = Field(900, gt=0)
    ws_recheck_s: float = Field(30, gt=0)  # open WebSockets re-check their session this often

    @field_validator("public_urls", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("public_urls")
    @classmethod
    def _origins(cls, urls: list[str]) -> list[str]:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{url!r}: expected an http:// or https:// URL with a host")
            if parts.path not in ("", "/") or parts.query or parts.fragment:
                raise ValueError(f"{url!r}: expected an origin only (no path, query or #)")
        return urls


class IvrSettings(_Section):
    """Where flows and sounds live (ivr/flow; centralino/flows.py loads and checks them)."""

    # One TOML document per flow, named by the file's stem (sales.toml is flow "sales"). Read
    # at start and again whenever a file changes (checked every reload_check_s) or on SIGHUP.
    flows_dir: Path | None = None
    reload_check_s: float = Field(2.0, gt=0)
    # language -> directories holding `<sound>.<format>` as Asterisk plays it for that
    # language (Debian's recorded pack, and `make prompts`' build/sounds/<lang>). Every prompt
    # a flow names is looked up here at start and by check-config; empty: not checked.
    sounds: dict[str, list[Path]] = Field(default_factory=dict)
    # The languages a flow that declares none is checked in.
    languages: list[str] = Field(default_factory=lambda: ["it", "en"])


class Settings(_Section):
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    ami: AmiSettings = AmiSettings()
    logging: LoggingSettings = LoggingSettings()
    context: ContextSettings = ContextSettings()
    acd: AcdSettings = AcdSettings()
    contact: ContactSettings = ContactSettings()
    speech: SpeechSettings = SpeechSettings()
    demo: DemoSettings = DemoSettings()
    whatsapp: WhatsAppSettings = WhatsAppSettings()
    twilio: TwilioSettings = TwilioSettings()
    email: EmailSettings = EmailSettings()
    ivr: IvrSettings = IvrSettings()
    # Call flows by name, one TOML table each (README "Call flows"); `default` replaces the
    # built-in one. Checked with the rest of the configuration by centralino/flows.py.
    flows: dict[str, dict[str, Any]] = Field(default_factory=dict)
    access: AccessSettings = AccessSettings()

    @model_validator(mode="after")
    def _intents_servable(self) -> Settings:
        # Agents listed here are checked too; agents built later (the demo's) are checked
        # by the composition root with the same function.
        agents = [
            AgentDefinition(agent_id=a.id, skills=dict(a.skills)) for a in self.acd.agents
        ] or None
        problems = route_problems(
            self.contact.routes(), queues=[q.name for q in self.acd.queues], agents=agents
        )
        if problems:
            raise ValueError("contact.intents: " + "; ".join(problems))
        return self

    def redacted(self) -> dict[str, Any]:
        """A loggable view: secrets show as '**********'."""
        return self.model_dump(mode="json", by_alias=True)


_ENV_ONLY = {("ami", "secret"), ("demo", "password")}
# The channels' webhook secrets (centralino/web/webhooks.py).
_ENV_ONLY |= {("whatsapp", "app_secret"), ("whatsapp", "verify_token"), ("twilio", "auth_token")}
_ENV_ONLY |= {("whatsapp", "access_token")}


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    overrides: dict[str, dict[str, str]] = {}
    sections = set(Settings.model_fields)
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("_")
        if section in sections and key:
            overrides.setdefault(section, {})[key] = value
    return overrides


def _format(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"])
        lines.append(f"  {key}: {item['msg']}")
    return "invalid settings:\n" + "\n".join(lines)


def load_settings(
    path: Path | str | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the TOML file (if any), apply environment overrides, validate."""
    env = os.environ if environ is None else environ
    path = path or env.get(ENV_PREFIX + "CONFIG")
    data: dict[str, Any] = {}
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise SettingsError(f"settings file not found: {path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"settings file {path} is not valid TOML: {exc}") from exc
    for section, key in _ENV_ONLY:
        if key in data.get(section, {}):
            raise SettingsError(
                f"{section}.{key}: secrets are read from the environment only "
                f"({ENV_PREFIX}{section.upper()}_{key.upper()}), remove it from {path}"
            )
    for section in ("database", "redis"):
        try:
            _no_password_in_file(data.get(section, {}).get("url"))
        except ValueError as exc:
            raise SettingsError(
                f"{section}.url: {exc} ({ENV_PREFIX}{section.upper()}_URL)"
            ) from exc
    for section, values in _env_overrides(env).items():
        merged = dict(data.get(section, {}))
        merged.update(values)
        data[section] = merged
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(_format(exc)) from None
    problems = _cross_key_problems(settings, env)
    if problems:
        raise SettingsError("invalid settings:\n" + "\n".join(f"  {p}" for p in problems))
    return settings


def _cross_key_problems(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """What no single field can check: keys that must agree, and the environment a key names.

    The environment is the one the settings were read from, so a test (or `check-config` on a
    machine other than the server's) judges the same mapping the server would."""
    problems = []
    db = settings.database
    if db.pool_min > db.pool_max:
        problems.append(
            f"database.pool_min: expected at most database.pool_max ({db.pool_max}), "
            f"got {db.pool_min}"
        )
    problems.extend(_asterisk_problems(settings, environ))
    for i, backend in enumerate(settings.context.backends):
        if backend.auth_env and not environ.get(backend.auth_env):
            problems.append(
                f"context.backends[{i}].auth_env: expected the name of a set environment "
                f"variable holding the {backend.auth_header} header of backend "
                f"{backend.name!r}; {backend.auth_env} is not set"
            )
    return problems


def _asterisk_problems(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """More Asterisk servers: unique names, secrets set, agents placed on known servers."""
    problems = []
    names: set[str] = set()
    for i, server in enumerate(settings.ami.servers):
        if server.name in names:
            problems.append(f"ami.servers[{i}].name: {server.name!r} is used twice")
        names.add(server.name)
        if settings.ami.enabled and not environ.get(server.secret_env):
            problems.append(
                f"ami.servers[{i}].secret_env: expected the name of a set environment variable "
                f"holding the AMI secret of {server.name!r}; {server.secret_env} is not set"
            )
    for i, agent in enumerate(settings.acd.agents):
        if agent.asterisk and agent.asterisk not in names:
            problems.append(
                f"acd.agents[{i}].asterisk: expected one of ami.servers' names "
                f"({', '.join(sorted(names)) or 'none configured'}), got {agent.asterisk!r}"
            )
    return problems
