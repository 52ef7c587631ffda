"""`centralino intent classify`: the command's contract, through a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from centralino.intent_cli import MAX_LINE_BYTES


def _classify(stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENTRALINO_")}
    return subprocess.run(
        [sys.executable, "-m", "centralino.cli", "intent", "classify"],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_given_utterances_then_one_json_object_per_line_in_order() -> None:
    lines = [
        "where is my parcel",
        "vorrei disdire il contratto",
        "ho cambiato indirizzo e-mail, può aggiornarlo?",
        "I'd like to speak to an operator",
    ]
    done = _classify("\n".join(lines).encode() + b"\n")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]
    assert [list(r) for r in rows] == [["text", "intent", "confidence"]] * 4
    assert [r["text"] for r in rows] == lines  # UTF-8 kept as said, order kept
    assert [r["intent"] for r in rows] == ["order_status", "cancel", "account_update", "agent"]
    assert all(0.0 < r["confidence"] <= 1.0 for r in rows)


def test_given_blank_lines_then_each_gets_a_null_answer_in_its_place() -> None:
    done = _classify(b"\n   \ninvoice payment\n\t\n")
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert rows[0] == rows[1] == rows[3] == {"text": "", "intent": None, "confidence": None}
    assert rows[2]["intent"] == "billing"
    assert len(rows) == 4


def test_given_bad_input_then_every_line_still_gets_an_answer() -> None:
    huge = b"fattura " * (MAX_LINE_BYTES // 4)  # twice the limit, one line
    stdin = b"\xff\xfe not utf-8 fattura\r\n" + huge + b"\n" + b"last line without newline"
    done = _classify(stdin)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]
    assert len(rows) == 3
    assert rows[0]["text"] == "\ufffd\ufffd not utf-8 fattura"  # the CR of CRLF is dropped
    assert rows[0]["intent"] == "billing"
    assert len(rows[1]["text"].encode()) == MAX_LINE_BYTES
    assert b"longer than" in done.stderr
    assert rows[2]["text"] == "last line without newline"


def test_given_empty_input_then_no_output_and_success() -> None:
    done = _classify(b"")
    assert done.returncode == 0 and done.stdout == b""
