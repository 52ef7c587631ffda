"""The product's prompts: the table covers every `centralino/*` sound the call flow plays,
in every language, and renders to the WAV format Asterisk plays (8 kHz mono 16-bit PCM).

Rendering needs espeak-ng and sox (scripts/prepare-machine.sh installs them); without them
these tests fail, naming what is missing, rather than skip.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from centralino import prompts
from centralino.prompts import LANGUAGES, PROMPTS, Prompt, PromptError

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "centralino/"


def _sound_constants(path: Path) -> dict[str, str]:
    """`SOUND_* = "..."` assignments at the top level of a module, read from its source."""
    found: dict[str, str] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = node.value
            for target in targets:
                if (
                    isinstance(target, ast.Name)
                    and target.id.startswith("SOUND_")
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, str)
                ):
                    found[target.id] = value.value
    return found


def _string_literals(paths: list[Path]) -> set[str]:
    out: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                out.add(node.value)
    return out


def _require_tools() -> None:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    assert not missing, f"{missing} not installed: run scripts/prepare-machine.sh"


# --------------------------------------------------------------------------- the table


def _flow_strings() -> set[str]:
    """Every string in the example flows of centralino.example.toml (sounds they play)."""
    import tomllib

    found: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(tomllib.loads((ROOT / "centralino.example.toml").read_text()).get("flows", {}))
    return found


def test_every_product_sound_of_the_call_flow_has_english_and_italian_text() -> None:
    sounds = {
        name: value
        for path in [ROOT / "ivr" / "inbound.py", *sorted((ROOT / "ivr" / "flow").glob("*.py"))]
        for name, value in _sound_constants(path).items()
    }
    ours = {name: value for name, value in sounds.items() if value.startswith(PREFIX)}
    # the constants the flow had when the table was written; more may come
    assert {"SOUND_WELCOME", "SOUND_MENU", "SOUND_NO_AGENTS", "SOUND_CALLBACK_OFFER"} <= set(ours)
    table = {prompt.name: prompt for prompt in PROMPTS}
    for constant, sound in ours.items():
        assert sound in table, f"{constant} = {sound!r} has no entry in centralino/prompts.py"
        for language in ("en", "it"):
            text = table[sound].text.get(language, "")
            assert text.strip(), (sound, language)
    assert set(LANGUAGES) == {"en", "it"}


def test_every_prompt_is_played_somewhere() -> None:
    # A prompt nobody plays is stale: its sound name must appear in the domain's code or in
    # the example flows.
    sources = [p for pkg in ("ivr", "contact", "acd") for p in (ROOT / pkg).rglob("*.py")]
    literals = _string_literals(sources) | _flow_strings()
    names = [prompt.name for prompt in PROMPTS]
    assert len(names) == len(set(names))
    for name in names:
        assert name.startswith(PREFIX)
        assert name in literals, f"{name} is in the table but no flow plays it"


def test_texts_fit_where_the_flow_plays_them() -> None:
    text = {prompt.name: prompt.text for prompt in PROMPTS}
    # the menu offers exactly the keys ivr/intent.py knows, plus 0 for an operator
    from ivr.intent import MENU

    for language in LANGUAGES:
        menu = text["centralino/menu"][language]
        for key in [*MENU, "0"]:
            assert f" {key}." in menu, (language, key)
        # "you owe" [amount] "euro": the first part runs on into the number
        assert not text["centralino/invoice-overdue"][language].endswith(".")
        assert "1" in text["centralino/press-1-for-agent"][language]


# --------------------------------------------------------------------------- rendering


def _read_wav(path: Path) -> tuple[wave._wave_params, np.ndarray]:
    with wave.open(str(path), "rb") as wav:
        params = wav.getparams()
        frames = wav.readframes(params.nframes)
    return params, np.frombuffer(frames, dtype="<i2")


def test_a_rendered_prompt_is_8khz_mono_16bit_pcm_speech(tmp_path: Path) -> None:
    _require_tools()
    (welcome,) = [p for p in PROMPTS if p.name == "centralino/welcome"]
    report = prompts.render(tmp_path, ["it"], [welcome])
    path = tmp_path / "it" / "centralino" / "welcome.wav"
    assert report.rendered == (path,)
    raw = path.read_bytes()
    assert raw[:4] == b"RIFF" and raw[8:16] == b"WAVEfmt "
    assert int.from_bytes(raw[20:22], "little") == 1  # PCM
    params, samples = _read_wav(path)
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 8000)
    assert params.comptype == "NONE"
    seconds = params.nframes / params.framerate
    assert 1.0 < seconds < 10.0, seconds  # a short sentence, not a click nor a runaway
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    assert rms > 500.0, rms  # speech, normalised near full scale, not silence
    assert np.abs(samples).max() > 16_000


def test_rendering_again_skips_files_that_are_up_to_date(tmp_path: Path) -> None:
    _require_tools()
    prompt = Prompt(name="centralino/test-prompt", text={"en": "One.", "it": "Uno."})
    first = prompts.render(tmp_path, ["en"], [prompt])
    path = tmp_path / "en" / "centralino" / "test-prompt.wav"
    assert first.rendered == (path,)
    os.utime(path, ns=(0, 0))  # mark it: a re-render would replace the file
    again = prompts.render(tmp_path, ["en"], [prompt])
    assert (again.rendered, again.up_to_date) == ((), (path,))
    assert path.stat().st_mtime_ns == 0
    # a changed text is rendered again, and so is a file that disappeared
    changed = Prompt(name=prompt.name, text={"en": "One, two.", "it": "Uno."})
    assert prompts.render(tmp_path, ["en"], [changed]).rendered == (path,)
    assert path.stat().st_mtime_ns != 0
    path.unlink()
    assert prompts.render(tmp_path, ["en"], [changed]).rendered == (path,)


def test_missing_tools_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(PromptError, match=r"espeak-ng and sox not found"):
        prompts.render(tmp_path / "out", ["en"], PROMPTS[:1])
    assert not (tmp_path / "out" / "en" / "centralino" / "welcome.wav").exists()
    assert prompts.main(["--out", str(tmp_path / "out")]) == 1


def test_unknown_language_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="no voice"):
        prompts.render(tmp_path, ["fr"])
    with pytest.raises(SystemExit):
        prompts.main(["--out", str(tmp_path), "--lang", "fr"])


def test_command_line_renders_every_prompt_per_language(tmp_path: Path) -> None:
    _require_tools()
    done = subprocess.run(
        [sys.executable, "-m", "centralino.prompts", "--out", str(tmp_path), "--lang", "en,it"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert f"{len(PROMPTS) * 2} rendered" in done.stderr
    for language in ("en", "it"):
        for prompt in PROMPTS:
            params, _ = _read_wav(tmp_path / language / f"{prompt.name}.wav")
            assert params.framerate == 8000, (language, prompt.name)


def test_make_prompts_writes_where_git_ignores() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "-m centralino.prompts --out build/sounds" in makefile
    # generated audio is never committed (read from .gitignore: CI machines need no git)
    patterns = (ROOT / ".gitignore").read_text().split()
    assert "build/" in patterns or "/build/" in patterns
