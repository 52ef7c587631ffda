"""Flow documents: every problem is reported, naming the flow and the step."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from ivr.flow.check import prompt_problems, reference_problems
from ivr.flow.default import DEFAULT_DOCUMENT, default_flow
from ivr.flow.document import parse_flow
from ivr.flow.errors import FlowError
from ivr.flow.hooks import DEFAULT_HOOKS
from ivr.flow.models import Menu, Queue
from ivr.intent import INTENTS

ROOT = Path(__file__).resolve().parents[2]
QUEUES = ("billing", "support", "sales")


def problems_of(document: dict[str, Any], name: str = "f") -> tuple[str, ...]:
    with pytest.raises(FlowError) as caught:
        parse_flow(name, document)
    return caught.value.problems


def doc(**steps: dict[str, Any]) -> dict[str, Any]:
    return {"start": next(iter(steps)), "steps": steps}


BYE = {"type": "hangup"}


def test_the_default_flow_is_todays_flow_as_data() -> None:
    flow = default_flow()
    assert flow.start == "welcome"
    assert isinstance(flow.steps["menu"], Menu) and flow.steps["menu"].intent_keys
    assert isinstance(flow.steps["queue"], Queue)
    assert (
        reference_problems({"default": flow}, queues=QUEUES, intents=INTENTS, hooks=DEFAULT_HOOKS)
        == []
    )


def test_the_example_flows_in_the_example_settings_are_valid() -> None:
    settings = tomllib.loads((ROOT / "centralino.example.toml").read_text())
    flows = {name: parse_flow(name, d) for name, d in settings["flows"].items()}
    assert reference_problems(flows, queues=QUEUES, intents=INTENTS, hooks=DEFAULT_HOOKS) == []
    assert flows["sales_line"].languages == ("en", "it")  # its language step adds Italian
    assert flows["sales_line"].hours is not None


def test_given_malformed_documents_then_every_problem_names_flow_and_step() -> None:
    problems = problems_of(
        doc(
            welcome={"type": "play", "next": "menu"},  # no prompt
            menu={"type": "menu", "prompt": "centralino/menu", "options": {"12": "x"}},
            odd={"type": "dance", "next": "welcome"},
            typo={"type": "hangup", "promt": "vm-goodbye"},
        )
    )
    text = "\n".join(problems)
    assert "flow 'f' step 'welcome': prompt (or prompts) is required" in text
    assert "flow 'f' step 'menu': options: '12' is not one DTMF key" in text
    assert "flow 'f' step 'menu': a menu needs next or no_input" in text
    assert "flow 'f' step 'odd': unknown step type 'dance'" in text
    assert "flow 'f' step 'typo': unknown key(s) promt" in text


def test_given_a_wrong_type_then_the_problem_says_what_was_expected() -> None:
    (problem,) = problems_of(
        doc(a={"type": "ask", "prompt": "p", "var": "v", "next": "b", "max_digits": "4"}, b=BYE)
    )
    assert problem == "flow 'f' step 'a': max_digits must be a int, got str '4'"


def test_given_dangling_and_unreachable_steps_then_both_are_named() -> None:
    problems = problems_of(doc(a={"type": "play", "prompt": "p", "next": "nowhere"}, b=BYE))
    assert problems == ("flow 'f' step 'a': goes to 'nowhere', which is not a step",)
    problems = problems_of(doc(a=BYE, orphan=BYE))
    assert problems == ("flow 'f' step 'orphan': unreachable from start",)


def test_given_a_loop_no_caller_input_can_leave_then_it_is_refused() -> None:
    problems = problems_of(
        doc(
            a={"type": "play", "prompt": "p", "next": "b"},
            b={"type": "branch", "cases": [{"if": "vip == true", "next": "c"}], "otherwise": "a"},
            c=BYE,
        )
    )
    assert len(problems) == 1 and "without asking the caller anything" in problems[0]
    assert "'a'" in problems[0] and "a → b → a" in problems[0]


def test_given_a_loop_through_a_menu_then_it_is_fine() -> None:
    flow = parse_flow(
        "f",
        doc(
            a={"type": "play", "prompt": "p", "next": "m"},
            m={
                "type": "menu",
                "prompt": "p",
                "options": {"1": "a", "2": "q"},
                "retries": 1,
                "no_input": "q",
            },
            q=BYE,
        ),
    )
    assert flow.steps["m"].name == "m"


def test_given_hours_without_a_closed_step_then_it_is_a_problem() -> None:
    document = doc(a=BYE) | {"hours": {"mon": ["09:00-18:00"]}}
    assert problems_of(document) == (
        "flow 'f': hours are set but no `closed` step says what happens outside",
    )
    document["hours"] = {"mon": ["9-18"], "holidays": ["xx"]}
    document["closed"] = "a"
    assert problems_of(document) == (
        "flow 'f' hours: weekly.mon: '9-18' is not HH:MM-HH:MM",
        "flow 'f' hours: holidays: 'xx' is not YYYY-MM-DD or MM-DD",
    )


def test_given_bad_branch_conditions_then_they_are_named() -> None:
    problems = problems_of(
        doc(
            b={
                "type": "branch",
                "cases": [{"if": ["mood == happy", "vip is true"], "next": "z"}],
                "otherwise": "z",
            },
            z=BYE,
        )
    )
    assert problems == (
        "flow 'f' step 'b': cases[0]: 'mood' is not a field a branch can read",
        "flow 'f' step 'b': cases[0]: 'vip is true' is not 'field op value' (op: == != >= <= > <)",
    )


def test_given_unknown_queue_intent_hook_or_action_then_references_are_refused() -> None:
    flows = {
        "f": parse_flow(
            "f",
            doc(
                s={
                    "type": "branch",
                    "cases": [{"hook": "lucky", "if": "intent == astrology", "next": "m"}],
                    "otherwise": "m",
                },
                m={
                    "type": "menu",
                    "prompt": "p",
                    "options": {"1": {"intent": "refund_magic"}},
                    "next": "a",
                },
                a={"type": "action", "action": "read_palm", "results": {"ok": "q"}},
                q={"type": "queue", "queue": "nowhere", "intent": "gossip", "survey": "g"},
                g={"type": "flow", "flow": "missing"},
            ),
        )
    }
    problems = reference_problems(flows, queues=QUEUES, intents=INTENTS, hooks=DEFAULT_HOOKS)
    text = "\n".join(problems)
    assert "flow 'f' step 's': no condition hook named 'lucky'" in text
    assert "flow 'f' step 's': compares intent with unknown 'astrology'" in text
    assert "flow 'f' step 'm': key 1 names unknown intent 'refund_magic'" in text
    assert "flow 'f' step 'a': no action named 'read_palm'" in text
    assert "flow 'f' step 'q': no queue named 'nowhere' (acd.queues)" in text
    assert "flow 'f' step 'q': unknown intent 'gossip'" in text
    assert "flow 'f' step 'g': no flow named 'missing'" in text


def test_given_action_results_that_do_not_match_then_both_sides_are_named() -> None:
    flows = {
        "f": parse_flow(
            "f",
            doc(
                a={
                    "type": "action",
                    "action": "overdue_invoice",
                    "results": {"served": "z", "maybe": "z"},
                },
                z=BYE,
            ),
        )
    }
    problems = reference_problems(flows, queues=QUEUES, intents=INTENTS, hooks=DEFAULT_HOOKS)
    assert problems == [
        "flow 'f' step 'a': overdue_invoice has no result(s) ['maybe']",
        "flow 'f' step 'a': results must say where ['agent'] lead",
    ]


def test_given_two_flows_claim_one_number_then_it_is_refused() -> None:
    one = parse_flow("one", doc(z=BYE) | {"numbers": ["100"]})
    two = parse_flow("two", doc(z=BYE) | {"numbers": ["100"]})
    problems = reference_problems(
        {"one": one, "two": two}, queues=QUEUES, intents=INTENTS, hooks=DEFAULT_HOOKS
    )
    assert problems == ["flow 'two': number '100' already picks flow 'one'"]


def test_given_a_missing_prompt_then_flow_step_and_language_are_named() -> None:
    flow = parse_flow(
        "f",
        doc(
            a={"type": "play", "prompt": "centralino/welcome", "next": "l"},
            l={"type": "language", "language": "en", "next": "z"},
            z={"type": "hangup", "prompt": "centralino/bye-bye"},
        )
        | {"language": "it"},
    )
    have = {
        ("it", "centralino/welcome"),
        ("en", "centralino/welcome"),
        ("it", "centralino/bye-bye"),
        ("it", "vm-goodbye"),
        ("en", "vm-goodbye"),
    }
    problems = prompt_problems(
        {"f": flow},
        hooks=DEFAULT_HOOKS,
        exists=lambda lang, sound: (lang, sound) in have,
        default_languages=("it",),
    )
    assert problems == [
        "flow 'f' step 'z': prompt 'centralino/bye-bye' is missing in language 'en'"
    ]


def test_the_default_flow_needs_its_own_and_its_actions_and_queues_prompts() -> None:
    missing: list[tuple[str, str]] = []

    def exists(language: str, sound: str) -> bool:
        missing.append((language, sound))
        return False

    prompt_problems(
        {"default": default_flow()},
        hooks=DEFAULT_HOOKS,
        exists=exists,
        default_languages=("it", "en"),
    )
    asked = {sound for _, sound in missing}
    assert {
        "centralino/welcome",
        "centralino/menu",
        "centralino/invoice-overdue",
        "centralino/euro-one",
        "queue-thereare",
        "digits/1",
        "vm-goodbye",
    } <= asked
    assert {lang for lang, _ in missing} == {"it", "en"}


def test_the_default_document_is_not_changed_by_parsing() -> None:
    before = repr(DEFAULT_DOCUMENT)
    default_flow()
    assert repr(DEFAULT_DOCUMENT) == before
