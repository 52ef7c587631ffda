"""Call flows from the settings and the flows directory: loaded, checked against the rest of
the configuration and the sounds on disk, and reloaded without a restart.

Flows come from `[flows.<name>]` tables in the settings file and from `<ivr.flows_dir>/
<name>.toml` files (one flow each; a file may not redefine a flow of the settings file). The
built-in `default` flow (ivr/flow/default.py) is used unless one of them defines `default`.

Reload: a `FlowStore` watches the flows directory (names, sizes and modification times, read
off the event loop every `ivr.reload_check_s`) and SIGHUP asks for a reload at once. A changed
set of flows is checked exactly as at start; if it has problems they are logged and the flows
in force stay, so a typo in a file never takes the IVR down. Calls keep the flow they
started with. Flows written in the settings file itself change with a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from centralino.settings import Settings
from ivr.flow.check import prompt_problems, reference_problems
from ivr.flow.default import DEFAULT_FLOW_NAME, default_flow
from ivr.flow.document import parse_flow
from ivr.flow.errors import FlowError
from ivr.flow.hooks import DEFAULT_HOOKS, Hooks
from ivr.flow.library import FlowLibrary
from ivr.flow.models import Flow
from ivr.intent import INTENTS

log = logging.getLogger(__name__)

# A flow file is a person's document: anything larger is a mistake (a recording, a dump).
MAX_FLOW_FILE_BYTES = 256 * 1024
# Sidecars and files `make prompts` writes next to sounds are not sounds.
_NOT_SOUNDS = (".sha256",)


def sounds_lookup(sounds: Mapping[str, list[Path]]) -> Callable[[str, str], bool]:
    """`exists(language, sound)`: any `<dir>/<sound>.<format>` in the language's directories
    (Asterisk picks the format; a directory per language as Debian's packs ship them)."""

    def exists(language: str, sound: str) -> bool:
        for directory in sounds.get(language, ()):
            candidate = directory / sound
            parent = candidate.parent
            if not parent.is_dir():
                continue
            for path in parent.glob(f"{candidate.name}.*"):
                if path.is_file() and not path.name.endswith(_NOT_SOUNDS):
                    return True
        return False

    return exists


def read_flow_files(directory: Path) -> dict[str, dict[str, Any]]:
    """Every `<name>.toml` document in `directory`; raises FlowError naming each bad file."""
    documents: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    if not directory.is_dir():
        raise FlowError([f"ivr.flows_dir {str(directory)!r} is not a directory"])
    for path in sorted(directory.glob("*.toml")):
        name = path.stem
        try:
            if path.stat().st_size > MAX_FLOW_FILE_BYTES:
                problems.append(f"flow {name!r} ({path.name}): over {MAX_FLOW_FILE_BYTES} bytes")
                continue
            documents[name] = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            problems.append(f"flow {name!r} ({path.name}): not valid TOML: {exc}")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"flow {name!r} ({path.name}): cannot be read: {exc}")
    if problems:
        raise FlowError(problems)
    return documents


def build_library(
    settings: Settings,
    *,
    hooks: Hooks = DEFAULT_HOOKS,
    files: Mapping[str, dict[str, Any]] | None = None,
    exists: Callable[[str, str], bool] | None = None,
) -> FlowLibrary:
    """Parse and check every flow; raises FlowError listing every problem (flow, step)."""
    if files is None:
        files = read_flow_files(settings.ivr.flows_dir) if settings.ivr.flows_dir else {}
    problems: list[str] = []
    flows: dict[str, Flow] = {DEFAULT_FLOW_NAME: default_flow()}
    for name in sorted(set(files) & set(settings.flows)):
        problems.append(f"flow {name!r}: defined in the settings file and in ivr.flows_dir")
    for name, document in {**settings.flows, **files}.items():
        try:
            flows[name] = parse_flow(name, document)
        except FlowError as exc:
            problems += exc.problems
    if not problems:
        problems += reference_problems(
            flows,
            queues=[q.name for q in settings.acd.queues],
            intents=INTENTS,
            hooks=hooks,
        )
    if not problems and settings.ivr.sounds:
        problems += prompt_problems(
            flows,
            hooks=hooks,
            exists=exists or sounds_lookup(settings.ivr.sounds),
            default_languages=settings.ivr.languages,
        )
    if problems:
        raise FlowError(problems)
    return FlowLibrary.of(flows)


def _signature(directory: Path | None) -> tuple[tuple[str, int, int], ...]:
    if directory is None or not directory.is_dir():
        return ()
    out = []
    for path in sorted(directory.glob("*.toml")):
        with contextlib.suppress(FileNotFoundError):  # removed while we looked
            stat = path.stat()
            out.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(out)


class FlowStore:
    """The flows in force, swapped whole by a reload (see the module's note)."""

    def __init__(self, *, settings: Settings, hooks: Hooks = DEFAULT_HOOKS) -> None:
        self.settings = settings
        self.hooks = hooks
        self.reloads = 0
        self.failed_reloads = 0
        self._wake = asyncio.Event()
        self._signature = _signature(settings.ivr.flows_dir)
        self._library = build_library(settings, hooks=hooks)  # at start, problems are fatal
        if not settings.ivr.sounds:
            log.warning("ivr.sounds is empty: the prompts flows name are not checked on disk")

    @property
    def library(self) -> FlowLibrary:
        return self._library

    def request_reload(self) -> None:
        """SIGHUP: reload now (on the watcher's next turn)."""
        self._wake.set()

    async def reload(self) -> bool:
        """Read and check the flows again; True if the new ones are in force."""
        try:
            library = await asyncio.to_thread(build_library, self.settings, hooks=self.hooks)
        except FlowError as exc:
            self.failed_reloads += 1
            log.error(
                "flows not reloaded, the ones in force stay: %s", "; ".join(exc.problems[:20])
            )
            return False
        self._library = library
        self.reloads += 1
        log.info("flows reloaded: %s", ", ".join(sorted(library.flows)))
        return True

    async def watch(self) -> None:
        """Until cancelled: reload when the flows directory changes or on request."""
        directory = self.settings.ivr.flows_dir
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.ivr.reload_check_s):
                    await self._wake.wait()
            requested = self._wake.is_set()
            self._wake.clear()
            signature = await asyncio.to_thread(_signature, directory)
            if requested or signature != self._signature:
                self._signature = signature
                await self.reload()
