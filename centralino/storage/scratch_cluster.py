"""A throwaway PostgreSQL cluster that its owner may stop and restart at will, for the tests
and benchmarks that take the database away mid-traffic (never used by the server itself).

`initdb` a temporary data directory, `pg_ctl` it on a free loopback port. PostgreSQL refuses
to run as root, so as root the commands run as the `postgres` system user (which the Debian
packages create) and the directory is handed to it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BIN_DIR = Path("/usr/lib/postgresql/15/bin")
# Seconds pg_ctl waits for a start or a stop: an initdb'ed cluster starts in well under one.
PG_CTL_WAIT_S = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(slots=True)
class ScratchCluster:
    base: Path
    port: int
    bin_dir: Path

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def log_file(self) -> Path:
        return self.base / "postgres.log"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def available(cls, bin_dir: Path = DEFAULT_BIN_DIR) -> bool:
        return (bin_dir / "initdb").exists() and (bin_dir / "pg_ctl").exists()

    @classmethod
    def create(cls, bin_dir: Path = DEFAULT_BIN_DIR, *, fsync: bool = True) -> ScratchCluster:
        base = Path(tempfile.mkdtemp(prefix="centralino-scratch-pg-"))
        cluster = cls(base=base, port=free_port(), bin_dir=bin_dir)
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(base, user.pw_uid, user.pw_gid)
        cluster._run(
            "initdb", "-D", str(cluster.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        if not fsync:  # only for throwaway data no test counts after a crash
            with (cluster.data_dir / "postgresql.conf").open("a") as conf:
                conf.write("fsync = off\n")
        return cluster

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=PG_CTL_WAIT_S + 30)

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.base} -c max_connections=200"
        )
        self._run(
            "pg_ctl", "start", "-w", "-t", str(PG_CTL_WAIT_S), "-D", str(self.data_dir),
            "-l", str(self.log_file), "-o", options,
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """`fast` (clients cut, clean shutdown) or `immediate` (as a crash: recovery at the
        next start replays the WAL, so every committed transaction is still there)."""
        self._run("pg_ctl", "stop", "-w", "-t", str(PG_CTL_WAIT_S), "-D", str(self.data_dir),
                  "-m", mode)  # fmt: skip

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # not running
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)
