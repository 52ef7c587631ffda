"""What a flow must agree with besides itself: the queues, the intent labels, the hooks, the
other flows, and the sound files in every language its callers may hear.

Pure: the file system is reached through `exists(language, sound) -> bool`, which the
composition root builds over the sounds directories (`centralino.flows`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from ivr.flow.hooks import Hooks
from ivr.flow.models import (
    Action,
    Branch,
    Flow,
    GotoFlow,
    Hangup,
    Menu,
    Queue,
    Say,
    Survey,
    Voicemail,
)
from ivr.flow.models import (
    Ask as AskStep,
)
from ivr.flow.models import (
    Play as PlayStep,
)
from ivr.flow.queueing import QUEUE_PROMPTS, SOUND_TRANSFERRED
from ivr.flow.say import AMOUNT_PROMPTS

# What SAY NUMBER / SAY DIGITS need at least (main/say.c plays digits/<n>).
DIGIT_PROMPTS = tuple(f"digits/{n}" for n in range(10))
GOODBYE = "vm-goodbye"  # the engine's own, when a call runs too many steps


def reference_problems(
    flows: Mapping[str, Flow],
    *,
    queues: Collection[str],
    intents: Collection[str],
    hooks: Hooks,
) -> list[str]:
    """Queues, intents, hooks and flows a flow names that do not exist; numbers two flows
    both claim."""
    problems: list[str] = []
    owners: dict[str, str] = {}
    for flow in flows.values():
        where = f"flow {flow.name!r}"
        for number in flow.numbers:
            if number in owners:
                problems.append(f"{where}: number {number!r} already picks flow {owners[number]!r}")
            owners.setdefault(number, flow.name)
        for name, step in flow.steps.items():
            at = f"{where} step {name!r}"
            match step:
                case Queue():
                    if step.queue is not None and step.queue not in queues:
                        problems.append(f"{at}: no queue named {step.queue!r} (acd.queues)")
                    if step.intent is not None and step.intent not in intents:
                        problems.append(
                            f"{at}: unknown intent {step.intent!r} (known: {', '.join(intents)})"
                        )
                case Menu():
                    for key, option in step.options.items():
                        if option.intent is not None and option.intent not in intents:
                            problems.append(
                                f"{at}: key {key} names unknown intent {option.intent!r} "
                                f"(known: {', '.join(intents)})"
                            )
                case Branch():
                    for case in step.cases:
                        if case.hook is not None and case.hook not in hooks.conditions:
                            problems.append(
                                f"{at}: no condition hook named {case.hook!r} "
                                f"(registered: {', '.join(hooks.conditions) or 'none'})"
                            )
                        for condition in case.conditions:
                            if (
                                condition.field == "intent"
                                and condition.op in ("==", "!=")
                                and condition.value not in intents
                            ):
                                problems.append(
                                    f"{at}: compares intent with unknown {condition.value!r}"
                                )
                case Action():
                    spec = hooks.actions.get(step.action)
                    if spec is None:
                        problems.append(
                            f"{at}: no action named {step.action!r} "
                            f"(registered: {', '.join(hooks.actions) or 'none'})"
                        )
                        continue
                    unknown = sorted(set(step.results) - set(spec.results))
                    missing = sorted(set(spec.results) - set(step.results))
                    if unknown:
                        problems.append(f"{at}: {step.action} has no result(s) {unknown}")
                    if missing:
                        problems.append(f"{at}: results must say where {missing} lead")
                case GotoFlow():
                    if step.flow not in flows:
                        problems.append(f"{at}: no flow named {step.flow!r}")
                case _:
                    pass
    return problems


def prompts_by_step(flow: Flow, hooks: Hooks) -> dict[str, set[str]]:
    """Every sound a flow may play, with the steps that play it."""
    used: dict[str, set[str]] = {}

    def add(step: str, sounds: Iterable[str | None]) -> None:
        for sound in sounds:
            if sound:
                used.setdefault(sound, set()).add(step)

    for name, step in flow.steps.items():
        match step:
            case PlayStep():
                add(name, step.prompts)
            case Say():
                extra = AMOUNT_PROMPTS if step.kind == "amount" else ()
                add(name, (*DIGIT_PROMPTS, *extra) if step.kind != "date" else ())
            case Menu() | AskStep():
                add(name, (step.prompt,))
            case Action():
                spec = hooks.actions.get(step.action)
                add(name, spec.prompts if spec is not None else ())
            case Queue():
                add(name, (*QUEUE_PROMPTS, SOUND_TRANSFERRED, *DIGIT_PROMPTS))
            case Survey():
                add(name, (step.prompt, step.thanks, step.invalid))
            case Hangup() | Voicemail():
                add(name, (step.prompt,))
            case _:
                pass
    add("(engine)", (GOODBYE,))
    return used


def prompt_problems(
    flows: Mapping[str, Flow],
    *,
    hooks: Hooks,
    exists: Callable[[str, str], bool],
    default_languages: Sequence[str],
) -> list[str]:
    """Each sound missing in a language the flow uses, naming the flow, the step(s) and the
    language. A flow without `languages` is checked in `default_languages`."""
    problems: list[str] = []
    for flow in flows.values():
        languages = flow.languages or tuple(default_languages)
        for sound, steps in sorted(prompts_by_step(flow, hooks).items()):
            for language in languages:
                if not exists(language, sound):
                    where = ", ".join(repr(step) for step in sorted(steps))
                    problems.append(
                        f"flow {flow.name!r} step {where}: prompt {sound!r} is missing "
                        f"in language {language!r}"
                    )
    return problems
