"""A throwaway PostgreSQL server for the call-record tests and the database faults.

The PostgreSQL server is Debian's (`apt-get install -y postgresql`, as `.ci/run` does): a
cluster made with initdb in a temporary directory, started with pg_ctl on a free port, and
removed afterwards. Without those binaries the tests fail, saying so: they never skip.
"""

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from server.local import free_port

POSTGRES_USER = "postgres"


def postgres_bin() -> Path:
    """The directory of initdb and pg_ctl, or a failure saying how to install them."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if versions:
        return Path(versions[-1]).parent
    raise RuntimeError(
        "PostgreSQL is not installed: the call-record tests need a real server "
        "(apt-get install -y postgresql; .ci/run installs it)"
    )


class ThrowawayPostgres:
    """A PostgreSQL server of its own in a temporary directory; `url` reaches it."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="bot-postgres-"))
        self.port = free_port()
        self.url = f"postgresql://{POSTGRES_USER}@127.0.0.1:{self.port}/postgres"
        self._databases = 0

    def start(self) -> "ThrowawayPostgres":
        """Make the cluster (first time) and start the server."""
        data = self.dir / "data"
        if not data.exists():
            if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to postgres
                shutil.chown(self.dir, POSTGRES_USER)
            self._run("initdb", "-D", str(data), "-U", POSTGRES_USER, "-A", "trust", "--no-sync")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.dir / "server.log")
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", log, "-w", "start")
        return self

    def stop(self) -> None:
        """Stop the server at once (the data stays: `start` brings it back)."""
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")

    def new_database(self) -> str:
        """A fresh empty database on this server; its URL."""
        self._databases += 1
        name = f"calls_{self._databases}"
        self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", POSTGRES_USER,
                  "-c", f"CREATE DATABASE {name}", "-q")  # fmt: skip
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def remove(self) -> None:
        """Stop the server if it runs, and delete the cluster."""
        subprocess.run(
            self._command("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "stop"),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.dir, ignore_errors=True)

    def _command(self, program: str, *args: str) -> list[str]:
        path = self.bin / program
        command = [str(path if path.exists() else shutil.which(program) or program), *args]
        return ["runuser", "-u", POSTGRES_USER, "--", *command] if os.geteuid() == 0 else command

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run(self._command(program, *args), capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"{program} failed: {result.stderr.strip() or result.stdout}")
