"""A real Asterisk 22 for the test suite: found, extracted, configured from `asterisk_conf/` with
test-environment overrides only, started as a child process we own, and stopped.

What the overrides are (everything else is the project's own configuration, byte for byte):
- `asterisk.conf`: a plain `[directories]` section pointing at temporary directories;
- `manager.conf`: loopback bind and a free port; the secrets `#tryinclude`d from the temporary
  directory (written by the project's own `render-secrets.sh`) plus a test-only AMI user that
  drives calls;
- `pjsip.conf`: the transport bound to loopback on a free port; secrets from the temporary dir;
- `extensions.conf`: `[globals]` point at the test app (`CENTRALINO_HOST`, its ports) and at
  the fallback rules; three test-only contexts are appended (`[test-phones]`: agents' phones,
  `[test-inbound]`: the caller's network side, `[test-caller]`: the caller);
- `logger.conf`: also a `messages` file we can read back;
- sounds: Debian's recorded packs (English, Italian), music on hold, and the product's own
  prompts (`python -m centralino.prompts` when it exists, else espeak-ng + sox).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_SRC = REPO_ROOT / "asterisk_conf"
TARBALL_GLOB = "asterisk-*.tar.xz"
HOME_ENV = "CENTRALINO_ASTERISK_HOME"
# Where Debian's packages put the recorded prompts and the music on hold.
DEBIAN_SOUNDS = {
    "en": Path("/usr/share/asterisk/sounds/en_US_f_Allison"),
    "it": Path("/usr/share/asterisk/sounds/it_IT_m_Carlo"),
}
DEBIAN_MOH = Path("/usr/share/asterisk/moh")
# Starting takes ~2 s here; a slow CI box gets more.
BOOT_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
AMI_USER = "centralino"
DRIVER_USER = "test-driver"

# The test-only dialplan. Agents' phones are Local/<agent>@test-phones: the ;2 half runs this,
# rings for DB(phone/<agent>/ring) seconds (default 1), answers unless DB(phone/<agent>/answer)
# is "no", stays up DB(phone/<agent>/talk) seconds (default 3) and hangs up (the agent ends
# the call). The caller is an Originate of Local/<id>@test-caller into <DID>@test-inbound: the
# ;1 half (the caller's network side) sets language and caller id and enters the project's
# `[centralino-inbound]`; the ;2 half is the caller, who answers, optionally says something
# (Playback of TEST_SAYS) and stays on TEST_PATIENCE seconds before hanging up.
TEST_DIALPLAN = """
; ---- test-only contexts (tests/real_asterisk/harness.py) ----------------------------------
[test-phones]
exten => _[a-z].,1,NoOp(Test phone ${EXTEN} rings)
 same => n,Set(RING=1)
 same => n,Set(TALK=3)
 same => n,Set(ANSWERS=yes)
 same => n,Set(HAVE=${DB_EXISTS(phone/${EXTEN}/ring)})
 same => n,ExecIf($[${HAVE}]?Set(RING=${DB_RESULT}))
 same => n,Set(HAVE=${DB_EXISTS(phone/${EXTEN}/talk)})
 same => n,ExecIf($[${HAVE}]?Set(TALK=${DB_RESULT}))
 same => n,Set(HAVE=${DB_EXISTS(phone/${EXTEN}/answer)})
 same => n,ExecIf($[${HAVE}]?Set(ANSWERS=${DB_RESULT}))
 same => n,Ringing()
 same => n,Wait(${RING})
 same => n,GotoIf($["${ANSWERS}" != "yes"]?noanswer)
 same => n,Answer()
 same => n,Wait(${TALK})
 same => n,Hangup()
 same => n(noanswer),Wait(3600)
 same => n,Hangup()

[test-inbound]
exten => _[+0-9].,1,NoOp(Test call ${TEST_CALL} to ${EXTEN})
 same => n,ExecIf($["${TEST_LANG}" != ""]?Set(CHANNEL(language)=${TEST_LANG}))
 same => n,ExecIf($["${TEST_CALLERID}" != ""]?Set(CALLERID(all)=${TEST_CALLERID}))
 same => n,Set(TO_CONTEXT=${IF($["${TEST_CONTEXT}" = ""]?centralino-inbound:${TEST_CONTEXT})})
 same => n,Goto(${TO_CONTEXT},${IF($["${TEST_EXTEN}" = ""]?${EXTEN}:${TEST_EXTEN})},1)

[test-caller]
exten => _[a-z0-9].,1,NoOp(Test caller ${EXTEN})
 same => n,Answer()
 same => n,ExecIf($["${TEST_SAYS}" != ""]?Playback(${TEST_SAYS}))
 same => n,Wait(${IF($["${TEST_PATIENCE}" = ""]?60:${TEST_PATIENCE})})
 same => n,Hangup()

; AudioSocket straight from the dialplan, as [centralino-audiosocket] does, with a fresh uuid.
[test-audiosocket]
exten => _[+0-9].,1,Set(AUDIOSOCKET_UUID=${TEST_AUDIOSOCKET_UUID})
 same => n,Goto(centralino-audiosocket,s,1)
"""


class AsteriskUnavailable(Exception):
    """No Asterisk to test against here; the message is the one-line reason."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def locate_asterisk(environ: Mapping[str, str], *, repo_root: Path = REPO_ROOT) -> Path:
    """An extracted tree (holding sbin/asterisk) or a tarball; raises AsteriskUnavailable."""
    home = environ.get(HOME_ENV)
    if home:
        path = Path(home)
        if (path / "sbin" / "asterisk").is_file():
            return path
        tarballs = sorted(path.glob(TARBALL_GLOB)) if path.is_dir() else []
        if tarballs:
            return tarballs[-1]
        raise AsteriskUnavailable(
            f"{HOME_ENV}={home} holds neither sbin/asterisk nor {TARBALL_GLOB}"
        )
    shared = repo_root.parent / "shared" / "asterisk"
    tarballs = sorted(shared.glob(TARBALL_GLOB))
    if tarballs:
        return tarballs[-1]
    raise AsteriskUnavailable(f"no {TARBALL_GLOB} in {shared} and {HOME_ENV} is not set")


def asterisk_tree(source: Path, workdir: Path) -> Path:
    """`source` itself if it is a tree, else the tarball extracted under `workdir`."""
    if (source / "sbin" / "asterisk").is_file():
        return source
    with tarfile.open(source) as archive:
        if hasattr(tarfile, "tar_filter"):
            archive.extractall(workdir, filter="tar")
        else:  # Python < 3.11.4 (Debian 12's 3.11.2) has no filters; the tarball is ours
            archive.extractall(workdir)
    trees = [p.parent.parent for p in workdir.glob("*/sbin/asterisk")]
    if len(trees) != 1:
        raise AsteriskUnavailable(f"{source.name}: expected one */sbin/asterisk, found {trees}")
    return trees[0]


# ---- rendering the configuration --------------------------------------------------------------

_SECTION = re.compile(r"^\s*\[([^\]]+)\]")


def set_in_section(text: str, section: str, key: str, value: str) -> str:
    """`key = value` inside `[section]` (its header may carry `(...)`), replacing every line
    that sets `key` there, or added right after the header."""
    out: list[str] = []
    inside = False
    done = False
    for line in text.splitlines():
        header = _SECTION.match(line)
        if header:
            if inside and not done:
                out.append(f"{key} = {value}")
                done = True
            inside = header[1].strip() == section
            out.append(line)
            continue
        if inside and re.match(rf"^\s*{re.escape(key)}\s*=>?", line):
            if not done:
                out.append(f"{key} = {value}")
                done = True
            continue
        out.append(line)
    if inside and not done:
        out.append(f"{key} = {value}")
        done = True
    if not done:
        raise ValueError(f"no [{section}] section to set {key} in")
    return "\n".join(out) + "\n"


def drop_section(text: str, section: str) -> str:
    """The text without `[section]` (template or not) and its lines."""
    out: list[str] = []
    skipping = False
    for line in text.splitlines():
        header = _SECTION.match(line)
        if header:
            skipping = header[1].strip() == section
        if not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


@dataclass(frozen=True, slots=True)
class AsteriskLayout:
    """Where a rendered Asterisk lives and how to reach it."""

    tree: Path
    base: Path
    etc: Path
    data: Path
    log: Path
    run: Path
    agi_bin: Path
    ami_port: int
    sip_port: int
    agi_port: int
    audiosocket_port: int
    ami_secret: str
    driver_secret: str

    @property
    def asterisk_conf(self) -> Path:
        return self.etc / "asterisk.conf"

    @property
    def messages_log(self) -> Path:
        return self.log / "messages.log"

    @property
    def console_log(self) -> Path:
        return self.base / "console.log"


def render(
    *,
    tree: Path,
    base: Path,
    ami_port: int,
    sip_port: int,
    agi_port: int,
    audiosocket_port: int,
    ami_secret: str,
    driver_secret: str,
    python: str = sys.executable,
) -> AsteriskLayout:
    """Write a complete Asterisk configuration and data directory under `base`."""
    etc = base / "etc"
    dirs = {
        "astetcdir": etc,
        "astmoddir": tree / "lib" / "asterisk" / "modules",
        "astvarlibdir": base / "varlib",
        "astdbdir": base / "db",
        "astkeydir": base / "keys",
        "astdatadir": base / "data",
        "astagidir": base / "agi-bin",
        "astspooldir": base / "spool",
        "astrundir": base / "run",
        "astlogdir": base / "log",
        "astcachedir": base / "cache",
        "astsbindir": tree / "sbin",
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    secrets_dir = etc / "generated"
    secrets_dir.mkdir(exist_ok=True)
    for src in sorted(CONF_SRC.glob("*.conf")):
        shutil.copy(src, etc / src.name)

    # asterisk.conf: a plain [directories] section (the project's may be a `(!)` template).
    conf = drop_section((etc / "asterisk.conf").read_text(), "directories")
    directories = "\n".join(f"{k} => {v}" for k, v in dirs.items())
    (etc / "asterisk.conf").write_text(f"[directories]\n{directories}\n\n{conf}")

    # Secrets: what the container's entrypoint writes, by the project's own script, moved here.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CENTRALINO_SECRETS_DIR": str(secrets_dir),
        "CENTRALINO_AMI_SECRET": ami_secret,
    }
    subprocess.run(["sh", str(CONF_SRC / "render-secrets.sh")], env=env, check=True)
    with (secrets_dir / "manager_secrets.conf").open("a") as out:
        out.write(
            f"\n; test-only: the user the tests drive calls with\n[{DRIVER_USER}]\n"
            f"secret = {driver_secret}\ndeny = 0.0.0.0/0.0.0.0\n"
            "permit = 127.0.0.1/255.255.255.255\nread = all\nwrite = all\n"
        )
    for name in ("manager.conf", "pjsip.conf"):
        path = etc / name
        path.write_text(path.read_text().replace("/run/centralino/", f"{secrets_dir}/"))

    manager = (etc / "manager.conf").read_text()
    manager = set_in_section(manager, "general", "bindaddr", "127.0.0.1")
    manager = set_in_section(manager, "general", "port", str(ami_port))
    (etc / "manager.conf").write_text(manager)

    pjsip = set_in_section(
        (etc / "pjsip.conf").read_text(), "transport-udp", "bind", f"127.0.0.1:{sip_port}"
    )
    (etc / "pjsip.conf").write_text(pjsip)

    logger = set_in_section(
        (etc / "logger.conf").read_text(),
        "logfiles",
        "messages.log",
        "notice,warning,error,verbose",
    )
    (etc / "logger.conf").write_text(logger)

    # The fallback AGI script runs with the venv's python (Asterisk execs astagidir/<name>).
    agi_bin = dirs["astagidir"]
    wrapper = agi_bin / "fallback_queue.py"
    script = REPO_ROOT / "agi_scripts" / "fallback_queue.py"
    wrapper.write_text(f'#!/bin/sh\nexec "{python}" "{script}" "$@"\n')
    wrapper.chmod(0o755)

    extensions = (etc / "extensions.conf").read_text()
    for key, value in {
        "CENTRALINO_HOST": "127.0.0.1",
        "CENTRALINO_AGI_PORT": str(agi_port),
        "CENTRALINO_AUDIOSOCKET_PORT": str(audiosocket_port),
        "FALLBACK_CONF": str(etc / "centralino-fallback.conf"),
    }.items():
        extensions = set_in_section(extensions, "globals", key, value)
    (etc / "extensions.conf").write_text(extensions + TEST_DIALPLAN)

    _data_dir(tree, dirs["astdatadir"], python=python)
    return AsteriskLayout(
        tree=tree,
        base=base,
        etc=etc,
        data=dirs["astdatadir"],
        log=dirs["astlogdir"],
        run=dirs["astrundir"],
        agi_bin=agi_bin,
        ami_port=ami_port,
        sip_port=sip_port,
        agi_port=agi_port,
        audiosocket_port=audiosocket_port,
        ami_secret=ami_secret,
        driver_secret=driver_secret,
    )


def _data_dir(tree: Path, data: Path, *, python: str) -> None:
    """documentation/ (Asterisk refuses to start without it), sounds and music on hold."""
    (data / "documentation").symlink_to(tree / "var" / "lib" / "asterisk" / "documentation")
    if DEBIAN_MOH.is_dir():
        (data / "moh").symlink_to(DEBIAN_MOH)
    else:
        (data / "moh").mkdir()
    sounds = data / "sounds"
    for language, pack in DEBIAN_SOUNDS.items():
        target = sounds / language
        target.mkdir(parents=True)
        if pack.is_dir():
            # One link per entry, so the product's prompts can sit beside the recorded ones.
            for entry in pack.iterdir():
                (target / entry.name).symlink_to(entry)
    product_prompts(sounds, python=python)


def product_prompts(sounds: Path, *, python: str) -> None:
    """sounds/<lang>/centralino/*.wav, rendered by the product's own generator."""
    subprocess.run(
        [python, "-m", "centralino.prompts", "--out", str(sounds)],
        check=True,
        cwd=REPO_ROOT,
        capture_output=True,
    )


# ---- a private Redis ---------------------------------------------------------------------------


@contextlib.contextmanager
def private_redis(binary: str, workdir: Path) -> Iterator[str]:
    """redis-server on a free loopback port, without persistence, stopped on exit."""
    port = free_port()
    with (workdir / "redis.log").open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "redis-server did not start: " + (workdir / "redis.log").read_text()
                    ) from None
            time.sleep(0.05)  # a child's port that is not open yet
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- the process ------------------------------------------------------------------------------


class AsteriskProcess:
    """Asterisk in the foreground as our child: `start()`, `cli()`, `stop()`."""

    def __init__(self, layout: AsteriskLayout) -> None:
        self.layout = layout
        self._proc: subprocess.Popen[bytes] | None = None
        self.boot_s: float | None = None

    @property
    def binary(self) -> Path:
        return self.layout.tree / "sbin" / "asterisk"

    def _env(self) -> dict[str, str]:
        return {**os.environ, "LD_LIBRARY_PATH": str(self.layout.tree / "lib")}

    def start(self) -> None:
        started = time.monotonic()
        with self.layout.console_log.open("ab") as console:
            self._proc = subprocess.Popen(
                [str(self.binary), "-f", "-U", "root", "-n", "-C", str(self.layout.asterisk_conf)],
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C on pytest must not reach it before stop()
            )
        deadline = started + BOOT_TIMEOUT_S
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"Asterisk exited with {self._proc.returncode} while starting:\n"
                    + self.log_tail()
                )
            result = self._rx("core waitfullybooted", timeout_s=10.0, check=False)
            if result.returncode == 0 and "fully booted" in result.stdout.lower():
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("Asterisk did not boot in time:\n" + self.log_tail())
            time.sleep(0.1)  # polling a child's socket that does not exist yet
        self.boot_s = time.monotonic() - started

    def _rx(
        self, command: str, *, timeout_s: float, check: bool
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), "-C", str(self.layout.asterisk_conf), "-rx", command],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=check,
        )

    def cli(self, command: str, *, timeout_s: float = 10.0) -> str:
        """Run a CLI command on the running server; its output."""
        return self._rx(command, timeout_s=timeout_s, check=True).stdout

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                self._rx("core stop now", timeout_s=STOP_TIMEOUT_S, check=False)
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def log_tail(self, lines: int = 60) -> str:
        parts = []
        for path in (self.layout.messages_log, self.layout.console_log):
            if path.is_file():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path} (last {len(text)} lines)\n" + "\n".join(text))
        return "\n".join(parts)

    def log_lines_since(self, offset: int) -> list[str]:
        """messages.log from byte `offset` on (see `log_size`)."""
        with self.layout.messages_log.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace").splitlines()

    def log_size(self) -> int:
        path = self.layout.messages_log
        return path.stat().st_size if path.is_file() else 0
