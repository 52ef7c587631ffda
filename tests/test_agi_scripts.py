"""agi_scripts/fallback_queue.py run as Asterisk runs it: a process fed a recorded environment."""

from __future__ import annotations

import ast
import io
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agi_scripts.fallback_queue import (
    BUILTIN_DEFAULT_QUEUE,
    DEFAULT_CONFIG,
    FallbackRules,
    choose_queue,
    load_rules,
    priority_of,
)
from centralino.simulator.transcripts import load_transcripts

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "agi_scripts" / "fallback_queue.py"
RULES = ROOT / "asterisk_conf" / "centralino-fallback.conf"
# The environment Asterisk 22.10.1 sent (fastagi-session.txt, exact bytes, blank line included).
RECORDED_ENV = load_transcripts("fastagi-session.txt")[0].environment


class AgiProcess:
    """The script as a child process; we play Asterisk on its stdin/stdout. `python_path`
    (PYTHONPATH) lets a test hide pyst2."""

    def __init__(
        self, *args: str, env: bytes = RECORDED_ENV, python_path: str | None = None
    ) -> None:
        environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        if python_path is not None:
            environ["PYTHONPATH"] = python_path
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=environ,
        )
        self.commands: list[bytes] = []
        self.send(env)

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def command(self) -> bytes:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.commands.append(line)
        return line

    def finish(self) -> tuple[int, bytes, bytes]:
        """Close stdin (Asterisk ends the session) and collect what is left."""
        out, err = self.proc.communicate(timeout=10)
        return self.proc.returncode, out, err


def run_dialogue(
    replies: dict[bytes, bytes],
    *args: str,
    env: bytes = RECORDED_ENV,
    python_path: str | None = None,
) -> tuple[list[bytes], int, bytes]:
    """Answer each command by its first word(s); return the commands, exit code and stderr."""
    agi = AgiProcess(*args, env=env, python_path=python_path)
    while True:
        line = agi.command()
        if not line:
            break
        reply = next((r for prefix, r in replies.items() if line.startswith(prefix)), None)
        if reply is None:
            break
        agi.send(reply)
    code, rest, err = agi.finish()
    assert rest == b""
    return [c for c in agi.commands if c], code, err


OK_REPLIES = {
    b"GET VARIABLE": b"200 result=0\n",
    b"SET VARIABLE": b"200 result=1\n",
    b"VERBOSE": b"200 result=1\n",
}


def test_given_recorded_env_and_known_vip_caller_then_vip_queue_is_set() -> None:
    commands, code, _ = run_dialogue(OK_REPLIES, str(RULES))
    assert code == 0
    assert commands == [
        b'GET VARIABLE "CENTRALINO_PRIORITY"\n',
        b'SET VARIABLE FALLBACK_QUEUE "fallback-vip"\n',
        b'SET VARIABLE FALLBACK_PRIORITY "vip"\n',
        b'VERBOSE "centralino fallback: priority vip -> queue fallback-vip" 2\n',
    ]


def test_given_priority_variable_from_the_app_then_it_wins_over_the_caller_list() -> None:
    replies = {**OK_REPLIES, b"GET VARIABLE": b"200 result=1 (standard)\n"}
    commands, code, _ = run_dialogue(replies, str(RULES))
    assert code == 0
    assert commands[1] == b'SET VARIABLE FALLBACK_QUEUE "fallback-standard"\n'
    assert commands[2] == b'SET VARIABLE FALLBACK_PRIORITY "standard"\n'


def _env_with_caller(number: str) -> bytes:
    return RECORDED_ENV.replace(
        b"agi_callerid: +390212345678\n", f"agi_callerid: {number}\n".encode()
    )


@pytest.mark.parametrize(
    ("caller", "queue", "priority"),
    [
        ("+393351234567", "fallback-standard", "standard"),  # prefix +39335*
        ("+4930123456", "fallback-standard", "none"),  # unknown caller: default
        ("unknown", "fallback-standard", "none"),  # withheld number
    ],
)
def test_given_caller_then_queue_by_prefix_or_default(
    caller: str, queue: str, priority: str
) -> None:
    commands, code, _ = run_dialogue(OK_REPLIES, str(RULES), env=_env_with_caller(caller))
    assert code == 0
    assert commands[1] == f'SET VARIABLE FALLBACK_QUEUE "{queue}"\n'.encode()
    assert commands[2] == f'SET VARIABLE FALLBACK_PRIORITY "{priority}"\n'.encode()


@pytest.mark.parametrize(
    "content",
    [
        None,  # missing file
        b"\xff\xfe\x00garbage\x00",  # binary
        b"default_queue = x\n[queues\nvip=",  # no section header, broken header
        b"[general]\ndefault_queue = bad queue;name\n[queues]\nvip = x,y\n[callers]\n"
        b"+390212345678 = vip\n",  # names that would inject into the dialplan
    ],
)
def test_given_missing_or_garbled_rules_then_default_queue_and_exit_0(
    tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "fallback.conf"
    if content is not None:
        path.write_bytes(content)
    commands, code, err = run_dialogue(OK_REPLIES, str(path))
    assert code == 0
    assert commands[1] == f'SET VARIABLE FALLBACK_QUEUE "{BUILTIN_DEFAULT_QUEUE}"\n'.encode()
    if content is None or b"[queues\n" in content or b"\xff" in content:
        assert b"fallback_queue: cannot use" in err


def test_given_no_argument_then_the_default_path_is_tried() -> None:
    commands, code, err = run_dialogue(OK_REPLIES)
    assert code == 0
    assert commands[1].startswith(b"SET VARIABLE FALLBACK_QUEUE ")
    if not Path(DEFAULT_CONFIG).exists():  # true on development machines
        assert f"cannot use {DEFAULT_CONFIG}".encode() in err
        assert commands[1] == f'SET VARIABLE FALLBACK_QUEUE "{BUILTIN_DEFAULT_QUEUE}"\n'.encode()


@pytest.mark.parametrize(
    "reply",
    [
        b"200 result=-1\n",  # channel gone while the command ran
        b"HANGUP\n",  # the unsolicited hangup line
        b"511 Command Not Permitted on a dead channel or intercept routine\n",
    ],
)
def test_given_hangup_during_the_script_then_it_stops_quietly(reply: bytes) -> None:
    commands, code, err = run_dialogue({b"GET VARIABLE": reply}, str(RULES))
    assert code == 0
    assert commands == [b'GET VARIABLE "CENTRALINO_PRIORITY"\n']
    assert b"fallback_queue: stopped" in err


def test_given_asterisk_closes_mid_environment_then_exit_0_without_commands() -> None:
    agi = AgiProcess(str(RULES), env=RECORDED_ENV[:200])
    code, out, err = agi.finish()
    assert code == 0
    assert out == b""  # Asterisk is gone: nothing to ask, the dialplan's default stands
    assert err == b"fallback_queue: stopped: Asterisk closed the pipe\n"


# ---- with and without pyst2; the caller's data never on stderr (Asterisk's console) ----------

# What identifies the recorded caller: never on stderr, which Asterisk shows on its console.
CALLER_NUMBER = b"+390212345678"
CALLER_NAME = re.search(rb"^agi_calleridname: (.+)$", RECORDED_ENV, re.M)


@pytest.fixture(params=["pyst2 installed", "pyst2 missing"])
def python_path(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None: this interpreter as it is (pyst2 importable); else a PYTHONPATH whose `asterisk`
    package shadows pyst2's and fails to import, as on an image without pyst2."""
    if request.param == "pyst2 installed":
        pytest.importorskip("asterisk.agi")
        return None
    shadow = tmp_path / "asterisk"
    shadow.mkdir()
    (shadow / "__init__.py").write_text('raise ImportError("pyst2 is not installed here")\n')
    probe = subprocess.run(
        [sys.executable, "-c", "import asterisk.agi"],
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        check=False,
    )
    assert probe.returncode != 0  # the shadow works
    return str(tmp_path)


def test_given_either_python_then_exit_0_the_queue_is_set_and_no_caller_data_is_logged(
    python_path: str | None,
) -> None:
    commands, code, err = run_dialogue(OK_REPLIES, str(RULES), python_path=python_path)
    assert code == 0
    assert b'SET VARIABLE FALLBACK_QUEUE "fallback-vip"\n' in commands
    assert err == b""  # nothing went wrong, nothing to say
    assert CALLER_NAME is not None


@pytest.mark.parametrize(
    ("replies", "env"),
    [
        (OK_REPLIES, RECORDED_ENV),
        ({b"GET VARIABLE": b"HANGUP\n"}, RECORDED_ENV),
        (
            {b"GET VARIABLE": b"200 result=1 (vip)\n", b"SET VARIABLE": b"200 result=-1\n"},
            RECORDED_ENV,
        ),
        (OK_REPLIES, b"garbage " + CALLER_NUMBER + b"\n\n"),  # not AGI at all
    ],
    ids=["routed", "hangup-line", "result-minus-1", "not-agi"],
)
def test_given_any_session_then_stderr_never_names_the_caller(
    python_path: str | None, replies: dict[bytes, bytes], env: bytes
) -> None:
    _, code, err = run_dialogue(replies, str(RULES), env=env, python_path=python_path)
    assert code == 0
    assert CALLER_NUMBER not in err
    assert CALLER_NAME is not None and CALLER_NAME.group(1) not in err
    assert b"Traceback" not in err
    assert all(line.startswith(b"fallback_queue: ") for line in err.splitlines()), err


def test_given_sighup_then_no_more_commands_and_exit_0(python_path: str | None) -> None:
    """Asterisk signals the channel's hangup with SIGHUP: stop at once, quietly, exit 0."""
    agi = AgiProcess(str(RULES), python_path=python_path)
    assert agi.command() == b'GET VARIABLE "CENTRALINO_PRIORITY"\n'
    agi.proc.send_signal(signal.SIGHUP)
    agi.send(b"200 result=0\n")
    code, out, err = agi.finish()
    assert code == 0
    assert out == b""
    assert err == b"fallback_queue: stopped: SIGHUP: the channel hung up\n"


def test_the_script_imports_nothing_but_the_standard_library() -> None:
    """Asterisk runs it with the image's python3: nothing of ours, and no pyst2 needed."""
    tree = ast.parse(SCRIPT.read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert imported <= sys.stdlib_module_names | {"__future__"}, imported


def test_rules_from_the_committed_file() -> None:
    rules = load_rules(str(RULES), log=io.StringIO())
    assert rules.default_queue == "fallback-standard"
    assert rules.queues == {"vip": "fallback-vip", "standard": "fallback-standard"}
    assert priority_of("+390212345678", rules) == "vip"


def test_longest_prefix_wins_and_exact_number_first() -> None:
    rules = FallbackRules(
        "q-default",
        {"gold": "q-gold", "silver": "q-silver"},
        {"+39*": "silver", "+3902*": "gold", "+390299": "silver"},
    )
    assert priority_of("+390212", rules) == "gold"
    assert priority_of("+3933", rules) == "silver"
    assert priority_of("+390299", rules) == "silver"
    assert priority_of("+44", rules) is None
    assert priority_of("", rules) is None
    assert choose_queue("gold", rules) == "q-gold"
    assert choose_queue("bronze", rules) == "q-default"
    assert choose_queue(None, rules) == "q-default"
    assert choose_queue("x", FallbackRules("d", {"x": 'evil",Hangup()'}, {})) == "d"
