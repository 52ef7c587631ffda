"""asterisk_conf/: every file parses, every reference resolves, and the inbound call is always
answered: by Centralino, or by a static fallback queue when Centralino is down or lets go."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from centralino.asterisk.dialplan import (
    ConfigError,
    ConfigFile,
    ConfigSection,
    Dialplan,
    DialplanStep,
    agi_scripts_in_dialplan,
    best_match,
    dialplan_from_config,
    extension_matches,
    load_dialplan,
    parse_config,
    parse_config_text,
    split_args,
)
from centralino.settings import TRANSFER_CONTEXT, AcdSettings
from centralino.simulator import callcenter
from centralino.simulator.transcripts import load_transcripts, transcripts_dir
from tests.test_agi_scripts import OK_REPLIES, run_dialogue

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "asterisk_conf"
RENDER = CONF / "render-secrets.sh"
AGENTS = ("agent101", "agent102", "agent103")
# Files Asterisk reads from /etc/asterisk that we ship (everything else uses Asterisk defaults).
REQUIRED_FILES = (
    "asterisk.conf",
    "extensions.conf",
    "features.conf",
    "logger.conf",
    "manager.conf",
    "modules.conf",
    "musiconhold.conf",
    "pjsip.conf",
    "queues.conf",
    "rtp.conf",
)
GENERATED_DIR = "/run/centralino"


@pytest.fixture(scope="module")
def dialplan() -> Dialplan:
    return load_dialplan(CONF / "extensions.conf")


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What render-secrets.sh writes at container start, with every optional secret given."""
    out = tmp_path_factory.mktemp("secrets")
    result = _render(
        out,
        CENTRALINO_AMI_SECRET="ami;secret",
        CENTRALINO_AGENT_PASSWORDS=",".join(f"{a}:pw-{a}" for a in AGENTS),
        CENTRALINO_TRUNK_USERNAME="carrier-user",
        CENTRALINO_TRUNK_PASSWORD="carrier-pw",
    )
    assert result.returncode == 0, result.stderr
    return out


def _render(out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CENTRALINO_SECRETS_DIR": str(out)}
    return subprocess.run(
        ["sh", str(RENDER)], env={**base, **env}, capture_output=True, text=True, check=False
    )


def _with_generated(config: ConfigFile, secrets: Path) -> ConfigFile:
    """The config as Asterisk sees it in the container: #tryinclude'd secrets appended."""
    extra: list[ConfigSection] = []
    for include in config.includes:
        if include.target.startswith(GENERATED_DIR):
            extra += parse_config(secrets / Path(include.target).name).sections
    return ConfigFile(config.path, config.sections + tuple(extra), config.includes)


def _objects(config: ConfigFile, kind: str) -> dict[str, list[str]]:
    """PJSIP objects of one `type` (the same name may hold an endpoint and an aor)."""
    out: dict[str, list[str]] = {}
    for section in config.sections:
        if section.is_template:
            continue
        entries = config._inherited(section, seen=(section.name,)) + list(section.entries)
        if any(e.key == "type" and e.value == kind for e in entries):
            out[section.name] = [f"{e.key}={e.value}" for e in entries]
    return out


def _value(entries: list[str], key: str) -> str | None:
    found = [e.split("=", 1)[1] for e in entries if e.split("=", 1)[0] == key]
    return found[-1] if found else None


# ---- every file parses -------------------------------------------------------------------------


def test_every_required_file_exists_and_parses_with_templates_resolved() -> None:
    for name in REQUIRED_FILES:
        assert (CONF / name).is_file(), name
    for path in sorted(CONF.glob("*.conf")):
        config = parse_config(path)
        assert config.sections, path
        for section in config.names():
            config.resolved(section)  # raises on an unknown template or a loop


def test_includes_resolve_inside_the_folder_or_are_generated_at_start() -> None:
    for path in sorted(CONF.glob("*.conf")):
        for include in parse_config(path).includes:
            if include.target.startswith("/"):
                # only the secrets render-secrets.sh writes, and optional (#tryinclude)
                assert include.target.startswith(GENERATED_DIR + "/"), include
                assert include.tried, include
                assert Path(include.target).name in RENDER.read_text(), include
            else:
                assert include.exists, include
                assert include.resolved.parent == CONF, include


# ---- the dialplan ------------------------------------------------------------------------------


def test_contexts_and_agi_scripts(dialplan: Dialplan) -> None:
    assert {
        "centralino-inbound",
        "centralino-transfer",
        "centralino-fallback",
        "centralino-fallback-queues",
        "centralino-agents",
        "centralino-callback",
        "centralino-audiosocket",
    } <= set(dialplan.contexts)
    # The lead's dialplan contract test checks each FastAGI script has a route.
    assert agi_scripts_in_dialplan(CONF / "extensions.conf") == {"inbound"}
    assert dialplan.process_agi_scripts() == {"fallback_queue.py"}
    script = ROOT / "agi_scripts" / "fallback_queue.py"
    assert script.stat().st_mode & stat.S_IXUSR
    assert script.read_text().startswith("#!/usr/bin/env python3\n")
    fastagi: dict[str, list[str]] = {}
    for step in dialplan.calls_of("AGI"):
        if "://" in step.args:
            fastagi.setdefault(step.context, []).append(step.arguments[0])
    assert fastagi == {
        # the primary server, then each backup server while none was reached
        "centralino-inbound": [
            "agi://${CENTRALINO_HOST}:${CENTRALINO_AGI_PORT}/inbound",
            "agi://${CENTRALINO_AGI_SERVER}/inbound",
        ],
        # the transferred caller's new session names the queue (InboundHandler reads `queue`)
        "centralino-transfer": [
            "agi://${CENTRALINO_HOST}:${CENTRALINO_AGI_PORT}/inbound?queue=${EXTEN}",
            "agi://${CENTRALINO_AGI_SERVER}/inbound?queue=${EXTEN}",
        ],
    }


def test_globals_match_the_app_servers_ports() -> None:
    toml = (ROOT / "centralino.example.toml").read_text()
    plan = load_dialplan(CONF / "extensions.conf")
    agi_port = re.search(r"^agi_port = (\d+)", toml, re.M)
    audio_port = re.search(r"^audiosocket_port = (\d+)", toml, re.M)
    assert agi_port is not None
    assert audio_port is not None
    assert plan.globals["CENTRALINO_AGI_PORT"] == agi_port.group(1)
    assert plan.globals["CENTRALINO_AUDIOSOCKET_PORT"] == audio_port.group(1)
    assert plan.globals["FALLBACK_CONF"] == "/etc/asterisk/centralino-fallback.conf"


def test_every_static_goto_target_exists(dialplan: Dialplan) -> None:
    targets = dialplan.goto_targets()
    assert len(targets) >= 8
    for target in targets:
        if "$" not in target.context:
            assert target.context in dialplan.contexts, target
        if not target.dynamic:
            assert dialplan.has_priority(target.context, target.extension, target.priority), target


def test_every_queue_dial_target_hint_and_moh_class_exists(
    dialplan: Dialplan, secrets: Path
) -> None:
    queues = parse_config(CONF / "queues.conf")
    pjsip = _with_generated(parse_config(CONF / "pjsip.conf"), secrets)
    moh = parse_config(CONF / "musiconhold.conf")
    endpoints = _objects(pjsip, "endpoint")
    static_queues = {s.name for s in queues.sections if not s.is_template} - {"general"}

    assert dialplan.queues() == {"fallback-vip", "fallback-standard"}
    assert dialplan.queues() <= static_queues
    dial_targets = dialplan.dial_targets()
    assert {t for t, _ in dial_targets} >= {f"PJSIP/{a}" for a in AGENTS}
    for target, step in dial_targets:
        tech, _, resource = target.partition("/")
        assert tech == "PJSIP", step
        endpoint = resource.rpartition("@")[2] if "@" in resource else resource
        assert endpoint in endpoints, step
    for step in dialplan.steps():
        if step.priority == "hint":
            assert step.app.startswith("PJSIP/")
            assert step.app.removeprefix("PJSIP/") in endpoints, step
    for queue in static_queues:
        for member in queues.values(queue, "member"):
            interface = member.split(",")[0]
            assert interface.removeprefix("PJSIP/") in endpoints, member
        musicclass = queues.value(queue, "musicclass")
        assert musicclass is not None
        assert moh.has(musicclass), musicclass
    assert dialplan.moh_classes() <= set(moh.names())


def test_fallback_rules_name_only_reachable_queues(dialplan: Dialplan) -> None:
    rules = parse_config(CONF / "centralino-fallback.conf")
    queues = parse_config(CONF / "queues.conf")
    named = {e.value for e in rules.resolved("queues")} | {
        rules.value("general", "default_queue") or "",
        dialplan.globals["FALLBACK_DEFAULT_QUEUE"],
    }
    for queue in named:
        assert queues.has(queue), queue
        assert dialplan.has_priority("centralino-fallback-queues", queue, "1"), queue
    # the queues context holds queue entries only, each queueing into its own name
    for extension in dialplan.extensions("centralino-fallback-queues"):
        steps = [
            s for s in dialplan.contexts["centralino-fallback-queues"] if s.extension == extension
        ]
        assert [s.arguments[0] for s in steps if s.app == "Queue"] == [extension]
    classes = {e.key for e in rules.resolved("queues")}
    assert {e.value for e in rules.resolved("callers")} <= classes


def test_endpoints_reference_existing_objects_and_contexts(
    dialplan: Dialplan, secrets: Path
) -> None:
    pjsip = _with_generated(parse_config(CONF / "pjsip.conf"), secrets)
    endpoints = _objects(pjsip, "endpoint")
    aors = _objects(pjsip, "aor")
    auths = _objects(pjsip, "auth")
    transports = _objects(pjsip, "transport")
    assert set(AGENTS) | {"trunk"} <= set(endpoints)
    for name, entries in endpoints.items():
        assert _value(entries, "transport") in transports, name
        assert _value(entries, "context") in dialplan.contexts, name
        for key in ("aors",):
            for aor in (_value(entries, key) or "").split(","):
                assert aor.strip() in aors, (name, aor)
        for key in ("auth", "outbound_auth"):
            ref = _value(entries, key)
            if ref is not None:
                assert ref in auths, (name, ref)
    for name, entries in _objects(pjsip, "identify").items():
        assert _value(entries, "endpoint") in endpoints, name
    for agent in AGENTS:
        assert _value(endpoints[agent], "context") == "centralino-agents"
        assert agent.removeprefix("agent") in dialplan.extensions("centralino-agents")
        assert _value(auths[f"{agent}-auth"], "password") == f"pw-{agent}"
    assert _value(endpoints["trunk"], "context") == "centralino-inbound"


def test_without_generated_secrets_no_password_is_in_the_repository() -> None:
    for path in sorted(CONF.glob("*.conf")):
        for section in parse_config(path).sections:
            for entry in section.entries:
                assert entry.key not in ("secret", "password"), (path.name, entry)


# ---- AMI user ----------------------------------------------------------------------------------


def test_manager_user_is_least_privilege(secrets: Path) -> None:
    manager = _with_generated(parse_config(CONF / "manager.conf"), secrets)
    assert manager.value("general", "enabled") == "yes"
    assert manager.value("general", "port") == "5038"
    (user,) = [s for s in manager.sections if s.name == "centralino"]
    assert user.templates == ("centralino-perms",)
    assert manager.value("centralino", "secret") == "ami;secret"  # escaped on disk, intact here
    read = set((manager.value("centralino", "read") or "").split(","))
    write = set((manager.value("centralino", "write") or "").split(","))
    assert read == {"system", "call", "agent", "user", "dtmf"}
    assert write == {"originate", "call", "agent", "reporting"}
    assert not (read | write) & {"all", "command", "config"}
    assert "system" not in write
    acl = [(e.key, e.value) for e in manager.resolved("centralino") if e.key in ("deny", "permit")]
    assert acl[0] == ("deny", "0.0.0.0/0.0.0.0")  # deny first, then the permits
    assert ("permit", "172.30.57.0/255.255.255.0") in acl
    # only Centralino: no other user sections (the transcripts' `admin` is not shipped)
    users = [s.name for s in manager.sections if not s.is_template and s.name != "general"]
    assert users == ["centralino"]


def test_render_secrets_refuses_bad_input(tmp_path: Path) -> None:
    missing = _render(tmp_path)
    assert missing.returncode != 0
    assert "CENTRALINO_AMI_SECRET is not set" in missing.stderr
    two_lines = _render(tmp_path, CENTRALINO_AMI_SECRET="a\n[admin]\nread=all")
    assert two_lines.returncode != 0
    assert "single line" in two_lines.stderr
    bad_agent = _render(tmp_path, CENTRALINO_AMI_SECRET="s", CENTRALINO_AGENT_PASSWORDS="x]:pw")
    assert bad_agent.returncode != 0
    no_password = _render(tmp_path, CENTRALINO_AMI_SECRET="s", CENTRALINO_AGENT_PASSWORDS="agent1")
    assert no_password.returncode != 0
    minimal = _render(tmp_path, CENTRALINO_AMI_SECRET="s")
    assert minimal.returncode == 0, minimal.stderr
    assert (tmp_path / "manager_secrets.conf").stat().st_mode & 0o077 == 0
    assert not _objects(parse_config(tmp_path / "pjsip_secrets.conf"), "auth")


# ---- modules -----------------------------------------------------------------------------------


def test_modules_required_for_centralino_are_never_noloaded() -> None:
    modules = parse_config(CONF / "modules.conf")
    required = {m.removesuffix(".so") for m in modules.values("modules", "require")}
    noload = {m.removesuffix(".so") for m in modules.values("modules", "noload")}
    assert {
        "pbx_config",
        "res_agi",
        "app_queue",
        "res_musiconhold",
        "res_pjsip",
        "chan_pjsip",
        "res_audiosocket",
        "app_audiosocket",
        "func_dialplan",
        "res_pjsip_refer",  # agents' phones transfer callers with SIP REFER
    } <= required
    assert not required & noload
    assert modules.value("modules", "autoload") == "yes"


def test_rtp_range_is_what_compose_publishes() -> None:
    rtp = parse_config(CONF / "rtp.conf")
    compose = (ROOT / "docker-compose.yml").read_text()
    start, end = rtp.value("general", "rtpstart"), rtp.value("general", "rtpend")
    assert f'"{start}-{end}:{start}-{end}/udp"' in compose


# ---- the inbound call, walked through the dialplan ---------------------------------------------


@dataclass
class Walk:
    """A minimal dialplan interpreter for the applications our contexts use.

    `agi_results` and `app_results` give the variables an AGI script (by name) or another
    application (e.g. Dial) leaves set; `hangup_in` names an application during which the
    channel hangs up (e.g. "Dial": the agent of a callback hangs up while it runs). After the
    hangup, as Asterisk does, the `h` extension of the context the channel is in runs, then the
    channel's hangup handlers (`CHANNEL(hangup_handler_push)`, last pushed first); what they run
    goes to `after_hangup`, the rest to `trace`."""

    plan: Dialplan
    agi_results: dict[str, dict[str, str]]  # script -> variables it leaves set
    variables: dict[str, str] = field(default_factory=dict)
    app_results: dict[str, dict[str, str]] = field(default_factory=dict)
    hangup_in: str | None = None
    trace: list[str] = field(default_factory=list)
    after_hangup: list[str] = field(default_factory=list)
    hangup_handlers: list[tuple[str, str, str]] = field(default_factory=list)

    def run(self, context: str, extension: str, *, max_steps: int = 60) -> list[str]:
        context = self._execute(context, extension, "1", self.trace, max_steps=max_steps)
        if self.plan.has_priority(context, "h", "1"):
            self._execute(context, "h", "1", self.after_hangup, max_steps=max_steps)
        while self.hangup_handlers:
            handler = self.hangup_handlers.pop()
            self._execute(*handler, self.after_hangup, max_steps=max_steps)
        return self.trace

    def _execute(
        self, context: str, extension: str, label: str, trace: list[str], *, max_steps: int
    ) -> str:
        """Run from context,extension,label until the channel is gone (Hangup, a hangup during
        an application, the end of an `h` extension) or a Return; the context it ended in."""
        in_main = trace is self.trace
        priority = self._priority_of(context, extension, label)
        for _ in range(max_steps):
            step = self._find(context, extension, priority, allow_end=not in_main)
            if step is None:
                return context
            self.variables.update(EXTEN=extension, CONTEXT=context)
            app = step.app.lower()
            args = self._expand(step.args)
            trace.append(f"{step.app}({args})")
            jump: tuple[str, str, str] | None = None
            if app in ("hangup", "return"):
                return context
            if app == "set":
                self._set(args)
            elif app == "mset":
                for assignment in split_args(args):
                    self._set(assignment)
            elif app == "agi":
                script = split_args(args)[0]
                name = urlsplit(script).path.rsplit("/", 1)[-1] if "://" in script else script
                self.variables.update(self.agi_results.get(name, {"AGISTATUS": "FAILURE"}))
            elif app == "gotoif":
                condition, _, branches = args.rpartition("?")
                yes, _, no = branches.partition(":")
                chosen = yes if self._truthy(condition) else no
                if chosen:
                    jump = self._destination(chosen, context, extension)
            elif app == "goto":
                jump = self._destination(args, context, extension)
            self.variables.update(self.app_results.get(step.app, {}))
            if in_main and step.app == self.hangup_in:
                return context
            if jump is None:
                priority += 1
                continue
            context, extension, label = jump
            priority = self._priority_of(context, extension, label)
        raise AssertionError(f"no end after {max_steps} steps: {trace}")

    def _set(self, assignment: str) -> None:
        name, _, value = assignment.partition("=")
        if name == "CHANNEL(hangup_handler_push)":
            handler = split_args(value)
            assert len(handler) == 3, value
            self.hangup_handlers.append((handler[0], handler[1], handler[2]))
        else:
            self.variables[name.lstrip("_")] = value

    def _find(
        self, context: str, extension: str, priority: int, *, allow_end: bool = False
    ) -> DialplanStep | None:
        found = self.plan.find_extension(context, extension)
        if found is not None:
            ctx, written = found
            for step in self.plan.contexts[ctx]:
                if step.extension == written and step.priority == priority:
                    return step
            return None  # past its last priority: Asterisk hangs up
        if allow_end:
            return None
        raise AssertionError(f"no {context},{extension},{priority}: {self.trace}")

    def _priority_of(self, context: str, extension: str, label: str) -> int:
        if label.isdigit():
            return int(label)
        found = self.plan.find_extension(context, extension)
        assert found is not None, (context, extension)
        for step in self.plan.contexts[found[0]]:
            if step.extension == found[1] and step.label == label:
                assert isinstance(step.priority, int)
                return step.priority
        raise AssertionError(f"no label {label} in {context},{extension}")

    def _destination(self, text: str, context: str, extension: str) -> tuple[str, str, str]:
        parts = split_args(text)
        if len(parts) == 1:
            return context, extension, parts[0]
        if len(parts) == 2:
            return context, parts[0], parts[1]
        return parts[0], parts[1], parts[2]

    def _expand(self, text: str) -> str:
        """Innermost `${...}` and `$[...]` first, until none is left (as Asterisk substitutes)."""
        inner = re.compile(r"\$\{([^${}]*)\}")
        expression = re.compile(r"\$\[([^$\[\]]*)\]")
        while True:
            if match := inner.search(text):
                text = text[: match.start()] + self._lookup(match.group(1)) + text[match.end() :]
            elif match := expression.search(text):
                text = text[: match.start()] + self._evaluate(match.group(1)) + text[match.end() :]
            else:
                return text

    def _lookup(self, name: str) -> str:
        call = re.fullmatch(r"(\w+)\((.*)\)", name, re.DOTALL)
        if call and call.group(1) == "DIALPLAN_EXISTS":
            ctx, ext, prio = split_args(call.group(2))
            return "1" if self.plan.has_priority(ctx, ext, prio) else "0"
        if call and call.group(1) == "IF":
            condition, _, branches = call.group(2).partition("?")
            yes, _, no = branches.partition(":")
            return yes if self._truthy(condition) else no
        if call:
            return ""
        return self.variables.get(name, self.plan.globals.get(name, ""))

    @staticmethod
    def _evaluate(expression: str) -> str:
        match = re.fullmatch(r'\s*"(.*)"\s*=\s*"(.*)"\s*', expression)
        if match:
            return "1" if match.group(1) == match.group(2) else "0"
        return expression.strip()

    @staticmethod
    def _truthy(value: str) -> bool:
        return value.strip() not in ("", "0")


def _queues(trace: list[str]) -> list[str]:
    return [t.removeprefix("Queue(").split(",")[0] for t in trace if t.startswith("Queue(")]


@pytest.mark.parametrize(
    ("inbound", "fallback", "expected_queue"),
    [
        # the app server is down or dropped the session; the local script picked vip
        ({"AGISTATUS": "FAILURE"}, {"FALLBACK_QUEUE": "fallback-vip"}, "fallback-vip"),
        # ... and the local script could not run either: the default queue still answers
        ({"AGISTATUS": "FAILURE"}, {"AGISTATUS": "FAILURE"}, "fallback-standard"),
        # the app returned the call on graceful shutdown
        ({"AGISTATUS": "SUCCESS", "CENTRALINO_STATUS": "SHUTDOWN"}, {}, "fallback-standard"),
        # the app ended the session without routing the call
        ({"AGISTATUS": "SUCCESS"}, {}, "fallback-standard"),
        # a garbled queue name never reaches Queue(), nor loops back into the fallback
        ({"AGISTATUS": "FAILURE"}, {"FALLBACK_QUEUE": "no-such-queue"}, "fallback-standard"),
        ({"AGISTATUS": "FAILURE"}, {"FALLBACK_QUEUE": "s"}, "fallback-standard"),
        ({"AGISTATUS": "FAILURE"}, {"FALLBACK_QUEUE": "nobody"}, "fallback-standard"),
        # the app handled the call
        ({"AGISTATUS": "SUCCESS", "CENTRALINO_STATUS": "DONE"}, {}, None),
        # the caller hung up during the session
        ({"AGISTATUS": "HANGUP"}, {}, None),
    ],
)
def test_inbound_call_is_answered_unless_the_app_handled_it_or_the_caller_left(
    dialplan: Dialplan,
    inbound: dict[str, str],
    fallback: dict[str, str],
    expected_queue: str | None,
) -> None:
    walk = Walk(dialplan, {"inbound": inbound, "fallback_queue.py": fallback})
    trace = walk.run("centralino-inbound", "+390299999999")
    assert trace[0].startswith("NoOp(Inbound")
    assert any(t.startswith("AGI(agi://centralino:4573/inbound") for t in trace)
    assert trace[-1] == "Hangup()"
    if expected_queue is None:
        assert _queues(trace) == []
        assert not any(t.startswith("AGI(fallback_queue.py") for t in trace)
    else:
        assert _queues(trace) == [expected_queue]
        assert "Answer()" in trace
        assert "AGI(fallback_queue.py,/etc/asterisk/centralino-fallback.conf)" in trace


def _fastagi_requests(trace: list[str]) -> list[str]:
    return [t.removeprefix("AGI(").removesuffix(")") for t in trace if t.startswith("AGI(agi:")]


@pytest.mark.parametrize(
    ("inbound", "fallback", "expected_queue"),
    [
        ({"AGISTATUS": "FAILURE"}, {"FALLBACK_QUEUE": "fallback-vip"}, "fallback-vip"),
        ({"AGISTATUS": "FAILURE"}, {"AGISTATUS": "FAILURE"}, "fallback-standard"),
        ({"AGISTATUS": "SUCCESS", "CENTRALINO_STATUS": "SHUTDOWN"}, {}, "fallback-standard"),
        ({"AGISTATUS": "SUCCESS"}, {}, "fallback-standard"),
        ({"AGISTATUS": "SUCCESS", "CENTRALINO_STATUS": "DONE"}, {}, None),
        ({"AGISTATUS": "HANGUP"}, {}, None),
    ],
)
@pytest.mark.parametrize("queue", [q.name for q in AcdSettings().queues])
def test_transferred_caller_reenters_centralino_for_the_queue_or_is_still_answered(
    dialplan: Dialplan,
    queue: str,
    inbound: dict[str, str],
    fallback: dict[str, str],
    expected_queue: str | None,
) -> None:
    """An agent blind-transferred the caller to `<queue>@centralino-transfer`: the channel asks
    the `inbound` route for that queue; if Centralino cannot take it, a static queue does."""
    walk = Walk(
        dialplan,
        {"inbound": inbound, "fallback_queue.py": fallback},
        # what the first session left behind must not pass for this session's word
        variables={"CENTRALINO_STATUS": "DONE"},
    )
    trace = walk.run(TRANSFER_CONTEXT, queue)
    assert trace[0].startswith("NoOp(Transferred")
    (request,) = _fastagi_requests(trace)
    url = urlsplit(request)
    assert (url.hostname, url.port) == ("centralino", 4573)
    assert url.path == "/inbound" and parse_qs(url.query) == {"queue": [queue]}
    assert trace[-1] == "Hangup()"
    if expected_queue is None:
        assert _queues(trace) == []
    else:
        assert _queues(trace) == [expected_queue]
        assert "AGI(fallback_queue.py,/etc/asterisk/centralino-fallback.conf)" in trace


def test_agents_blind_transfers_of_inbound_callers_land_in_the_transfer_context(
    dialplan: Dialplan,
) -> None:
    """TRANSFER_CONTEXT is set with inheritance on the caller's channel before the FastAGI
    session Dials the agent, so the agent's channel carries it when their phone transfers; it
    names the context Centralino and its simulator know, where every queue is an extension."""
    trace = Walk(dialplan, {"inbound": {"AGISTATUS": "HANGUP"}}).run(
        "centralino-inbound", "+390299999999"
    )
    inherited = "Set(__TRANSFER_CONTEXT=centralino-transfer)"
    assert inherited in trace
    assert trace.index(inherited) < trace.index(
        "AGI(agi://centralino:4573/inbound)"
    )  # the app Dials the agent during the session
    assert TRANSFER_CONTEXT == callcenter.TRANSFER_CONTEXT == "centralino-transfer"
    assert TRANSFER_CONTEXT in dialplan.contexts
    for queue in AcdSettings().queues:
        assert f"{queue.name}@{TRANSFER_CONTEXT}" in AcdSettings().transfer_queues()
        assert any(
            extension_matches(s.extension, queue.name) for s in dialplan.contexts[TRANSFER_CONTEXT]
        ), queue
    # nothing else lands there: a number dialled into the context matches no extension
    assert not any(
        extension_matches(s.extension, "8001") for s in dialplan.contexts[TRANSFER_CONTEXT]
    )


def test_fallback_queue_script_output_drives_the_dialplan(dialplan: Dialplan) -> None:
    """End to end: the real script, fed the recorded environment, picks the queue Queue() uses."""
    commands, code, _ = run_dialogue(OK_REPLIES, str(CONF / "centralino-fallback.conf"))
    assert code == 0
    set_vars = {}
    for command in commands:
        match = re.fullmatch(rb'SET VARIABLE (\w+) "(.*)"\n', command)
        if match:
            set_vars[match.group(1).decode()] = match.group(2).decode()
    walk = Walk(
        dialplan,
        {"inbound": {"AGISTATUS": "FAILURE"}, "fallback_queue.py": set_vars},
    )
    caller = load_transcripts("fastagi-session.txt")[0].environment
    assert b"agi_callerid: +390212345678\n" in caller  # the recorded caller is a VIP in the rules
    assert _queues(walk.run("centralino-inbound", "0299999999")) == ["fallback-vip"]


def test_audiosocket_context(dialplan: Dialplan) -> None:
    walk = Walk(
        dialplan, {}, variables={"AUDIOSOCKET_UUID": "40325ec2-5efd-4bd3-805f-53576e581d13"}
    )
    trace = walk.run("centralino-audiosocket", "s")
    assert "AudioSocket(40325ec2-5efd-4bd3-805f-53576e581d13,centralino:9092)" in trace
    trace = Walk(dialplan, {}).run("centralino-audiosocket", "s")
    assert not any(t.startswith("AudioSocket(") for t in trace)


# ---- special extensions, DTMF transfers, connected callers, callbacks --------------------------

# Extensions Asterisk runs by itself (h: after every hangup; i: invalid; t, T: timeouts;
# e: exception; s: start; a, o: voicemail keys; fax: fax detection; talk: BackgroundDetect).
SPECIAL_EXTENSIONS = ("a", "e", "h", "i", "o", "s", "t", "T", "fax", "talk")


@pytest.mark.parametrize("special", SPECIAL_EXTENSIONS)
def test_special_extensions_never_reach_fastagi_from_the_transfer_context(
    dialplan: Dialplan, special: str
) -> None:
    """`_[a-z]!` matched `h`: each hangup of a transferred caller ran `inbound?queue=h`."""
    found = dialplan.find_extension(TRANSFER_CONTEXT, special)
    if found is None:
        return  # Asterisk finds nothing to run
    walk = Walk(dialplan, {"inbound": {"AGISTATUS": "SUCCESS", "CENTRALINO_STATUS": "DONE"}})
    trace = walk.run(TRANSFER_CONTEXT, special)
    assert _fastagi_requests(trace + walk.after_hangup) == [], (special, trace)
    assert found[1] == special  # written out on purpose, never caught by the queue pattern


@pytest.mark.parametrize("agi", [{"AGISTATUS": "HANGUP"}, {"AGISTATUS": "FAILURE"}])
def test_a_transferred_callers_hangup_runs_an_h_that_does_nothing(
    dialplan: Dialplan, agi: dict[str, str]
) -> None:
    walk = Walk(dialplan, {"inbound": agi, "fallback_queue.py": {}})
    trace = walk.run(TRANSFER_CONTEXT, "billing")
    assert len(_fastagi_requests(trace)) == 1
    if agi["AGISTATUS"] == "HANGUP":  # the caller left in the session: `h` of this context
        assert [t.partition("(")[0] for t in walk.after_hangup] == ["NoOp"]
    assert _fastagi_requests(walk.after_hangup) == []


@pytest.mark.parametrize("queue", [q.name for q in AcdSettings().queues])
def test_every_queue_has_a_numeric_alias_for_dtmf_transfers(dialplan: Dialplan, queue: str) -> None:
    """DTMF features dial digits only: `##7001` must reach the same entry as `billing`."""
    aliases = [
        e
        for e in dialplan.extensions(TRANSFER_CONTEXT)
        if re.fullmatch(r"[0-9]+", e) and _requested_queue(dialplan, e) == queue
    ]
    assert len(aliases) == 1, (queue, aliases)
    assert dialplan.find_extension(TRANSFER_CONTEXT, aliases[0]) == (TRANSFER_CONTEXT, aliases[0])
    # no alias is a prefix of another: the digit collector stops on the first full match
    numbers = [e for e in dialplan.extensions(TRANSFER_CONTEXT) if e.isdigit()]
    assert not any(a != b and b.startswith(a) for a in numbers for b in numbers)


def _requested_queue(dialplan: Dialplan, extension: str) -> str | None:
    walk = Walk(dialplan, {"inbound": {"AGISTATUS": "SUCCESS", "CENTRALINO_STATUS": "DONE"}})
    requests = _fastagi_requests(walk.run(TRANSFER_CONTEXT, extension))
    if len(requests) != 1:
        return None
    return parse_qs(urlsplit(requests[0]).query).get("queue", [None])[0]


def test_features_give_agents_transfer_keys_and_dial_lets_only_the_agent_use_them(
    dialplan: Dialplan,
) -> None:
    features = parse_config(CONF / "features.conf")
    blind = features.value("featuremap", "blindxfer")
    attended = features.value("featuremap", "atxfer")
    assert blind == "##"  # Asterisk 22's built-in `#` fires on one stray key
    assert attended == "*2"  # built in: none (attended transfer off)
    for keys in (blind, attended):
        assert re.fullmatch(r"[0-9*#]{2,}", keys)
    assert not blind.startswith(attended) and not attended.startswith(blind)
    # no announcement file to depend on: without it Asterisk abandons a DTMF blind transfer
    assert features.value("general", "transferannouncesound") == ""
    # t: the called party (agent) may transfer; T would let the caller transfer the agent
    for step in dialplan.calls_of("Dial"):
        options = step.arguments[2] if len(step.arguments) > 2 else ""
        assert "T" not in options, step
        if step.context == "centralino-agents":
            assert "t" in options, step
    ami_doc = (ROOT / "docs" / "ami.md").read_text()
    assert f"`{blind}`" in ami_doc and f"`{attended}`" in ami_doc
    assert "`Dial(<endpoint>,<ring timeout>,t)`" in ami_doc


CONNECTED_CASES = [
    # the app died mid-conversation; the agent hung up: Asterisk 22 ends such a session with
    # AGISTATUS=SUCCESS and DIALSTATUS=ANSWER (checked on a real server)
    ({"AGISTATUS": "SUCCESS", "DIALSTATUS": "ANSWER"}, {}, None),
    ({"AGISTATUS": "FAILURE", "DIALSTATUS": "ANSWER"}, {}, None),
    ({"AGISTATUS": "SUCCESS", "CENTRALINO_STATUS": "SHUTDOWN", "DIALSTATUS": "ANSWER"}, {}, None),
    # rung but never connected: still answered by a fallback queue
    ({"AGISTATUS": "SUCCESS", "DIALSTATUS": "NOANSWER"}, {}, "fallback-standard"),
    # a DIALSTATUS from before this session (the agent who transferred, an Originate variable)
    # does not count: the app died before connecting anyone
    ({"AGISTATUS": "FAILURE"}, {"DIALSTATUS": "ANSWER"}, "fallback-standard"),
]


@pytest.mark.parametrize(("agi", "before", "expected_queue"), CONNECTED_CASES)
@pytest.mark.parametrize(
    "entry", [("centralino-inbound", "+390299999999"), (TRANSFER_CONTEXT, "7001")]
)
def test_a_caller_connected_to_an_agent_is_never_queued_again(
    dialplan: Dialplan,
    entry: tuple[str, str],
    agi: dict[str, str],
    before: dict[str, str],
    expected_queue: str | None,
) -> None:
    context, extension = entry
    walk = Walk(dialplan, {"inbound": agi, "fallback_queue.py": {}}, variables=dict(before))
    trace = walk.run(context, extension)
    assert len(_fastagi_requests(trace)) == 1
    assert trace[-1] == "Hangup()"
    assert _queues(trace) == ([expected_queue] if expected_queue else [])


CALLBACK_CASES = [
    # (what Dial leaves, whether the agent's channel hangs up in Dial, Status reported)
    ({"DIALSTATUS": "ANSWER"}, None, "ANSWER"),  # customer talked and hung up first
    ({"DIALSTATUS": "ANSWER"}, "Dial", "ANSWER"),  # the agent hung up first
    ({"DIALSTATUS": "CANCEL"}, "Dial", "CANCEL"),  # the agent hung up while it rang
    ({"DIALSTATUS": "NOANSWER"}, None, "NOANSWER"),  # the customer never answered
    ({"DIALSTATUS": "BUSY"}, None, "BUSY"),
    ({}, "NoOp", "NOTDIALED"),  # the agent's channel went before the customer was dialled
]


@pytest.mark.parametrize(("dial", "hangup_in", "status"), CALLBACK_CASES)
def test_every_callback_channel_reports_its_outcome_exactly_once(
    dialplan: Dialplan, dial: dict[str, str], hangup_in: str | None, status: str
) -> None:
    walk = Walk(
        dialplan,
        {},
        variables={"CENTRALINO_CALLBACK_ID": "42"},
        app_results={"Dial": dial},
        hangup_in=hangup_in,
    )
    trace = walk.run("centralino-callback", "+390212345678")
    if hangup_in != "NoOp":
        assert "Dial(PJSIP/+390212345678@trunk,45)" in trace
    events = [t for t in trace + walk.after_hangup if t.startswith("UserEvent(")]
    # event name and headers are what centralino/callbacks.py reads
    assert events == [f"UserEvent(CentralinoCallback,Id: 42,Status: {status})"]


def test_the_transfer_context_is_checked_against_asterisks_own_matching() -> None:
    """What `dialplan show <exten>@<context>` listed on Asterisk 22.10.1 for a context holding
    `_x1`, `_[a-z][-a-z0-9_]!`, `fax` and `a-b`, best match first (the queue pattern's
    matches also checked by real calls into it)."""
    written = ["_x1", "_[a-z][-a-z0-9_]!", "fax", "a-b"]
    seen = {
        **dict.fromkeys(("h", "i", "t", "e", "s", "a", "o", "T", "7001", "Billing", "X1")),
        **dict.fromkeys(
            ("hr", "billing", "fallback-vip", "a_b", "talk", "x1"), "_[a-z][-a-z0-9_]!"
        ),
        "fax": "fax",
        "a-b": "a-b",
        "ab": "a-b",  # dashes are separators Asterisk ignores
        "51": "_x1",  # lower-case x is a wildcard too
    }
    for dialled, expected in seen.items():
        assert best_match(written, dialled) == expected, dialled
    assert extension_matches("_[a-z][-a-z0-9_]!", "fax")  # listed second, after `fax`
    # a '-' before a class's ']': Asterisk's pattern tree takes it for a range ending in ']'
    # and warns "A matching ']' was not found"; we refuse it
    with pytest.raises(ConfigError, match="before"):
        extension_matches("_[a-z][a-z0-9_-]!", "billing")
    assert not extension_matches("_[a-z]!", "7") and extension_matches("_[a-z]!", "h")


def test_every_pattern_in_the_dialplan_is_one_asterisk_reads_as_written(
    dialplan: Dialplan,
) -> None:
    patterns = {s.extension for s in dialplan.steps() if s.extension.startswith("_")}
    assert "_[a-z][-a-z0-9_]!" in patterns
    for pattern in patterns:
        extension_matches(pattern, "0")  # raises ConfigError on a class Asterisk misreads


# ---- asterisk.conf, music on hold --------------------------------------------------------------


def test_asterisk_conf_directories_are_real_and_the_images_defaults() -> None:
    """`[directories](!)` is a template: Asterisk ignores it."""
    config = parse_config(CONF / "asterisk.conf")
    (section,) = config.sections_named("directories")
    assert not section.is_template
    assert config.value("directories", "astetcdir") == "/etc/asterisk"  # compose mounts conf here
    agi_dir = config.value("directories", "astagidir")
    assert agi_dir == "/var/lib/asterisk/agi-bin"
    compose = (ROOT / "docker-compose.yml").read_text()
    assert f"{agi_dir}/fallback_queue.py" in compose
    assert config.value("directories", "astmoddir") == "/usr/lib/asterisk/modules"
    plan = load_dialplan(CONF / "extensions.conf")
    assert plan.globals["FALLBACK_CONF"].startswith("/etc/asterisk/")


def test_music_on_hold_classes_match_what_uses_them() -> None:
    """The class the app asks for (Channel.set_music's default) and the fallback queues' class
    exist, and the comments say which is which."""
    import inspect

    from ivr.ports import Channel

    app_class = inspect.signature(Channel.set_music).parameters["moh_class"].default
    moh = parse_config(CONF / "musiconhold.conf")
    queues = parse_config(CONF / "queues.conf")
    assert moh.has(app_class)
    text = (CONF / "musiconhold.conf").read_text()
    said = re.findall(r"SET MUSIC ON (\w+)", text)
    assert said == [app_class], said
    for queue in ("fallback-vip", "fallback-standard"):
        musicclass = queues.value(queue, "musicclass")
        assert musicclass is not None and moh.has(musicclass)


# ---- the parser itself -------------------------------------------------------------------------


def test_parser_reads_the_recorded_lab_dialplan() -> None:
    lab = transcripts_dir() / "extensions.conf"
    assert agi_scripts_in_dialplan(lab) == {"inbound"}
    plan = load_dialplan(lab)
    # the second [ivr-test] section appends to the first
    assert plan.extensions("ivr-test") == {"s", "exit", "nosighup"}
    (agi,) = [s for s in plan.contexts["ivr-test"] if s.extension == "s" and s.app == "AGI"]
    assert agi.priority == 3  # agi_priority: 3 in the recorded environment
    assert agi.arguments == ["agi://127.0.0.1:4573/inbound?lang=it", "foo=bar"]
    assert plan.queues() == {"support"}
    assert "audiosocket" in plan.applications()


def test_templates_arrows_comments_and_block_comments() -> None:
    config = parse_config_text(
        """
[base](!)        ; a template
a = 1
b => two ; comment
[more](!)
b = 3
c = semi\\;colon
;-- a block
[ignored]
x = y
--;
[child](base,more)
d = 4
[child](+)
e = 5
"""
    )
    assert config.names() == ["base", "more", "child"]
    base, more, child, extra = config.sections
    assert more.entries[0].key == "b"
    assert base.is_template
    assert not child.is_template
    assert child.templates == ("base", "more")
    assert extra.additive
    assert [(e.key, e.value, e.arrow) for e in base.entries] == [
        ("a", "1", False),
        ("b", "two", True),
    ]
    assert config.value("child", "b") == "3"  # later template wins
    assert config.value("child", "c") == "semi;colon"
    assert [e.key for e in config.resolved("child")] == ["a", "b", "b", "c", "d", "e"]


def test_includes_and_tryincludes(tmp_path: Path) -> None:
    (tmp_path / "main.conf").write_text(
        '[a]\nx = 1\n#include "sub.conf"\n[b]\ny = 2\n#tryinclude missing.conf\n'
    )
    (tmp_path / "sub.conf").write_text("[s](!)\nz = 3\n[t](s)\n")
    config = parse_config(tmp_path / "main.conf")
    assert config.names() == ["a", "s", "t", "b"]
    assert config.value("t", "z") == "3"
    first, second = config.includes
    assert first.exists
    assert not first.tried
    assert second.tried
    assert not second.exists
    (tmp_path / "bad.conf").write_text('[a]\n#include "sub.conf"\ny = 2\n')
    with pytest.raises(ConfigError, match="after an #include"):
        parse_config(tmp_path / "bad.conf")
    (tmp_path / "loop.conf").write_text('[a]\n#include "loop.conf"\n')
    with pytest.raises(ConfigError, match="nested too deeply"):
        parse_config(tmp_path / "loop.conf")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x = 1\n", "before the first"),
        ("[a\nx = 1\n", "malformed section header"),
        ("[a]\njust words\n", "expected 'key = value'"),
        ("[a](nope)\n", "unknown template"),
        ("[a](!,b)\n[b](!,a)\n", "template loop"),
        ("[a]\n= 1\n", "empty key"),
        ("[a]\n;-- open\n", "unterminated"),
    ],
)
def test_malformed_config_names_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config = parse_config_text(text, name="t.conf")
        for name in config.names():
            config.resolved(name)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[c]\nsame => n,NoOp()\n", "before any 'exten"),
        ("[c]\nexten => s,x,NoOp()\n", "bad priority"),
        ("[c]\nexten => s,0,NoOp()\n", "start at 1"),
        ("[c]\nexten => s\n", "exten needs"),
        ("[c]\nexten => s,1,NoOp(\n", "unbalanced"),
        ("[c]\nfoo => bar\n", "unknown dialplan keyword"),
    ],
)
def test_malformed_dialplan_is_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        dialplan_from_config(parse_config_text(text, name="t.conf"))


def test_priorities_labels_hints_includes_and_arguments() -> None:
    plan = dialplan_from_config(
        parse_config_text(
            """
[globals]
HOST = app
[c]
include => d
exten => 100,hint,PJSIP/agent100
exten => 100,1(start),Answer
 same => n,Set(X=${IF($[1=1]?a,b:c)})
 same => n+2(end),GotoIf($["${X}" = "a,b"]?start:c,200,1)
 same => n,Gosub(sub,s,1(arg1,arg2))
exten => _X.,1,AGI(agi://${HOST}:4573/inbound?q=1,x)
 same => n,AGI(hagi://h/tls)
 same => n,EAGI(agi://h:4573/speech)
 same => n,AGI(local.sh,a)
[d]
exten => 200,1,Dial(PJSIP/a&PJSIP/b,20)
 same => n,Queue(sales)
"""
        )
    )
    steps = plan.contexts["c"]
    assert [(s.extension, s.priority, s.label, s.app) for s in steps[:5]] == [
        ("100", "hint", None, "PJSIP/agent100"),
        ("100", 1, "start", "Answer"),
        ("100", 2, None, "Set"),
        ("100", 4, "end", "GotoIf"),
        ("100", 5, None, "Gosub"),
    ]
    assert steps[2].arguments == ["X=${IF($[1=1]?a,b:c)}"]
    assert plan.fastagi_scripts() == {"inbound", "tls", "speech"}
    assert plan.process_agi_scripts() == {"local.sh"}
    assert plan.globals == {"HOST": "app"}
    assert plan.includes["c"] == ["d"]
    targets = [(t.context, t.extension, t.priority) for t in plan.goto_targets()]
    assert targets == [("c", "100", "start"), ("c", "200", "1"), ("sub", "s", "1")]
    assert plan.has_priority("c", "200", "1")  # through include => d
    assert not plan.has_priority("c", "100", "nowhere")
    assert [t for t, _ in plan.dial_targets()] == ["PJSIP/a", "PJSIP/b"]
    assert plan.queues() == {"sales"}
    assert "hint" not in str(plan.applications())
    assert split_args("a,(b,c),[d,e],{f,g},h") == ["a", "(b,c)", "[d,e]", "{f,g}", "h"]


def test_extensions_conf_runs_the_interpreter_on_every_context_start(dialplan: Dialplan) -> None:
    """Each context's first step exists at priority 1 (no gaps a Goto could fall into)."""
    for context, steps in dialplan.contexts.items():
        by_extension: dict[str, list[int]] = {}
        for step in steps:
            if isinstance(step.priority, int):
                by_extension.setdefault(step.extension, []).append(step.priority)
        for extension, priorities in by_extension.items():
            assert priorities == list(range(1, len(priorities) + 1)), (context, extension)
    assert sys.version_info >= (3, 11)


def test_the_simulator_reports_the_priority_the_dialplan_runs_fastagi_at(
    dialplan: Dialplan,
) -> None:
    from centralino.simulator.callcenter import INBOUND_AGI_PRIORITY

    step = next(s for s in dialplan.calls_of("AGI") if s.context == "centralino-inbound")
    assert step.priority == INBOUND_AGI_PRIORITY  # agi_priority in every simulated session
