"""Intent routes, ticket steps and refusals."""

from __future__ import annotations

import pytest

from acd.models import ActionKind, AgentDefinition, QueueAction
from centralino.settings import SettingsError, load_settings
from contact.rules import (
    DEFAULT_ROUTES,
    IntentRoute,
    TicketStep,
    refusal,
    route_for,
    route_problems,
    ticket_step,
)
from context.models import Outcome

AGENTS = [
    AgentDefinition(agent_id="a1", skills={"billing": 3, "support": 2}),
    AgentDefinition(agent_id="a2", skills={"sales": 1}),
]


def test_given_default_routes_and_usual_agents_then_every_intent_can_be_served() -> None:
    assert (
        route_problems(DEFAULT_ROUTES, queues=["billing", "support", "sales"], agents=AGENTS) == []
    )


def test_given_a_skill_no_agent_has_then_the_route_is_named_as_unservable() -> None:
    # The defect: key 2 waited up to 30 minutes in `support` for a `logistics` skill nobody had.
    routes = {**DEFAULT_ROUTES, "order_status": IntentRoute("support", "logistics", 2)}
    problems = route_problems(routes, queues=["billing", "support", "sales"], agents=AGENTS)
    assert problems == [
        "intent 'order_status': no agent has skill 'logistics' at level 2 or more, so its "
        "callers could never be answered"
    ]


def test_given_unknown_queue_or_no_default_then_both_are_reported() -> None:
    routes = {"billing": IntentRoute("accounts", "billing")}
    problems = route_problems(routes, queues=["billing"], agents=None)
    assert problems == [
        "no route for 'agent': intents without a route need one",
        "intent 'billing': no queue named 'accounts'",
    ]


def test_given_unknown_intent_then_it_goes_where_agent_goes() -> None:
    assert route_for("weather", DEFAULT_ROUTES) == DEFAULT_ROUTES["agent"]


def test_settings_refuse_a_route_no_listed_agent_can_serve(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "c.toml"
    path.write_text(
        '[[acd.agents]]\nid = "a1"\nskills = { support = 3 }\n'
        '[contact.intents.delivery]\nqueue = "support"\nskill = "logistics"\nmin_level = 2\n',
        encoding="utf-8",
    )
    with pytest.raises(SettingsError, match=r"contact.intents.*'delivery'.*'logistics'"):
        load_settings(path, environ={})


@pytest.mark.parametrize(
    ("outcome", "known", "has_open", "step"),
    [
        (Outcome.ANSWERED, True, False, TicketStep.OPEN),
        (Outcome.ANSWERED, True, True, TicketStep.ATTACH),
        (Outcome.CALLBACK_REQUESTED, True, False, TicketStep.OPEN),
        (Outcome.ANSWERED, False, False, TicketStep.NONE),
        (Outcome.ABANDONED, True, False, TicketStep.NONE),
        (Outcome.RETURNED, True, True, TicketStep.NONE),
    ],
)
def test_ticket_steps(outcome: Outcome, known: bool, has_open: bool, step: TicketStep) -> None:
    assert ticket_step(outcome, known_customer=known, has_open_ticket=has_open) is step


def test_refusals_say_what_the_caller_is_offered() -> None:
    assert refusal(QueueAction(ActionKind.CALLBACK), "no_agents").action == "callback"
    hangup = refusal(QueueAction(ActionKind.HANGUP, announcement="queue-full"), "x")
    assert (hangup.action, hangup.reason) == ("hangup", "queue-full")


def test_the_call_language_is_the_query_s_then_the_channel_s_where_agents_declare_any() -> None:
    from contact.rules import call_language

    assert call_language(None, "it", spoken={"it", "en"}) == "it"  # agi_language
    assert call_language("en", "it", spoken={"it", "en"}) == "en"  # ?lang= wins
    assert call_language(None, "IT ", spoken={"en"}) == "it"  # a requirement nobody meets
    assert call_language(None, "it", spoken=set()) is None  # no language routing here
    assert call_language(None, "", spoken={"en"}) is None
