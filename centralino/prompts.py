"""The product's own prompts (`centralino/*` sounds): their text in every language, and the
build step that speaks them into files Asterisk plays.

The call flows (`ivr/flow/`) name each sound; Asterisk's core sounds cover the rest
(queue position, hold time, goodbye). Asterisk looks a sound up as
`<sounds dir>/<channel language>/<name>.<format>`, so

    python -m centralino.prompts --out build/sounds [--lang en,it]

writes `build/sounds/<lang>/centralino/<name>.wav`: 8 kHz mono 16-bit PCM, Asterisk's
native `wav` format (signed linear, played without transcoding to slin). espeak-ng speaks
the text (voice `en` or `it`) and sox resamples it and normalises its level. Each file has
a sidecar `<name>.wav.sha256` with the digest of its text, voice and recipe: a file whose
digest matches is left alone, so rebuilding is cheap. `make prompts` runs this;
docker-compose.yml mounts the result into the Asterisk container. Generated audio is never
committed (`build/` is ignored).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final

LANGUAGES: Final = ("en", "it")
# espeak-ng voice per channel language.
VOICES: Final[Mapping[str, str]] = MappingProxyType({"en": "en", "it": "it"})

# Words per minute: a little slower than espeak-ng's default 175, as callers hear the
# prompts through an 8 kHz narrow-band codec.
SPEED_WPM: Final = 150
# Asterisk's `wav` format: signed 16-bit linear PCM, mono, 8 kHz.
SAMPLE_RATE_HZ: Final = 8000
# Peak level after normalising, in dBFS: loud enough on a phone, with headroom for codecs.
PEAK_DBFS: Final = -3
# A render (one prompt) taking longer than this is stuck, not slow (they take ~20 ms).
RENDER_TIMEOUT_S: Final = 60.0


@dataclass(frozen=True, slots=True)
class Prompt:
    """One of our sounds: its name as the flow plays it, and its text in each language."""

    name: str  # e.g. "centralino/welcome"
    text: Mapping[str, str]


def _prompt(name: str, *, en: str, it: str) -> Prompt:
    return Prompt(name=f"centralino/{name}", text=MappingProxyType({"en": en, "it": it}))


# What each prompt must say follows from where a flow (ivr/flow/default.py and the flows in the
# settings) or the engine (ivr/flow/queueing.py, ivr/flow/say.py) plays it.
PROMPTS: Final[tuple[Prompt, ...]] = (
    # First thing a caller hears, while the caller's data is still being fetched.
    _prompt(
        "welcome",
        en="Welcome, and thank you for calling.",
        it="Benvenuto, e grazie per aver chiamato.",
    ),
    # One DTMF key (ivr/intent/labels.py MENU): 1 billing, 2 order_status, 3 technical_support,
    # 4 sales, 5 cancel, 6 account_update, 0 agent.
    _prompt(
        "menu",
        en=(
            "For invoices and payments, press 1. For orders and deliveries, press 2. "
            "For technical support, press 3. For sales, press 4. "
            "To cancel a contract or an order, press 5. "
            "To change your address or your details, press 6. "
            "To speak to an operator, press 0."
        ),
        it=(
            "Per fatture e pagamenti, prema 1. Per ordini e spedizioni, prema 2. "
            "Per l'assistenza tecnica, prema 3. Per le vendite, prema 4. "
            "Per disdire un contratto o annullare un ordine, prema 5. "
            "Per cambiare indirizzo o dati personali, prema 6. "
            "Per parlare con un operatore, prema 0."
        ),
    ),
    # Self-service: this, then the amount (say_number), then "euro".
    _prompt(
        "invoice-overdue",
        en="You have an overdue invoice. The amount due is",
        it="Risulta una fattura scaduta. L'importo da pagare è di",
    ),
    _prompt("euro", en="euros.", it="euro."),
    # After the amount: 1 goes on to an agent; anything else hears goodbye and hangs up.
    _prompt(
        "press-1-for-agent",
        en="To speak to an agent about it, press 1.",
        it="Per parlarne con un operatore, prema 1.",
    ),
    # Played, then hang-up, when a callback is registered: the caller pressed * in the queue,
    # or no agent could take the call and the queue offers callbacks.
    _prompt(
        "callback-confirmed",
        en=(
            "Thank you. We will call you back on the number you are calling from, "
            "as soon as an agent is free. Goodbye."
        ),
        it=(
            "Grazie. La richiameremo al numero da cui sta chiamando "
            "appena un operatore sarà libero. Arrivederci."
        ),
    ),
    # After the first position and wait announcement; * keeps the caller's place.
    _prompt(
        "press-star-for-callback",
        en=(
            "If you would rather be called back, press star at any time. "
            "You will keep your place in the queue."
        ),
        it=(
            "Se preferisce essere richiamato, prema asterisco in qualsiasi momento. "
            "Manterrà il suo posto in coda."
        ),
    ),
    # Refused without a callback (closed, nobody logged in, queue full), then hang-up.
    _prompt(
        "no-agents",
        en="We are sorry, no agent can take your call right now. Please call again later.",
        it=(
            "Siamo spiacenti, al momento nessun operatore può rispondere. "
            "La preghiamo di richiamare più tardi."
        ),
    ),
    # Amounts (ivr/flow/say.py amount_parts): Asterisk says the numbers, these the units,
    # agreeing with the count ("un euro", not Asterisk's "uno euro").
    _prompt("euro-one", en="one euro", it="un euro"),
    _prompt("and", en="and", it="e"),
    _prompt("cent-one", en="one cent.", it="un centesimo."),
    _prompt("cents", en="cents.", it="centesimi."),
    # Post-call survey (a flow's `survey` step): after the agent hung up; one key, 1 to 5.
    _prompt(
        "survey",
        en="Please rate the call you just had, from 1, very poor, to 5, excellent.",
        it="Valuti la chiamata appena conclusa, da 1, pessima, a 5, ottima.",
    ),
    _prompt("survey-invalid", en="Please press a key from 1 to 5.", it="Prema un tasto da 1 a 5."),
    _prompt(
        "survey-thanks",
        en="Thank you for your rating. Goodbye.",
        it="Grazie per la sua valutazione. Arrivederci.",
    ),
    # Outside a flow's business hours (its `closed` step), then hang-up or voicemail.
    _prompt(
        "closed",
        en="Our offices are closed now. Please call again during our opening hours.",
        it="I nostri uffici sono chiusi. La preghiamo di richiamare negli orari di apertura.",
    ),
    # A language step's offer, in the other language: each caller hears how to switch.
    _prompt("other-language", en="Per l'italiano, prema 9.", it="For English, press 9."),
)


class PromptError(Exception):
    """A prompt could not be rendered (a tool is missing or failed); the message says which."""


@dataclass(frozen=True, slots=True)
class RenderReport:
    rendered: tuple[Path, ...]
    up_to_date: tuple[Path, ...]


def _espeak_command(voice: str, text: str, out: Path) -> list[str]:
    return ["espeak-ng", "-v", voice, "-s", str(SPEED_WPM), "-w", str(out), "--", text]


def _sox_command(source: Path, out: Path) -> list[str]:
    # -D: no dither, so the same text always gives the same bytes.
    return [
        "sox",
        "-D",
        str(source),
        "-r",
        str(SAMPLE_RATE_HZ),
        "-c",
        "1",
        "-b",
        "16",
        "-e",
        "signed-integer",
        str(out),
        "norm",
        str(PEAK_DBFS),
    ]


def digest(voice: str, text: str) -> str:
    """What a rendered file depends on: the text, the voice and both commands (the recipe)."""
    recipe = _espeak_command(voice, text, Path("in")) + _sox_command(Path("in"), Path("out"))
    return hashlib.sha256("\0".join(recipe).encode()).hexdigest()


def output_path(out_dir: Path, language: str, prompt: Prompt) -> Path:
    """`<out_dir>/<language>/<name>.wav`, where Asterisk looks for sound `<name>`."""
    return out_dir / language / f"{prompt.name}.wav"


def check_tools() -> None:
    """Raise PromptError naming each missing program and the Debian package providing it."""
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        raise PromptError(
            f"{' and '.join(missing)} not found on PATH: install the Debian package(s) "
            f"{' '.join(missing)} (scripts/prepare-machine.sh does)"
        )


def _run(command: Sequence[str]) -> None:
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=RENDER_TIMEOUT_S)
    except FileNotFoundError as exc:
        raise PromptError(
            f"{command[0]} not found: install the Debian package {command[0]}"
        ) from exc
    except subprocess.CalledProcessError as exc:
        stderr = exc.stderr.decode(errors="replace").strip()
        raise PromptError(f"{command[0]} failed (exit {exc.returncode}): {stderr}") from exc
    except subprocess.TimeoutExpired as exc:
        raise PromptError(f"{command[0]} took over {RENDER_TIMEOUT_S:.0f}s") from exc


def render_one(voice: str, text: str, wav: Path) -> None:
    """Speak `text` into `wav` (8 kHz mono 16-bit PCM), replacing it atomically."""
    wav.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".prompt-", dir=wav.parent) as tmp:
        spoken = Path(tmp) / "espeak.wav"
        final = Path(tmp) / "out.wav"
        _run(_espeak_command(voice, text, spoken))
        _run(_sox_command(spoken, final))
        os.replace(final, wav)


def render(
    out_dir: Path,
    languages: Iterable[str] = LANGUAGES,
    prompts: Iterable[Prompt] = PROMPTS,
) -> RenderReport:
    """Render every prompt in every language under `out_dir`, skipping up-to-date files."""
    rendered: list[Path] = []
    current: list[Path] = []
    tools_checked = False
    for language in languages:
        if language not in VOICES:
            raise PromptError(f"no voice for language {language!r} (known: {', '.join(VOICES)})")
        for prompt in prompts:
            text = prompt.text.get(language)
            if not text:
                raise PromptError(f"{prompt.name} has no {language!r} text")
            wav = output_path(out_dir, language, prompt)
            sidecar = wav.with_name(wav.name + ".sha256")
            want = digest(VOICES[language], text)
            if wav.is_file() and sidecar.is_file() and sidecar.read_text().strip() == want:
                current.append(wav)
                continue
            if not tools_checked:
                check_tools()
                tools_checked = True
            render_one(VOICES[language], text, wav)
            sidecar.write_text(want + "\n")
            rendered.append(wav)
    return RenderReport(rendered=tuple(rendered), up_to_date=tuple(current))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m centralino.prompts",
        description="Render the product's own prompts to <out>/<lang>/centralino/<name>.wav.",
    )
    parser.add_argument("--out", type=Path, required=True, help="sounds folder, e.g. build/sounds")
    parser.add_argument(
        "--lang",
        default=",".join(LANGUAGES),
        help=f"comma-separated languages (default {','.join(LANGUAGES)})",
    )
    args = parser.parse_args(argv)
    languages = [part.strip() for part in args.lang.split(",") if part.strip()]
    unknown = [lang for lang in languages if lang not in VOICES]
    if not languages or unknown:
        parser.error(f"--lang: choose among {', '.join(LANGUAGES)} (got {args.lang!r})")
    try:
        report = render(args.out, languages)
    except PromptError as exc:
        print(f"prompts: {exc}", file=sys.stderr)
        return 1
    print(
        f"prompts: {len(report.rendered)} rendered, {len(report.up_to_date)} up to date "
        f"in {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
