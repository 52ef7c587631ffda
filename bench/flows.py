"""Flows as data: what interpreting a flow costs a call, against the same call written by hand.

1. Load: parse and check the built-in `default` flow and the example `sales_line` flow
   (document, graph, references), milliseconds per flow.
2. Per call: the `default` flow through the engine (`run_inbound`), against a hand-written
   coroutine issuing the same commands and service calls (the flow as it was before it became
   data), over an in-memory channel whose commands return at once; a caller who presses 4 and
   is refused by the queue (welcome, menu, intent, enqueue, apology, hang-up). Microseconds per
   call, best of ROUNDS, so the figures are the interpreter's cost, not the telephony's.

Run: `.venv/bin/python bench/flows.py`. The last line is the JSON summary.
"""

from __future__ import annotations

import asyncio
import json
import time
import tomllib
from pathlib import Path

from context.models import Outcome
from ivr.flow.check import reference_problems
from ivr.flow.default import DEFAULT_DOCUMENT
from ivr.flow.document import parse_flow
from ivr.flow.hooks import DEFAULT_HOOKS
from ivr.inbound import InboundCall, run_inbound
from ivr.intent import INTENTS, IntentModel, Signals
from ivr.ports import (
    AgentOffer,
    CallerKnowledge,
    DigitInput,
    QueuedCall,
    QueueRefusal,
    QueueRequest,
)

ROOT = Path(__file__).resolve().parents[1]
CALLS = 2000
ROUNDS = 5
LOADS = 200
MODEL = IntentModel.train()
KNOWN = CallerKnowledge(
    known_customer=True,
    display_name="Mario Rossi",
    overdue_invoices=0,
    overdue_amount_cents=0,
    shipments_in_transit=0,
    open_tickets=0,
    open_ticket_topic=None,
    preferred_agents=(),
    vip=False,
    complete=True,
)
REFUSAL = QueueRefusal(reason="no_agents", action="hangup")


class Channel:
    """Answers every command at once; the caller presses 4 at the menu."""

    uniqueid = "bench.1"

    def __init__(self) -> None:
        self.commands = 0

    async def answer(self) -> None:
        self.commands += 1

    async def hangup(self) -> None:
        self.commands += 1

    async def stream_file(self, name: str, escape_digits: str = "") -> str | None:
        self.commands += 1
        return None

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> DigitInput:
        self.commands += 1
        return DigitInput("4", timed_out=False)

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        return None

    async def say_number(self, number: int) -> None:
        self.commands += 1

    async def say_digits(self, digits: str) -> None:
        self.commands += 1

    async def exec(self, application: str, *args: str) -> int:
        self.commands += 1
        return 0

    async def get_variable(self, name: str) -> str | None:
        return None

    async def set_variable(self, name: str, value: str) -> None:
        self.commands += 1

    async def set_music(self, on: bool, moh_class: str = "default") -> None:
        self.commands += 1

    async def verbose(self, message: str, level: int = 1) -> None:
        return None


class Services:
    async def knowledge(self, wait_s: float) -> CallerKnowledge:
        return KNOWN

    async def note(self, step: str, detail: str = "") -> None:
        return None

    async def predicted(
        self, intent: str, confidence: float, reasons: tuple[str, ...], *, transcript: str = ""
    ) -> None:
        return None

    async def rated(self, score: int) -> None:
        return None

    async def resume_transfer(self) -> QueuedCall | QueueRefusal | None:
        return None

    async def enqueue(self, request: QueueRequest) -> QueuedCall | QueueRefusal:
        return REFUSAL

    async def push_screen_pop(self, offer: AgentOffer) -> bool:
        return True

    async def finish(self, outcome: str, *, agent_id: str | None = None) -> None:
        return None


async def by_hand(channel: Channel, services: Services) -> Outcome:
    """The same call as the default flow's steps, written as one coroutine."""
    await channel.answer()
    await services.resume_transfer()
    knowledge = await services.knowledge(0.0)
    signals = Signals(known_customer=knowledge.known_customer)
    MODEL.predict(signals=signals)
    await channel.stream_file("centralino/welcome")
    knowledge = await services.knowledge(1.0)
    prior = MODEL.predict(signals=signals)
    if prior.intent == "billing" and prior.confidence >= 0.5 and knowledge.overdue_invoices:
        raise AssertionError("no self-service in this bench")
    menu = await channel.get_data("centralino/menu", 4000, 1)
    key = menu.digits[:1] or None
    await services.note("menu", f"pressed {key}")
    prediction = MODEL.predict(signals=signals, menu_key=key)
    await services.predicted(prediction.intent, prediction.confidence, prediction.reasons)
    placed = await services.enqueue(
        QueueRequest(intent=prediction.intent, priority=0, preferred_agents=())
    )
    assert isinstance(placed, QueueRefusal)
    await services.note("queue_refused", f"{placed.reason} → {placed.action}")
    await channel.stream_file("centralino/no-agents")
    await channel.hangup()
    # As run_inbound did before flows were data: the record is written even if cancelled.
    await asyncio.shield(services.finish(Outcome.REFUSED))
    return Outcome.REFUSED


async def per_call_us(engine: bool) -> tuple[float, int]:
    best = float("inf")
    commands = 0
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(CALLS):
            channel, services = Channel(), Services()
            if engine:
                outcome = await run_inbound(
                    InboundCall(uniqueid="bench.1", caller_id="+390212345678"),
                    channel,
                    services,
                    model=MODEL,
                    monotonic=time.monotonic,
                )
            else:
                outcome = await by_hand(channel, services)
            assert outcome is Outcome.REFUSED
            commands = channel.commands
        best = min(best, (time.perf_counter() - started) / CALLS * 1e6)
    return best, commands


def load_ms() -> float:
    example = tomllib.loads((ROOT / "centralino.example.toml").read_text())["flows"]
    documents = {"default": DEFAULT_DOCUMENT, **example}
    started = time.perf_counter()
    for _ in range(LOADS):
        flows = {name: parse_flow(name, doc) for name, doc in documents.items()}
        problems = reference_problems(
            flows, queues=("billing", "support", "sales"), intents=INTENTS, hooks=DEFAULT_HOOKS
        )
        assert not problems, problems
    return (time.perf_counter() - started) / LOADS / len(documents) * 1e3


async def main() -> None:
    parse = load_ms()
    engine_us, engine_commands = await per_call_us(engine=True)
    hand_us, hand_commands = await per_call_us(engine=False)
    assert engine_commands == hand_commands, (engine_commands, hand_commands)
    print(f"load and check one flow:            {parse:8.3f} ms")
    print(f"one call, default flow (engine):    {engine_us:8.1f} µs ({engine_commands} commands)")
    print(f"one call, written by hand (peer):   {hand_us:8.1f} µs")
    print(f"interpretation overhead per call:   {engine_us - hand_us:8.1f} µs")
    print(
        json.dumps(
            {
                "bench": "flows",
                "load_ms_per_flow": round(parse, 3),
                "engine_us_per_call": round(engine_us, 1),
                "handwritten_us_per_call": round(hand_us, 1),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
