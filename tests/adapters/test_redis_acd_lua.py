"""The ACD function library's Lua lints clean with luacheck (Debian's lua-check, installed by
scripts/prepare-machine.sh), configured by `lua/.luacheckrc` for what Redis provides."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from centralino.adapters.redis_acd import functions

LUA_DIR = Path(functions.__file__).parent / "lua"
CONFIG = LUA_DIR / ".luacheckrc"


def _luacheck(*files: Path) -> subprocess.CompletedProcess[str]:
    luacheck = shutil.which("luacheck")
    assert luacheck is not None, "luacheck is missing: apt-get install lua-check (make prepare)"
    return subprocess.run(
        [luacheck, "--no-color", "--codes", "--config", str(CONFIG), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_given_the_library_files_then_luacheck_finds_nothing() -> None:
    files = sorted(LUA_DIR.glob("*.lua"))
    assert files, f"no Lua files in {LUA_DIR}"
    result = _luacheck(*files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 warnings / 0 errors" in result.stdout


def test_given_a_mistake_redis_would_reject_then_luacheck_reports_it(tmp_path: Path) -> None:
    # The configuration must not silence what matters: an undefined global (Redis refuses to
    # create globals in scripts), a write to a prelude constant, an unused local.
    bad = tmp_path / "bad.lua"
    bad.write_text(
        "local unused = 1\n"
        "redis.register_function('f', function(_, args)\n"
        "  GRACE = 0\n"
        "  return undefined_helper(args[1])\n"
        "end)\n"
    )
    result = _luacheck(bad)
    assert result.returncode != 0
    assert "(W211)" in result.stdout  # unused variable
    assert "(W121)" in result.stdout  # setting read-only global GRACE
    assert "(W113)" in result.stdout  # accessing undefined variable


def test_given_the_prelude_then_every_constant_it_defines_is_known_to_luacheck() -> None:
    names = {
        name.strip()
        for line in re.findall(r"^local (.+?) =", functions.PRELUDE, flags=re.MULTILINE)
        for name in line.split(",")
    }
    assert names >= {"LEVEL_WEIGHT", "GRACE", "TRANS"}
    config = CONFIG.read_text()
    assert {n for n in names if f'"{n}"' not in config} == set()
