#!/usr/bin/env bash
# Make this Debian machine ready for `make test`: install what is missing, then make sure
# PostgreSQL answers on 127.0.0.1:5432 and Redis on 127.0.0.1:6379. `.ci/run` and `make test`
# both run it.
#
# Idempotent and quick when everything is present: only local checks (command -v, one
# dpkg-query), no apt and no network. `apt-get update` + `apt-get install` run only when
# something is missing; without root it prints exactly what to install and exits 1.
# It exports nothing: the test settings stay in .ci/run and tests/conftest.py.
set -euo pipefail

say() { echo "prepare-machine: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- Debian packages
missing=()

# The interpreter `make` builds .venv from, with venv/ensurepip and the headers C extensions
# compile against (python3-dev). Only asked while there is no .venv: starting Python costs
# more than all the other checks together.
if [ ! -x "$(dirname "$0")/../.venv/bin/python" ]; then
    if have python3 && python3 -I -S - <<'EOF' 2>/dev/null; then :; else missing+=(python3 python3-venv python3-dev); fi
import os, sysconfig
from importlib.util import find_spec
include = sysconfig.get_paths()["include"]
ok = find_spec("venv") and find_spec("ensurepip") and os.path.exists(f"{include}/Python.h")
raise SystemExit(not ok)
EOF
fi
have make || missing+=(make)
have gcc || missing+=(gcc)
have redis-server || missing+=(redis-server)
have redis-cli || missing+=(redis-tools)
have pg_ctlcluster && have pg_isready && have psql || missing+=(postgresql)
# page tests: tests/web/browser.py drives /usr/bin/chromium
have chromium || missing+=(chromium)
have chromedriver || missing+=(chromium-driver)
# product prompts (python -m centralino.prompts, `make prompts`)
have espeak-ng || missing+=(espeak-ng)
have sox || missing+=(sox)
# lints the ACD function library's Lua (tests/adapters/test_redis_acd_lua.py)
have luacheck || missing+=(lua-check)
# The real Asterisk suite (tests/real_asterisk, ../shared/asterisk): recorded prompts and music
# on hold, and the runtime libraries the prebuilt Asterisk links against (its README). Data
# and library packages have no command: one dpkg-query asks about them all.
pkgs=(
    asterisk-core-sounds-en-wav asterisk-core-sounds-it-wav asterisk-moh-opsound-wav
    libjansson4 libedit2 libxml2 libxslt1.1 libsqlite3-0 libcurl4 libpq5 libssl3 libuuid1 libicu72
)
installed=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${pkgs[@]}" 2>/dev/null || true)
for pkg in "${pkgs[@]}"; do
    grep -qx "ii  $pkg" <<<"$installed" || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] || ! have apt-get; then
        say "missing Debian packages: ${missing[*]}"
        say "install them with:  sudo apt-get install -y ${missing[*]}"
        exit 1
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# ---------------------------------------------------------------- PostgreSQL
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
wait_for() {  # wait_for SECONDS COMMAND...: poll every 0.2 s
    local tries=$(($1 * 5))
    shift
    for _ in $(seq 1 "$tries"); do "$@" && return 0; sleep 0.2; done
    return 1
}

if ! pg_up; then
    if [ "$(id -u)" -eq 0 ]; then
        ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
        # a package installed in a container may come without its cluster
        [ -d "/etc/postgresql/$ver/main" ] || pg_createcluster -p 5432 "$ver" main >/dev/null
        # The package gives its cluster the next free port when 5432 was taken at install
        # time; nothing answers there now, so the test cluster takes it.
        port=$(pg_conftool -s "$ver" main show port 2>/dev/null || echo 5432)
        if [ "$port" != 5432 ]; then
            say "moving PostgreSQL $ver/main from port $port to 5432"
            pg_ctlcluster --skip-systemctl-redirect "$ver" main stop 2>/dev/null || true
            pg_conftool "$ver" main set port 5432
        fi
        say "starting PostgreSQL $ver"
        pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
        wait_for 30 pg_up || say "PostgreSQL did not answer on 127.0.0.1:5432"
    else
        say "no PostgreSQL on 127.0.0.1:5432 (not root: not starting one; the tests embed one)"
    fi
fi
if pg_up && [ "$(id -u)" -eq 0 ] \
    && ! psql postgresql://postgres@127.0.0.1:5432/postgres -Atqc 'select 1' >/dev/null 2>&1; then
    # A fresh Debian cluster allows only peer and password logins. Trust local TCP for the
    # throwaway test cluster, as the suite connects as `postgres` without a password.
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf | tail -1)
    say "trusting 127.0.0.1 in $hba"
    sed -i 's/^\(host\s\+all\s\+all\s\+127.0.0.1\/32\s\+\)\S\+/\1trust/' "$hba"
    su postgres -c "psql -Atqc 'select pg_reload_conf()'" >/dev/null
fi

# ---------------------------------------------------------------- Redis
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; }
if ! redis_up; then
    if [ "$(id -u)" -eq 0 ]; then
        dir=/var/lib/redis log=/var/log/redis/ci.log
    else
        dir=${TMPDIR:-/tmp}/centralino-redis-$(id -u) log=$dir/redis.log
    fi
    mkdir -p "$dir" "$(dirname "$log")"
    say "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir "$dir" --logfile "$log"
    wait_for 30 redis_up || say "Redis did not answer on 127.0.0.1:6379"
fi
