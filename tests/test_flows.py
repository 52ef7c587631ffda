"""Flows from the settings and the flows directory: checked at start and by check-config,
prompts looked up on disk, and reloaded without a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from centralino.cli import main
from centralino.flows import FlowStore, build_library, read_flow_files, sounds_lookup
from centralino.settings import Settings, load_settings
from ivr.flow.errors import FlowError
from ivr.flow.library import UnknownFlow
from ivr.flow.models import Queue
from tests.helpers import eventually

GOOD = """
numbers = ["0200000200"]
start = "hello"
[steps.hello]
type = "play"
prompt = "centralino/welcome"
next = "queue"
[steps.queue]
type = "queue"
queue = "{queue}"
"""


def write(path: Path, text: str) -> None:
    """Atomically, as an editor saving a file does: the watcher never reads half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def settings_with(tmp_path: Path, **ivr: object) -> Settings:
    flows = tmp_path / "flows"
    flows.mkdir(exist_ok=True)
    return Settings.model_validate({"ivr": {"flows_dir": str(flows), "reload_check_s": 0.05} | ivr})


def test_given_a_flows_directory_then_each_file_is_a_flow_chosen_by_number(tmp_path: Path) -> None:
    settings = settings_with(tmp_path)
    (tmp_path / "flows" / "support_line.toml").write_text(GOOD.format(queue="support"))

    library = build_library(settings)

    assert set(library.flows) == {"default", "support_line"}
    assert library.choose(requested=None, dnid="0200000200").name == "support_line"
    assert library.choose(requested=None, dnid="", extension="0200000200").name == "support_line"
    assert library.choose(requested=None, dnid="999").name == "default"
    assert library.choose(requested="support_line").name == "support_line"
    with pytest.raises(UnknownFlow):
        library.choose(requested="nope")


def test_given_bad_flow_files_then_every_problem_names_its_flow(tmp_path: Path) -> None:
    settings = settings_with(tmp_path)
    (tmp_path / "flows" / "broken.toml").write_text("start = [")
    (tmp_path / "flows" / "wrong_queue.toml").write_text(GOOD.format(queue="nowhere"))
    with pytest.raises(FlowError) as caught:
        read_flow_files(tmp_path / "flows")
    assert caught.value.problems[0].startswith("flow 'broken' (broken.toml): not valid TOML")

    (tmp_path / "flows" / "broken.toml").unlink()
    with pytest.raises(FlowError) as caught:
        build_library(settings)
    assert caught.value.problems == (
        "flow 'wrong_queue' step 'queue': no queue named 'nowhere' (acd.queues)",
    )


def _sounds(tmp_path: Path, language: str, *names: str) -> Path:
    root = tmp_path / "sounds" / language
    for name in names:
        path = root / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"RIFF")
    return root


def test_sounds_are_found_in_any_format_but_not_as_sidecars(tmp_path: Path) -> None:
    root = _sounds(tmp_path, "it", "centralino/welcome")
    (root / "centralino" / "menu.wav.sha256").write_text("x")
    exists = sounds_lookup({"it": [tmp_path / "elsewhere", root]})
    assert exists("it", "centralino/welcome")
    assert not exists("it", "centralino/menu")
    assert not exists("en", "centralino/welcome")


def test_given_sounds_directories_then_a_missing_prompt_stops_the_start(tmp_path: Path) -> None:
    it = _sounds(tmp_path, "it", "centralino/welcome")
    settings = settings_with(tmp_path, sounds={"it": [str(it)]}, languages=["it"])

    with pytest.raises(FlowError) as caught:
        FlowStore(settings=settings)

    assert "flow 'default' step 'menu': prompt 'centralino/menu' is missing in language 'it'" in (
        caught.value.problems
    )
    assert not any("centralino/welcome" in p for p in caught.value.problems)


def test_check_config_names_flow_step_and_language(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    it = _sounds(tmp_path, "it", "centralino/welcome")
    config = tmp_path / "centralino.toml"
    config.write_text(
        f'[ivr]\nlanguages = ["it"]\n[ivr.sounds]\nit = ["{it}"]\n'
        '[flows.night]\nstart = "bye"\n[flows.night.steps.bye]\ntype = "hangup"\n'
        'prompt = "centralino/closed"\n'
    )
    assert main(["--config", str(config), "check-config"]) == 2
    err = capsys.readouterr().err
    assert "flow 'night' step 'bye': prompt 'centralino/closed' is missing in language 'it'" in err

    config.write_text('[flows.night]\nstart = "bye"\n[flows.night.steps.bye]\ntype = "hangoff"\n')
    assert main(["--config", str(config), "check-config"]) == 2
    assert "flow 'night' step 'bye': unknown step type 'hangoff'" in capsys.readouterr().err


def test_the_example_settings_pass_check_config(capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parents[1]
    assert main(["--config", str(root / "centralino.example.toml"), "check-config"]) == 0
    settings = load_settings(root / "centralino.example.toml", environ={})
    assert "sales_line" in build_library(settings).flows


async def test_given_a_flow_file_changes_then_it_is_reloaded_and_a_bad_one_is_not(
    tmp_path: Path,
) -> None:
    settings = settings_with(tmp_path)
    store = FlowStore(settings=settings)
    watcher = asyncio.create_task(store.watch())
    try:
        assert set(store.library.flows) == {"default"}
        path = tmp_path / "flows" / "sales_line.toml"
        write(path, GOOD.format(queue="sales"))

        def reloaded() -> None:
            assert "sales_line" in store.library.flows

        await eventually(reloaded, timeout=5)
        before = store.library
        write(path, GOOD.format(queue="nowhere"))

        def refused() -> None:
            assert store.failed_reloads >= 1

        await eventually(refused, timeout=5)
        assert store.library is before  # the flows in force stay

        # SIGHUP's request reloads even when nothing changed on disk.
        write(path, GOOD.format(queue="support"))

        def fixed() -> None:
            step = store.library.flows["sales_line"].steps["queue"]
            assert isinstance(step, Queue) and step.queue == "support"

        await eventually(fixed, timeout=5)
        reloads = store.reloads
        store.request_reload()

        def again() -> None:
            assert store.reloads == reloads + 1

        await eventually(again, timeout=5)
    finally:
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher


def test_serve_refuses_to_start_with_invalid_flows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "centralino.toml"
    config.write_text(
        '[flows.night]\nstart = "q"\n[flows.night.steps.q]\ntype = "queue"\nqueue = "nowhere"\n'
    )
    assert main(["--config", str(config), "serve"]) == 2
    assert "flow 'night' step 'q': no queue named 'nowhere'" in capsys.readouterr().err


def test_the_shipped_flows_prompts_all_exist_in_debians_packs_and_ours(tmp_path: Path) -> None:
    """Debian's recorded packs (scripts/prepare-machine.sh installs them) and `make prompts`
    cover every sound the built-in and the example flows may play, in both languages."""
    from centralino import prompts

    debian = {
        "en": Path("/usr/share/asterisk/sounds/en_US_f_Allison"),
        "it": Path("/usr/share/asterisk/sounds/it_IT_m_Carlo"),
    }
    assert all(p.is_dir() for p in debian.values()), "run scripts/prepare-machine.sh"
    prompts.render(tmp_path / "sounds")
    root = Path(__file__).resolve().parents[1]
    settings = load_settings(root / "centralino.example.toml", environ={})
    sounds = {lang: [debian[lang], tmp_path / "sounds" / lang] for lang in ("en", "it")}
    settings = settings.model_copy(
        update={"ivr": settings.ivr.model_copy(update={"sounds": sounds})}
    )

    library = build_library(settings)

    assert {"default", "sales_line"} <= set(library.flows)
