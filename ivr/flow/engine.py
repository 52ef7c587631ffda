"""Runs a flow for one call: each step is a few commands on the `Channel` and calls on the
call's `InboundServices`, and names the step after it.

The engine keeps what the call has learnt in a `CallState` its caller shares (`run_inbound`
reads the outcome and the queued call from it when the flow stops, however it stops). A step
that asks by speech uses the `SpeechInput` port when one is given and falls back to DTMF when
there is none, or when it fails: the call goes on by keypad.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

from context.models import Outcome
from ivr.errors import ChannelError
from ivr.flow.hooks import ActionContext, CallView, Hooks
from ivr.flow.hours import is_open
from ivr.flow.models import (
    CALL_FIELDS,
    Action,
    Ask,
    Branch,
    Condition,
    Flow,
    GotoFlow,
    Hangup,
    Menu,
    Play,
    Queue,
    Say,
    SetLanguage,
    Step,
    Survey,
    Transfer,
    Value,
    Voicemail,
)
from ivr.flow.queueing import (
    DIAL_OPTIONS,
    DIAL_OPTIONS_SURVEY,
    SOUND_TRANSFERRED,
    HoldSettings,
    hold_until_connected,
    refused,
)
from ivr.flow.say import say_amount, say_date
from ivr.intent import IntentModel, Signals
from ivr.ports import (
    CallerKnowledge,
    Channel,
    InboundServices,
    QueuedCall,
    QueueRefusal,
    QueueRequest,
)

log = logging.getLogger(__name__)

# However a flow loops (a caller pressing a wrong key forever, flows handing over to each
# other), one call runs at most this many steps; then it is told goodbye.
MAX_STEPS_PER_CALL = 300
# A menu key chosen in a flow's own options is strong evidence, as the intent model's own keys.
MENU_KEY_CONFIDENCE = 0.9
SOUND_GOODBYE = "vm-goodbye"
SURVEY_SCORES = "12345"
DTMF_KEYS = "0123456789*#"


@dataclass(frozen=True, slots=True)
class FlowSettings:
    menu_timeout_ms: int = 4000
    announce_every_s: float = 30.0
    ring_timeout_s: int = 20
    # How long one WAIT FOR DIGIT lasts while holding: bounds how late we notice an offer.
    hold_poll_ms: int = 500
    max_ring_attempts: int = 5

    def hold(self, *, survey: bool = False) -> HoldSettings:
        return HoldSettings(
            announce_every_s=self.announce_every_s,
            ring_timeout_s=self.ring_timeout_s,
            hold_poll_ms=self.hold_poll_ms,
            max_ring_attempts=self.max_ring_attempts,
            dial_options=DIAL_OPTIONS_SURVEY if survey else DIAL_OPTIONS,
        )


class SpeechInput(Protocol):
    """Speech for `ask`/`menu` steps with `speech = true` (the recogniser behind it plays the
    prompt, listens and returns the final text). None: nothing usable was heard."""

    async def listen(self, prompt: str, *, timeout_ms: int, language: str | None) -> str | None: ...


@dataclass(slots=True)
class CallState:
    """What the flow has learnt and done so far (shared with `run_inbound`)."""

    caller_id: str
    language: str | None
    routing_language: bool  # the ACD matches agents' languages (some agent declares one)
    queue: str | None = None  # the AGI query's queue, over any step's
    outcome: Outcome = Outcome.HANGUP_IN_IVR
    queued: QueuedCall | None = None
    agent: str | None = None
    knowledge: CallerKnowledge | None = None
    intent: str | None = None
    confidence: float = 0.0
    reasons: tuple[str, ...] = ()
    vars: dict[str, str] = field(default_factory=dict)
    typed_ahead: str | None = None  # a key pressed during a `type_ahead` prompt, for the menu
    steps_run: int = 0
    trail: list[str] = field(default_factory=list)  # "flow/step" as run, for tests and logs


class FlowEngine:
    def __init__(
        self,
        *,
        channel: Channel,
        services: InboundServices,
        model: IntentModel,
        settings: FlowSettings,
        monotonic: Callable[[], float],
        now: Callable[[], datetime],
        hooks: Hooks,
        flows: Mapping[str, Flow],
        state: CallState,
        speech: SpeechInput | None = None,
    ) -> None:
        self.channel = channel
        self.services = services
        self.model = model
        self.settings = settings
        self.monotonic = monotonic
        self.now = now
        self.hooks = hooks
        self.flows = flows
        self.state = state
        self.speech = speech

    async def run(self, flow: Flow) -> None:
        state = self.state
        state.knowledge = await self.services.knowledge(wait_s=0.0)
        self._prior()
        step_name: str | None = await self._enter(flow)
        while step_name is not None:
            state.steps_run += 1
            if state.steps_run > MAX_STEPS_PER_CALL:
                log.error("flow %s ran %d steps; ending the call", flow.name, MAX_STEPS_PER_CALL)
                await self.services.note("flow", "too many steps: goodbye")
                await self.channel.stream_file(SOUND_GOODBYE)
                await self.channel.hangup()
                return
            step = flow.steps[step_name]
            state.trail.append(f"{flow.name}/{step_name}")
            if isinstance(step, GotoFlow):
                flow = self.flows[step.flow]
                await self.services.note("flow", f"to {flow.name}")
                step_name = await self._enter(flow)
                continue
            step_name = await self._step(flow, step)

    async def _enter(self, flow: Flow) -> str:
        if flow.language is not None:
            await self._set_language(flow.language)
        if flow.hours is not None and flow.closed is not None and not self._open(flow):
            await self.services.note("hours", f"{flow.name} closed")
            return flow.closed
        return flow.start

    def _open(self, flow: Flow) -> bool:
        return flow.hours is None or is_open(flow.hours, self.now())

    async def _set_language(self, language: str) -> None:
        self.state.language = language
        await self.channel.set_variable("CHANNEL(language)", language)

    def _signals(self) -> Signals:
        k = self.state.knowledge
        assert k is not None
        return Signals(
            overdue_invoices=k.overdue_invoices,
            shipments_in_transit=k.shipments_in_transit,
            open_tickets=k.open_tickets,
            open_ticket_topic=k.open_ticket_topic,
            known_customer=k.known_customer,
        )

    def _prior(self) -> None:
        prediction = self.model.predict(signals=self._signals())
        self.state.intent, self.state.confidence = prediction.intent, prediction.confidence
        self.state.reasons = prediction.reasons

    def view(self, flow: Flow) -> CallView:
        state = self.state
        assert state.knowledge is not None
        return CallView(
            knowledge=state.knowledge,
            intent=state.intent,
            confidence=state.confidence,
            language=state.language,
            caller_id=state.caller_id,
            open=self._open(flow),
            vars=dict(state.vars),
        )

    # --- the steps ----------------------------------------------------------------------------

    async def _step(self, flow: Flow, step: Step) -> str | None:
        match step:
            case Play():
                escape = DTMF_KEYS if step.type_ahead else ""
                for prompt in step.prompts:
                    key = await self.channel.stream_file(prompt, escape)
                    if key:
                        self.state.typed_ahead = key
                        break
                if step.wait_knowledge_s is not None:
                    self.state.knowledge = await self.services.knowledge(
                        wait_s=step.wait_knowledge_s
                    )
                    self._prior()
                return step.next
            case Say():
                await self._say(flow, step)
                return step.next
            case Menu():
                return await self._menu(step)
            case Ask():
                return await self._ask(step)
            case Branch():
                view = self.view(flow)
                for case in step.cases:
                    hook = self.hooks.conditions[case.hook] if case.hook else None
                    if all(_holds(c, view) for c in case.conditions) and (
                        hook is None or hook(view)
                    ):
                        return case.next
                return step.otherwise
            case Action():
                spec = self.hooks.actions[step.action]
                ctx = ActionContext(
                    channel=self.channel,
                    services=self.services,
                    view=self.view(flow),
                    menu_timeout_ms=self.settings.menu_timeout_ms,
                )
                result = await spec.run(ctx)
                if result not in step.results:
                    raise RuntimeError(
                        f"action {step.action!r} returned {result!r}, which flow {flow.name!r} "
                        f"step {step.name!r} does not map (it declares {spec.results})"
                    )
                return step.results[result]
            case SetLanguage():
                await self._set_language(step.language)
                await self.services.note("language", step.language)
                return step.next
            case Queue():
                return await self._queue(step)
            case Transfer():
                return await self._transfer(step)
            case Voicemail():
                if step.prompt:
                    await self.channel.stream_file(step.prompt)
                await self.services.note("voicemail", step.mailbox)
                self.state.outcome = Outcome.SELF_SERVED
                await self.channel.exec("VoiceMail", step.mailbox, "u")
                await self.channel.hangup()
                return None
            case Survey():
                await self._survey(step)
                return None
            case Hangup():
                if step.prompt:
                    await self.channel.stream_file(step.prompt)
                await self.channel.hangup()
                self.state.outcome = Outcome(step.outcome)
                return None
            case GotoFlow():
                raise AssertionError("handled by run()")
        raise AssertionError(f"unknown step {step!r}")

    async def _say(self, flow: Flow, step: Say) -> None:
        raw = _read(step.value, self.view(flow))
        try:
            match step.kind:
                case "number":
                    await self.channel.say_number(int(str(raw)))
                case "digits":
                    digits = str(raw)
                    if not digits.isdigit():
                        raise ValueError(digits)
                    await self.channel.say_digits(digits)
                case "amount":
                    await say_amount(self.channel, int(str(raw)))
                case "date":
                    await say_date(
                        self.channel,
                        _date(str(raw)),
                        timezone=flow.timezone,
                        language=self.state.language,
                    )
        except ValueError:
            # What the caller typed (or a field without a value) cannot be said: skip it.
            log.warning("step %s: cannot say %r as %s", step.name, raw, step.kind)
            await self.services.note("say", f"nothing to say for {step.value}")

    async def _listen(self, prompt: str, timeout_ms: int) -> str | None:
        """Speech if a recogniser is wired; None means: ask by DTMF instead."""
        if self.speech is None:
            return None
        try:
            heard = await self.speech.listen(
                prompt, timeout_ms=timeout_ms, language=self.state.language
            )
        except ChannelError:
            raise
        except Exception:
            log.exception("the recogniser failed; asking by keypad")
            await self.services.note("speech", "recogniser failed: keypad")
            return None
        return heard.strip() if heard and heard.strip() else None

    async def _menu(self, step: Menu) -> str | None:
        timeout = step.timeout_ms or self.settings.menu_timeout_ms
        attempts = 0
        while True:
            typed = self.state.typed_ahead is not None
            heard = await self._listen(step.prompt, timeout) if step.speech and not typed else None
            if heard is not None:
                prediction = self.model.predict(signals=self._signals(), transcript=heard)
                await self.services.note("menu", f"said {heard[:80]!r}")
                await self._predicted(prediction.intent, prediction.confidence, prediction.reasons)
                return step.next or step.no_input
            if self.state.typed_ahead is not None:
                key: str | None = self.state.typed_ahead  # pressed during the prompt before
                self.state.typed_ahead = None
            else:
                got = await self.channel.get_data(step.prompt, timeout, 1)
                key = got.digits[:1] or None
            option = step.options.get(key) if key is not None else None
            if option is not None:
                await self.services.note("menu", f"pressed {key}")
                if option.intent is not None:
                    await self._predicted(
                        option.intent,
                        MENU_KEY_CONFIDENCE,
                        (*self.state.reasons, f"pressed {key} ({option.intent})"),
                    )
                return option.next or step.next
            if attempts < step.retries and (key is None or not step.intent_keys):
                attempts += 1
                continue
            await self.services.note("menu", f"pressed {key}" if key else "no key (timeout)")
            if key is None and step.no_input is not None:
                return step.no_input
            if step.intent_keys:
                prediction = self.model.predict(signals=self._signals(), menu_key=key)
                await self._predicted(prediction.intent, prediction.confidence, prediction.reasons)
            return step.next or step.no_input

    async def _predicted(self, intent: str, confidence: float, reasons: tuple[str, ...]) -> None:
        state = self.state
        state.intent, state.confidence, state.reasons = intent, confidence, reasons
        await self.services.predicted(intent, confidence, reasons)

    async def _ask(self, step: Ask) -> str | None:
        self.state.typed_ahead = None  # it answered a menu that did not come
        timeout = step.timeout_ms or self.settings.menu_timeout_ms
        heard = await self._listen(step.prompt, timeout) if step.speech else None
        if heard is None:
            got = await self.channel.get_data(step.prompt, timeout, step.max_digits)
            heard = got.digits
        self.state.vars[step.var] = heard
        if not heard and step.no_input is not None:
            return step.no_input
        return step.next

    async def _queue(self, step: Queue) -> str | None:
        state, services = self.state, self.services
        knowledge = state.knowledge
        assert knowledge is not None
        if step.intent is not None:
            await self._predicted(step.intent, 1.0, (*state.reasons, f"flow step {step.name}"))
        intent = state.intent
        assert intent is not None  # the prior set it when the flow started
        priority = step.priority
        if priority is None:
            priority = 10 if knowledge.vip else (5 if knowledge.open_tickets else 0)
        placed = await services.enqueue(
            QueueRequest(
                intent=intent,
                priority=priority,
                preferred_agents=knowledge.preferred_agents,
                language=state.language if state.routing_language else None,
                # The transfer's or the AGI query's queue; else the step's; else the intent's.
                queue=state.queue or step.queue,
                skill=step.skill,
                min_level=step.min_level,
            )
        )
        return await self.hold(placed, survey=step.survey)

    async def hold(
        self,
        placed: QueuedCall | QueueRefusal,
        *,
        survey: str | None = None,
        transferred: bool = False,
    ) -> str | None:
        """Tell a refused caller why, or hold a queued one until the wait ends; then the
        survey step (if any) once a conversation took place."""
        state, services, channel = self.state, self.services, self.channel
        if isinstance(placed, QueueRefusal):
            await services.note("queue_refused", f"{placed.reason} → {placed.action}")
            state.outcome = await refused(channel, services, state.caller_id, placed)
            return None
        queued = placed
        state.queued = queued
        state.outcome = Outcome.ABANDONED
        if transferred:
            await channel.stream_file(SOUND_TRANSFERRED)
        state.outcome, state.agent = await hold_until_connected(
            channel,
            services=services,
            queued=queued,
            caller_id=state.caller_id,
            settings=self.settings.hold(survey=survey is not None),
            monotonic=self.monotonic,
        )
        state.queued = None  # it ended in the flow's sight: the ACD already knows how
        if survey is not None and state.outcome is Outcome.ANSWERED:
            return survey
        return None

    async def _transfer(self, step: Transfer) -> str | None:
        await self.services.note("transfer", step.endpoint)
        await self.channel.exec("Dial", f"{step.endpoint},{step.timeout_s},t")
        status = (await self.channel.get_variable("DIALSTATUS")) or "UNKNOWN"
        if status == "ANSWER":
            # The IVR routed the caller out of the contact center: served here.
            self.state.outcome = Outcome.SELF_SERVED
            return None
        await self.services.note("transfer", f"{step.endpoint}: {status.lower()}")
        if step.next is not None:
            return step.next
        await self.channel.hangup()
        return None

    async def _survey(self, step: Survey) -> None:
        for attempt in range(step.retries + 1):
            got = await self.channel.get_data(step.prompt, step.timeout_ms, 1)
            key = got.digits[:1]
            if key and key in SURVEY_SCORES:
                await self.services.rated(int(key))
                await self.services.note("survey", f"rated {key}")
                if step.thanks:
                    await self.channel.stream_file(step.thanks)
                await self.channel.hangup()
                return
            if attempt < step.retries and step.invalid:
                await self.channel.stream_file(step.invalid)
        await self.services.note("survey", "no rating")
        await self.channel.hangup()


def _date(text: str) -> date:
    """ISO (2026-12-08), or the same as the digits a caller can type (20261208)."""
    if len(text) == 8 and text.isdigit():
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    return date.fromisoformat(text)


def _read(name: str, view: CallView) -> Value | None:
    if name.startswith("vars."):
        return view.vars.get(name[5:])
    if name in CALL_FIELDS:
        value: object = getattr(view, name)
    else:
        value = getattr(view.knowledge, name)
    return value if isinstance(value, str | int | float | bool) else None


def _holds(condition: Condition, view: CallView) -> bool:
    actual = _read(condition.field, view)
    expected = condition.value
    op = condition.op
    if actual is None:
        return op == "!="
    if isinstance(expected, bool) or isinstance(actual, bool):
        same = bool(actual) == expected if isinstance(expected, bool) else actual == expected
        return same if op == "==" else (not same if op == "!=" else False)
    if isinstance(expected, int | float):
        try:
            number = float(actual)
        except ValueError:
            return op == "!="
        return _compare(number, op, float(expected))
    return _compare(str(actual), op, str(expected))


def _compare(a: float | str, op: str, b: float | str) -> bool:
    match op:
        case "==":
            return a == b
        case "!=":
            return a != b
        case ">=":
            return a >= b  # type: ignore[operator]
        case "<=":
            return a <= b  # type: ignore[operator]
        case ">":
            return a > b  # type: ignore[operator]
        case "<":
            return a < b  # type: ignore[operator]
    raise AssertionError(op)
