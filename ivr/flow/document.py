"""A flow's document (one TOML table, as `tomllib` reads it) → `Flow`.

    numbers = ["0212345678"]        # dialled numbers that pick this flow (agi_dnid/extension)
    language = "it"                 # set on the channel at the start
    languages = ["it", "en"]        # every language its callers may hear (prompts checked)
    start = "welcome"
    closed = "closed"               # the step run instead of `start` outside the hours
    [hours]
    timezone = "Europe/Rome"
    mon = ["08:30-13:00", "14:00-18:00"]   # ... tue..sun; a day not listed is closed
    holidays = ["01-01", "12-25", "2026-04-06"]
    [steps.welcome]
    type = "play"                   # play say menu ask branch action language queue
    prompt = "centralino/welcome"   # transfer voicemail flow survey hangup
    next = "menu"

Everything is checked here that the document alone can tell: types, required and unknown
keys, step references, reachability, and loops no caller input can leave. What needs the rest
of the configuration (queues, intents, hooks, prompt files) is `ivr.flow.check`. Every problem
names the flow and the step.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ivr.flow.errors import FlowError
from ivr.flow.hours import DAYS, BusinessHours, parse_hours
from ivr.flow.models import (
    CALL_FIELDS,
    KNOWLEDGE_FIELDS,
    OPERATORS,
    STEP_TYPES,
    Action,
    Ask,
    Branch,
    Case,
    Condition,
    Flow,
    GotoFlow,
    Hangup,
    Menu,
    MenuOption,
    Play,
    Queue,
    Say,
    SetLanguage,
    Step,
    Survey,
    Transfer,
    Value,
    Voicemail,
    step_targets,
)

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_PROMPT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_/.-]{0,127}$")
_KEY = re.compile(r"^[0-9*#]$")
_LANGUAGE = re.compile(r"^[a-z]{2}(_[A-Z]{2})?$")
_CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(==|!=|>=|<=|>|<)\s*(.+?)\s*$")
_FLOW_KEYS = frozenset(
    {"numbers", "language", "languages", "start", "closed", "hours", "steps", "description"}
)
# A flow's steps are bounded: a document is written by a person, and each call walks it.
MAX_STEPS = 200
# Steps that take no input from the caller: a loop made only of these never ends. (An action
# may ask the caller something, so it is not one of them.)
_PASSIVE = (Play, Say, Branch, SetLanguage)

T = TypeVar("T")


class _Reader:
    """Reads one table, collecting problems instead of stopping at the first."""

    def __init__(self, where: str, table: Mapping[str, Any], problems: list[str]) -> None:
        self.where = where
        self.table = table
        self.problems = problems
        self.used: set[str] = {"type"}

    def problem(self, message: str) -> None:
        self.problems.append(f"{self.where}: {message}")

    def get(self, key: str, kind: type[T] | tuple[type, ...], default: T | None = None) -> T | None:
        self.used.add(key)
        if key not in self.table:
            return default
        value = self.table[key]
        if isinstance(value, bool) and kind in (int, float):
            self.problem(f"{key} must be a {getattr(kind, '__name__', kind)}, not a boolean")
            return default
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            self.problem(f"{key} must be a {names}, got {type(value).__name__} {value!r}")
            return default
        return value  # type: ignore[return-value]

    def need(self, key: str, kind: type[T]) -> T | None:
        if key not in self.table:
            self.used.add(key)
            self.problem(f"{key} is required")
            return None
        return self.get(key, kind)

    def step_ref(self, key: str, *, required: bool = True) -> str | None:
        value = self.need(key, str) if required else self.get(key, str)
        return value

    def prompt(self, key: str, *, required: bool = True) -> str | None:
        value = self.need(key, str) if required else self.get(key, str)
        if value is not None and not _PROMPT.match(value):
            self.problem(f"{key} {value!r} is not a sound name (e.g. centralino/welcome)")
        return value

    def timeout(self, key: str = "timeout_ms") -> int | None:
        value = self.get(key, int)
        if value is not None and not 100 <= value <= 60_000:
            self.problem(f"{key} must be between 100 and 60000 ms, got {value}")
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            self.problem(f"unknown key(s) {', '.join(unknown)}")


def parse_flow(name: str, document: Mapping[str, Any]) -> Flow:
    """Build and check one flow; raises `FlowError` listing every problem found."""
    problems: list[str] = []
    where = f"flow {name!r}"
    if not _NAME.match(name):
        problems.append(f"{where}: a flow name is a letter then letters, digits, _ or -")
    top = _Reader(where, document, problems)
    top.used = set()
    numbers = top.get("numbers", list, [])
    languages = top.get("languages", list, [])
    language = top.get("language", str)
    start = top.need("start", str)
    closed = top.get("closed", str)
    description = top.get("description", str, "") or ""
    hours_doc = top.get("hours", dict)
    steps_doc = top.need("steps", dict) or {}
    top.finish()
    for n in numbers or []:
        if not isinstance(n, str) or not n:
            problems.append(f"{where}: numbers must be non-empty strings, got {n!r}")
    lang_list: list[str] = []
    for lang in languages or []:
        if isinstance(lang, str) and _LANGUAGE.match(lang):
            lang_list.append(lang)
        else:
            problems.append(f"{where}: languages: {lang!r} is not a language code (it, en)")
    if language is not None:
        if not _LANGUAGE.match(language):
            problems.append(f"{where}: language {language!r} is not a language code (it, en)")
        elif language not in lang_list:
            lang_list.insert(0, language)
    hours, timezone = _hours(where, hours_doc, problems)
    if hours is not None and closed is None:
        problems.append(f"{where}: hours are set but no `closed` step says what happens outside")
    if closed is not None and hours_doc is None:
        problems.append(f"{where}: `closed` is set but there are no hours")
    if len(steps_doc) > MAX_STEPS:
        problems.append(f"{where}: {len(steps_doc)} steps, at most {MAX_STEPS}")
    steps: dict[str, Step] = {}
    for step_name, table in steps_doc.items():
        step_where = f"{where} step {step_name!r}"
        if not _NAME.match(step_name):
            problems.append(f"{step_where}: a step name is a letter then letters, digits, _ or -")
            continue
        if not isinstance(table, dict):
            problems.append(f"{step_where}: expected a table, got {type(table).__name__}")
            continue
        step = _step(step_where, step_name, table, problems)
        if step is not None:
            steps[step_name] = step
    if not steps_doc:
        problems.append(f"{where}: no steps")
    for step in steps.values():
        # A caller switched to another language hears that language's prompts too.
        if isinstance(step, SetLanguage) and step.language not in lang_list:
            lang_list.append(step.language)
    flow = Flow(
        name=name,
        start=start or "",
        steps=steps,
        languages=tuple(lang_list),
        language=language,
        numbers=tuple(n for n in numbers or [] if isinstance(n, str)),
        hours=hours,
        closed=closed,
        timezone=timezone,
        description=description,
    )
    if not problems:
        problems += graph_problems(flow)
    if problems:
        raise FlowError(problems)
    return flow


def _hours(
    where: str, doc: Mapping[str, Any] | None, problems: list[str]
) -> tuple[BusinessHours | None, str]:
    if doc is None:
        return None, "Europe/Rome"
    timezone = doc.get("timezone", "Europe/Rome")
    holidays = doc.get("holidays", [])
    unknown = set(doc) - {"timezone", "holidays", *DAYS}
    if unknown:
        problems.append(f"{where} hours: unknown key(s) {', '.join(sorted(unknown))}")
    weekly = {day: doc[day] for day in DAYS if day in doc}
    if not isinstance(timezone, str) or not isinstance(holidays, list):
        problems.append(f"{where} hours: timezone is a string and holidays a list of dates")
        return None, "Europe/Rome"
    for day, spans in weekly.items():
        if not isinstance(spans, list) or not all(isinstance(s, str) for s in spans):
            problems.append(f"{where} hours: {day} must be a list of 'HH:MM-HH:MM' strings")
            return None, timezone
    if not all(isinstance(h, str) for h in holidays):
        problems.append(f"{where} hours: holidays must be strings (YYYY-MM-DD or MM-DD)")
        return None, timezone
    hours, hour_problems = parse_hours(timezone, weekly, holidays)
    problems += [f"{where} hours: {p}" for p in hour_problems]
    return hours, timezone


def _step(where: str, name: str, table: Mapping[str, Any], problems: list[str]) -> Step | None:
    kind = table.get("type")
    if not isinstance(kind, str) or kind not in STEP_TYPES:
        known = ", ".join(STEP_TYPES)
        problems.append(f"{where}: unknown step type {kind!r} (known: {known})")
        return None
    before = len(problems)
    r = _Reader(where, table, problems)
    step = _BUILDERS[kind](r, name)
    r.finish()
    return step if len(problems) == before else None


def _play(r: _Reader, name: str) -> Step | None:
    prompts: list[str] = []
    if "prompt" in r.table:
        single = r.prompt("prompt")
        prompts = [single] if single else []
    elif "prompts" in r.table:
        many = r.get("prompts", list, []) or []
        for p in many:
            if not isinstance(p, str) or not _PROMPT.match(p):
                r.problem(f"prompts: {p!r} is not a sound name")
            else:
                prompts.append(p)
    else:
        r.problem("prompt (or prompts) is required")
    r.used |= {"prompt", "prompts"}
    wait = r.get("wait_knowledge_s", float)
    if wait is not None and not 0 <= wait <= 10:
        r.problem(f"wait_knowledge_s must be between 0 and 10, got {wait}")
    type_ahead = bool(r.get("type_ahead", bool, False))
    nxt = r.step_ref("next")
    return Play(name, tuple(prompts), nxt or "", wait, type_ahead) if nxt and prompts else None


def _say(r: _Reader, name: str) -> Step | None:
    kind = r.need("kind", str)
    if kind is not None and kind not in ("number", "digits", "amount", "date"):
        r.problem(f"kind must be number, digits, amount or date, got {kind!r}")
    value = r.need("value", str)
    if value is not None and not _readable(value):
        r.problem(f"value {value!r} is neither a caller field nor vars.<name>")
    nxt = r.step_ref("next")
    if kind in ("number", "digits", "amount", "date") and value and nxt:
        return Say(name, kind, value, nxt)  # type: ignore[arg-type]
    return None


def _menu(r: _Reader, name: str) -> Step | None:
    prompt = r.prompt("prompt")
    options: dict[str, MenuOption] = {}
    for key, target in (r.get("options", dict, {}) or {}).items():
        if not _KEY.match(key):
            r.problem(f"options: {key!r} is not one DTMF key (0-9, *, #)")
        elif isinstance(target, str):
            options[key] = MenuOption(next=target)
        elif isinstance(target, dict) and set(target) <= {"next", "intent"} and target:
            nxt, intent = target.get("next"), target.get("intent")
            if not all(v is None or isinstance(v, str) for v in (nxt, intent)):
                r.problem(f"options.{key}: next and intent are strings")
            else:
                options[key] = MenuOption(next=nxt, intent=intent)
        else:
            r.problem(f"options.{key}: expected a step name or {{ intent = ..., next = ... }}")
    intent_keys = r.get("intent_keys", bool, False)
    nxt = r.step_ref("next", required=False)
    for key, option in options.items():
        if option.next is None and nxt is None:
            r.problem(f"options.{key} has no next and the menu has no next")
    retries = r.get("retries", int, 0) or 0
    if not 0 <= retries <= 5:
        r.problem(f"retries must be between 0 and 5, got {retries}")
    no_input = r.step_ref("no_input", required=False)
    if nxt is None and no_input is None:
        r.problem("a menu needs next or no_input: a caller who presses nothing goes somewhere")
    if not prompt:
        return None
    return Menu(
        name,
        prompt,
        options,
        nxt,
        intent_keys=bool(intent_keys),
        timeout_ms=r.timeout(),
        retries=retries,
        no_input=no_input,
        speech=bool(r.get("speech", bool, False)),
    )


def _ask(r: _Reader, name: str) -> Step | None:
    prompt = r.prompt("prompt")
    var = r.need("var", str)
    if var is not None and not _NAME.match(var):
        r.problem(f"var {var!r} is not a name")
    max_digits = r.get("max_digits", int, 1) or 1
    if not 1 <= max_digits <= 32:
        r.problem(f"max_digits must be between 1 and 32, got {max_digits}")
    nxt = r.step_ref("next")
    if not (prompt and var and nxt):
        return None
    return Ask(
        name,
        prompt,
        var,
        nxt,
        max_digits=max_digits,
        timeout_ms=r.timeout(),
        no_input=r.step_ref("no_input", required=False),
        speech=bool(r.get("speech", bool, False)),
    )


def _branch(r: _Reader, name: str) -> Step | None:
    cases: list[Case] = []
    for i, doc in enumerate(r.need("cases", list) or []):
        if not isinstance(doc, dict) or "next" not in doc or not set(doc) <= {"if", "hook", "next"}:
            r.problem(f"cases[{i}]: expected {{ if = [...], hook = ..., next = ... }}")
            continue
        raw = doc.get("if", [])
        raw = [raw] if isinstance(raw, str) else raw
        conditions: list[Condition] = []
        for text in raw:
            condition = _condition(text) if isinstance(text, str) else None
            if condition is None:
                r.problem(
                    f"cases[{i}]: {text!r} is not 'field op value' (op: {' '.join(OPERATORS)})"
                )
            elif not _readable(condition.field):
                r.problem(f"cases[{i}]: {condition.field!r} is not a field a branch can read")
            else:
                conditions.append(condition)
        hook = doc.get("hook")
        if not raw and hook is None:
            r.problem(f"cases[{i}]: needs if or hook")
        cases.append(Case(next=str(doc["next"]), conditions=tuple(conditions), hook=hook))
    otherwise = r.step_ref("otherwise")
    return Branch(name, tuple(cases), otherwise) if otherwise else None


def _action(r: _Reader, name: str) -> Step | None:
    action = r.need("action", str)
    results = r.need("results", dict) or {}
    if not all(isinstance(v, str) for v in results.values()):
        r.problem("results map each result to a step name")
    return Action(name, action, dict(results)) if action and results else None


def _language(r: _Reader, name: str) -> Step | None:
    language = r.need("language", str)
    if language is not None and not _LANGUAGE.match(language):
        r.problem(f"language {language!r} is not a language code (it, en)")
    nxt = r.step_ref("next")
    return SetLanguage(name, language, nxt) if language and nxt else None


def _queue(r: _Reader, name: str) -> Step | None:
    priority = r.get("priority", int)
    if priority is not None and not 0 <= priority <= 100:
        r.problem(f"priority must be between 0 and 100, got {priority}")
    min_level = r.get("min_level", int)
    if min_level is not None and not 1 <= min_level <= 5:
        r.problem(f"min_level must be between 1 and 5, got {min_level}")
    skill = r.get("skill", str)
    if min_level is not None and skill is None:
        r.problem("min_level needs a skill")
    return Queue(
        name,
        intent=r.get("intent", str),
        queue=r.get("queue", str),
        skill=skill,
        min_level=min_level,
        priority=priority,
        survey=r.step_ref("survey", required=False),
    )


def _transfer(r: _Reader, name: str) -> Step | None:
    endpoint = r.need("endpoint", str)
    if endpoint is not None and not re.match(r"^[A-Za-z]+/[^,|\s]+$", endpoint):
        r.problem(f"endpoint {endpoint!r} is not Tech/resource (e.g. PJSIP/reception)")
    timeout_s = r.get("timeout_s", int, 30) or 30
    if not 1 <= timeout_s <= 300:
        r.problem(f"timeout_s must be between 1 and 300, got {timeout_s}")
    nxt = r.step_ref("next", required=False)
    return Transfer(name, endpoint, timeout_s, nxt) if endpoint else None


def _voicemail(r: _Reader, name: str) -> Step | None:
    mailbox = r.need("mailbox", str)
    if mailbox is not None and not re.match(r"^[A-Za-z0-9_-]+@[A-Za-z0-9_-]+$", mailbox):
        r.problem(f"mailbox {mailbox!r} is not box@context")
    prompt = r.prompt("prompt", required=False)
    return Voicemail(name, mailbox, prompt) if mailbox else None


def _goto_flow(r: _Reader, name: str) -> Step | None:
    target = r.need("flow", str)
    return GotoFlow(name, target) if target else None


def _survey(r: _Reader, name: str) -> Step | None:
    prompt = r.prompt("prompt")
    retries = r.get("retries", int, 1)
    if retries is None or not 0 <= retries <= 3:
        r.problem(f"retries must be between 0 and 3, got {retries}")
        retries = 1
    return (
        Survey(
            name,
            prompt,
            thanks=r.prompt("thanks", required=False),
            invalid=r.prompt("invalid", required=False),
            retries=retries,
            timeout_ms=r.timeout() or 5000,
        )
        if prompt
        else None
    )


def _hangup(r: _Reader, name: str) -> Step | None:
    outcome = r.get("outcome", str, "hangup_in_ivr")
    if outcome not in ("self_served", "hangup_in_ivr"):
        r.problem(f"outcome must be self_served or hangup_in_ivr, got {outcome!r}")
        return None
    return Hangup(name, r.prompt("prompt", required=False), outcome)  # type: ignore[arg-type]


_BUILDERS: Mapping[str, Callable[[_Reader, str], Step | None]] = {
    "play": _play,
    "say": _say,
    "menu": _menu,
    "ask": _ask,
    "branch": _branch,
    "action": _action,
    "language": _language,
    "queue": _queue,
    "transfer": _transfer,
    "voicemail": _voicemail,
    "flow": _goto_flow,
    "survey": _survey,
    "hangup": _hangup,
}


def _readable(name: str) -> bool:
    if name.startswith("vars."):
        return bool(_NAME.match(name[5:]))
    return name in KNOWLEDGE_FIELDS or name in CALL_FIELDS


def _condition(text: str) -> Condition | None:
    match = _CONDITION.match(text)
    if match is None:
        return None
    return Condition(match[1], match[2], _literal(match[3]))


def _literal(text: str) -> Value:
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip("'\"")


def graph_problems(flow: Flow) -> list[str]:
    """Dangling references, unreachable steps, and loops no caller input can leave."""
    where = f"flow {flow.name!r}"
    problems: list[str] = []
    if flow.start not in flow.steps:
        problems.append(f"{where}: start {flow.start!r} is not a step")
    if flow.closed is not None and flow.closed not in flow.steps:
        problems.append(f"{where}: closed {flow.closed!r} is not a step")
    for name, step in flow.steps.items():
        for target in step_targets(step):
            if target not in flow.steps:
                problems.append(f"{where} step {name!r}: goes to {target!r}, which is not a step")
    if problems:
        return problems
    reached: set[str] = set()
    todo = [s for s in (flow.start, flow.closed) if s]
    while todo:
        current = todo.pop()
        if current not in reached:
            reached.add(current)
            todo += step_targets(flow.steps[current])
    for name in flow.steps:
        if name not in reached:
            problems.append(f"{where} step {name!r}: unreachable from start")
    problems += [
        f"{where} step {name!r}: loops back to itself through {' → '.join(loop)} without "
        "asking the caller anything (the call would never end)"
        for name, loop in _passive_loops(flow)
    ]
    return problems


def _passive_loops(flow: Flow) -> list[tuple[str, list[str]]]:
    """A loop through steps that wait for no input (depth-first, one report per loop)."""
    passive = {n: s for n, s in flow.steps.items() if isinstance(s, _PASSIVE)}
    found: list[tuple[str, list[str]]] = []
    state: dict[str, int] = {}  # 1 = on the path, 2 = done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in step_targets(passive[name]):
            if target not in passive:
                continue
            if state.get(target) == 1:
                loop = [*path[path.index(target) :], target]
                found.append((target, loop))
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in passive:
        if name not in state:
            visit(name, [name])
    return found
