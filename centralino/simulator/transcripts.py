"""Load the recorded Asterisk transcripts (`../shared/asterisk-real/*.txt`) as byte fixtures.

Each FastAGI call in a transcript ends with a `#### Exact bytes (Python repr)` block: one
`<<< b'...'` (from Asterisk) or `>>> b'...'` (sent by the FastAGI server) line per wire line.
The folder is `$CENTRALINO_ASTERISK_REAL`, else `<repo>/../shared/asterisk-real`.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

ENV_VAR: Final = "CENTRALINO_ASTERISK_REAL"
_BLOCK_START: Final = "#### Exact bytes (Python repr)"
_SCENARIO: Final = re.compile(r"scenario '([^']+)'")
_LINE: Final = re.compile(r"^(<<<|>>>) (b'.*'|b\".*\")$")

Direction = Literal["<<<", ">>>"]


@dataclass(frozen=True, slots=True)
class WireLine:
    """One line on the wire: `<<<` came from Asterisk, `>>>` was sent by the FastAGI server."""

    direction: Direction
    data: bytes


@dataclass(frozen=True, slots=True)
class Transcript:
    """One recorded call: its scenario name and the exact bytes in order."""

    scenario: str
    lines: tuple[WireLine, ...]

    @property
    def from_asterisk(self) -> tuple[bytes, ...]:
        return tuple(line.data for line in self.lines if line.direction == "<<<")

    @property
    def from_server(self) -> tuple[bytes, ...]:
        return tuple(line.data for line in self.lines if line.direction == ">>>")

    @property
    def environment(self) -> bytes:
        """The environment block, blank line included."""
        out = bytearray()
        for line in self.lines:
            if line.direction != "<<<":
                break
            out += line.data
        return bytes(out)

    def exchanges(self) -> list[tuple[bytes | None, tuple[bytes, ...]]]:
        """After the environment: (command sent or None, lines Asterisk sent before the next
        command). The first entry may have no command (nothing precedes it)."""
        result: list[tuple[bytes | None, tuple[bytes, ...]]] = []
        lines = list(self.lines)
        i = 0
        while i < len(lines) and lines[i].direction == "<<<":
            i += 1
        command: bytes | None = None
        replies: list[bytes] = []
        started = False
        for line in lines[i:]:
            if line.direction == ">>>":
                if started:
                    result.append((command, tuple(replies)))
                command, replies, started = line.data, [], True
            else:
                replies.append(line.data)
        if started:
            result.append((command, tuple(replies)))
        return result


def transcripts_dir() -> Path:
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return Path(explicit)
    repo = Path(__file__).resolve().parents[2]
    return repo.parent / "shared" / "asterisk-real"


def load_transcripts(filename: str, *, folder: Path | None = None) -> list[Transcript]:
    """Every exact-bytes block of one file, in order (one per call/scenario)."""
    path = (folder or transcripts_dir()) / filename
    text = path.read_text(encoding="utf-8")
    result: list[Transcript] = []
    scenario = ""
    current: list[WireLine] | None = None
    for raw in text.splitlines():
        if raw.startswith(_BLOCK_START):
            current = []
            continue
        if current is not None:
            match = _LINE.match(raw)
            if match:
                direction: Direction = "<<<" if match.group(1) == "<<<" else ">>>"
                value = ast.literal_eval(match.group(2))
                if not isinstance(value, bytes):
                    raise ValueError(f"{path}: not a bytes literal: {raw!r}")
                current.append(WireLine(direction, value))
                continue
            if raw.strip() == "" and not current:
                continue
            result.append(Transcript(scenario, tuple(current)))
            current = None
        found = _SCENARIO.search(raw)
        if found and raw.startswith("#"):
            scenario = found.group(1)
    if current is not None:
        result.append(Transcript(scenario, tuple(current)))
    return result


def load_transcript(filename: str, scenario: str, *, folder: Path | None = None) -> Transcript:
    for transcript in load_transcripts(filename, folder=folder):
        if transcript.scenario == scenario:
            return transcript
    raise KeyError(f"{filename}: no scenario {scenario!r}")
