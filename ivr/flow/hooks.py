"""Python hooks a flow names: branch conditions and self-service actions, registered by name
like the ACD's strategies (`acd.policies.STRATEGIES`).

A condition is `(CallView) -> bool`. An action is `async (ActionContext) -> result`, and
declares its results (each must lead somewhere in the flow) and the prompts it plays (checked
on disk like the flow's own). The composition root may add its own to `DEFAULT_HOOKS`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ivr.flow.say import AMOUNT_PROMPTS, say_amount
from ivr.ports import CallerKnowledge, Channel, InboundServices


@dataclass(frozen=True, slots=True)
class CallView:
    """What a condition or an action may read about the call."""

    knowledge: CallerKnowledge
    intent: str | None
    confidence: float
    language: str | None
    caller_id: str
    open: bool
    vars: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ActionContext:
    channel: Channel
    services: InboundServices
    view: CallView
    menu_timeout_ms: int


ConditionHook = Callable[[CallView], bool]
ActionFn = Callable[[ActionContext], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    run: ActionFn
    results: tuple[str, ...]
    prompts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Hooks:
    conditions: Mapping[str, ConditionHook] = field(default_factory=dict)
    actions: Mapping[str, ActionSpec] = field(default_factory=dict)

    def extended(
        self,
        *,
        conditions: Mapping[str, ConditionHook] | None = None,
        actions: Mapping[str, ActionSpec] | None = None,
    ) -> Hooks:
        return Hooks(
            conditions=MappingProxyType({**self.conditions, **(conditions or {})}),
            actions=MappingProxyType({**self.actions, **(actions or {})}),
        )


SOUND_INVOICE_OVERDUE = "centralino/invoice-overdue"
SOUND_AGENT_OR_BYE = "centralino/press-1-for-agent"


async def overdue_invoice(ctx: ActionContext) -> str:
    """Read the overdue amount; `1` goes on to an agent ("agent"), anything else "served"."""
    await ctx.services.note("self_service", "overdue invoice read out")
    await ctx.channel.stream_file(SOUND_INVOICE_OVERDUE)
    await say_amount(ctx.channel, ctx.view.knowledge.overdue_amount_cents)
    choice = await ctx.channel.get_data(SOUND_AGENT_OR_BYE, ctx.menu_timeout_ms, 1)
    if choice.digits == "1":
        await ctx.services.note("self_service", "asked for an agent")
        return "agent"
    return "served"


def is_vip(view: CallView) -> bool:
    return view.knowledge.vip


DEFAULT_HOOKS = Hooks(
    conditions=MappingProxyType({"vip": is_vip}),
    actions=MappingProxyType(
        {
            "overdue_invoice": ActionSpec(
                overdue_invoice,
                results=("served", "agent"),
                prompts=(SOUND_INVOICE_OVERDUE, SOUND_AGENT_OR_BYE, *AMOUNT_PROMPTS),
            )
        }
    ),
)
