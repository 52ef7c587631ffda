"""Reads `fixtures/real_dial.txt`: EXEC Dial inside FastAGI on a real Asterisk 22.10.1, with the
AMI events around it, one section per case (see the file's header for the format)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

FIXTURE: Final = Path(__file__).parent / "fixtures" / "real_dial.txt"
_CASE: Final = re.compile(r"^## case (\S+): ")
_LINE: Final = re.compile(r"^\[t=\s*(-?\d+\.\d+)\] (>>>|<<<|env|ami|#) ?(.*)$")


@dataclass(frozen=True, slots=True)
class AgiLine:
    t: float
    direction: str  # ">>>" sent by the FastAGI server, "<<<" sent by Asterisk
    data: bytes


@dataclass(frozen=True, slots=True)
class AmiLine:
    t: float
    event: str
    headers: dict[str, str]  # the selected headers the fixture kept

    @property
    def channel(self) -> str:
        return self.headers.get("Channel", "")


@dataclass(frozen=True, slots=True)
class Note:
    t: float
    text: str


@dataclass(frozen=True, slots=True)
class DialCase:
    name: str
    agi: tuple[AgiLine, ...]
    ami: tuple[AmiLine, ...]
    notes: tuple[Note, ...]
    env: dict[str, str]

    @property
    def caller(self) -> str:
        """The caller's channel (the Local ;1 half that ran AGI)."""
        return self.env["agi_channel"]

    def exchanges(self) -> list[tuple[bytes, tuple[bytes, ...]]]:
        """(command, lines Asterisk sent before the next command or the close)."""
        out: list[tuple[bytes, list[bytes]]] = []
        for line in self.agi:
            if line.direction == ">>>":
                out.append((line.data, []))
            else:
                out[-1][1].append(line.data)
        return [(command, tuple(replies)) for command, replies in out]

    def sent(self, prefix: bytes) -> AgiLine:
        return next(x for x in self.agi if x.direction == ">>>" and x.data.startswith(prefix))

    def reply_to(self, prefix: bytes) -> AgiLine:
        """The first line Asterisk sent after the command starting with `prefix`."""
        after = self.agi[self.agi.index(self.sent(prefix)) + 1 :]
        return next(x for x in after if x.direction == "<<<")

    def variable(self, name: str) -> bytes:
        """Asterisk's reply to `GET VARIABLE name` after the Dial."""
        command = f"GET VARIABLE {name}\n".encode()
        for sent, replies in self.exchanges():
            if sent == command:
                return next(r for r in replies if r != b"HANGUP\n")
        raise KeyError(name)

    def first(self, event: str, **match: str) -> AmiLine:
        return next(
            e
            for e in self.ami
            if e.event == event and all(e.headers.get(k) == v for k, v in match.items())
        )

    def note(self, text: str) -> Note:
        return next(n for n in self.notes if text in n.text)


def _parse(text: str) -> dict[str, DialCase]:
    cases: dict[str, DialCase] = {}
    name: str | None = None
    agi: list[AgiLine] = []
    ami: list[AmiLine] = []
    notes: list[Note] = []
    env: dict[str, str] = {}

    def close() -> None:
        if name is not None:
            cases[name] = DialCase(name, tuple(agi), tuple(ami), tuple(notes), dict(env))

    for raw in text.splitlines():
        header = _CASE.match(raw)
        if header is not None:
            close()
            name, agi, ami, notes, env = header[1], [], [], [], {}
            continue
        match = _LINE.match(raw)
        if match is None or name is None:
            continue
        t, kind, rest = float(match[1]), match[2], match[3]
        if kind in (">>>", "<<<"):
            data = ast.literal_eval(rest)
            assert isinstance(data, bytes)
            agi.append(AgiLine(t, kind, data))
        elif kind == "env":
            data = ast.literal_eval(rest)
            key, _, value = data.decode().rstrip("\n").partition(": ")
            env[key] = value
        elif kind == "ami":
            event, *pairs = rest.split(" | ")
            fields = dict(pair.partition(": ")[::2] for pair in pairs)
            ami.append(AmiLine(t, event, fields))
        else:
            notes.append(Note(t, rest))
    close()
    return cases


@cache
def load_cases() -> dict[str, DialCase]:
    return _parse(FIXTURE.read_text(encoding="utf-8"))
