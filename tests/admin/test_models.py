"""The managed configuration is checked as the settings are, with check-config's messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from centralino.admin.models import (
    Invalid,
    Kind,
    ReasonSettings,
    bootstrap,
    config_problems,
    parse_row,
)
from centralino.app import ADMIN_BUILDERS
from centralino.settings import AgentSettings, QueueSettings, SettingsError, load_settings
from tests.admin.conftest import SETTINGS


def test_given_the_settings_when_bootstrapping_then_teams_come_from_the_agents() -> None:
    config = bootstrap(SETTINGS)
    assert [v.row.id for v in config.agents] == ["a1", "a2"]  # type: ignore[union-attr]
    assert [v.row.name for v in config.queues] == ["billing", "support", "sales"]  # type: ignore[union-attr]
    assert [v.row.name for v in config.teams] == ["blue", "red"]  # type: ignore[union-attr]
    assert "Lunch" in config.reason_labels()
    assert config_problems(config, SETTINGS, ADMIN_BUILDERS) == []


def test_field_errors_name_the_field_path() -> None:
    with pytest.raises(Invalid) as caught:
        parse_row(Kind.QUEUES, {"name": "billing", "steps": [{"after_s": 0, "min_level": 9}]})
    assert [p.path for p in caught.value.problems] == ["steps.0.min_level"]
    with pytest.raises(Invalid) as caught:
        parse_row(Kind.AGENTS, {"id": "a 1", "wrap_up_s": -1, "surprise": True})
    assert {p.path for p in caught.value.problems} == {"id", "wrap_up_s", "surprise"}


def test_what_postgresql_cannot_store_is_refused_before_it_tries() -> None:
    with pytest.raises(Invalid) as caught:
        parse_row(Kind.QUEUES, {"name": "billing", "max_length": 2**40})
    assert [p.path for p in caught.value.problems] == ["max_length"]
    with pytest.raises(Invalid) as caught:
        parse_row(Kind.AGENTS, {"id": "a1", "name": "nul\x00", "skills": {"b\ud800": 1}})
    assert {p.path for p in caught.value.problems} == {"name", "skills.b\ud800"}


def test_a_queue_no_agent_can_serve_is_refused_with_check_configs_message(
    tmp_path: Path,
) -> None:
    config = bootstrap(SETTINGS)
    a1 = AgentSettings(id="a1", skills={"support": 3, "sales": 2}, teams=["blue"])
    problems = config_problems(config.put(Kind.AGENTS, a1, 2), SETTINGS, ADMIN_BUILDERS)
    # What check-config says of the same agents in the TOML file:
    toml = tmp_path / "centralino.toml"
    toml.write_text(
        '[[acd.agents]]\nid = "a1"\nskills = { support = 3, sales = 2 }\n'
        '[[acd.agents]]\nid = "a2"\nskills = { support = 2 }\n'
    )
    with pytest.raises(SettingsError) as told:
        load_settings(toml, environ={})
    [problem] = problems
    assert problem.message.startswith("contact.intents: intent ")
    assert "intent 'billing': no agent has skill 'billing'" in problem.message
    assert problem.message in str(told.value)


def test_cross_checks_refuse_unknown_teams_overflow_targets_and_bad_steps() -> None:
    config = bootstrap(SETTINGS)
    a2 = AgentSettings(id="a2", skills={"support": 2}, teams=["green"])
    messages = [
        p.message for p in config_problems(config.put(Kind.AGENTS, a2, 2), SETTINGS, ADMIN_BUILDERS)
    ]
    assert messages == ["agent 'a2': no team named 'green' (add it first)"]
    q = QueueSettings(
        name="sales",
        skill="sales",
        steps=[{"after_s": 0, "action": "overflow", "target": "nowhere"}],
    )
    messages = [
        p.message for p in config_problems(config.put(Kind.QUEUES, q, 2), SETTINGS, ADMIN_BUILDERS)
    ]
    assert messages == ["queue 'sales': overflow to 'nowhere', which is no queue"]
    q = QueueSettings(name="sales", skill="sales", steps=[{"after_s": 5}])
    messages = [
        p.message for p in config_problems(config.put(Kind.QUEUES, q, 2), SETTINGS, ADMIN_BUILDERS)
    ]
    assert messages == ["queue sales: the first step must start at 0 s"]
    assert config_problems(config.remove(Kind.REASONS, "lunch"), SETTINGS, ADMIN_BUILDERS) == []
    assert ReasonSettings(code="x", label="X").label == "X"
