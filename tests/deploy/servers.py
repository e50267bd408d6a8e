"""Real servers for the deployment tests and the ingestion benchmark.

:class:`PrefectServer` runs ``prefect server start`` on a free loopback port with its own
``PREFECT_HOME`` and database (SQLite in that home, or a PostgreSQL URL).
:class:`Postgres` runs a throwaway PostgreSQL cluster (Debian's ``postgresql`` package) on a
free loopback port, as the ``postgres`` user when we are root (PostgreSQL refuses to run
as root). Both are context managers and stop what they started, whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

__all__ = [
    "Postgres",
    "PostgresUnavailable",
    "PrefectServer",
    "ServerError",
    "free_port",
    "postgres_bin",
]


class ServerError(RuntimeError):
    """A server did not start; the message carries the end of its log."""


class PostgresUnavailable(ServerError):
    """PostgreSQL is not installed here (``apt-get install -y postgresql``)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Stop ``proc`` and everything it started (its own process group)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


class PrefectServer:
    """``prefect server start`` on 127.0.0.1 with a private home and database."""

    def __init__(
        self,
        home: Path,
        *,
        database_url: str | None = None,
        port: int | None = None,
        startup_timeout: float = 180,
    ) -> None:
        self.home = home
        self.port = port or free_port()
        self.database_url = database_url or f"sqlite+aiosqlite:///{home / 'prefect.db'}"
        self.startup_timeout = startup_timeout
        self.log = home / "server.log"
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def client_env(self, **extra: str) -> dict[str, str]:
        """Environment for a Prefect client process (CLI, worker) that uses this server."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_API_URL=self.api_url,
            PREFECT_HOME=str(self.home / "client"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_CLI_PROMPT="false",
        )
        env.update(extra)
        return env

    def __enter__(self) -> PrefectServer:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_SERVER_DATABASE_CONNECTION_URL=self.database_url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            # The UI asks this address for its data (by default it would be port 4200).
            PREFECT_UI_API_URL=self.api_url,
            PREFECT_SERVER_LOGGING_LEVEL="WARNING",
        )
        started = time.monotonic()
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "prefect", "server", "start"),
                    *("--host", "127.0.0.1", "--port", str(self.port)),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            self._wait_healthy(started)
        except BaseException:
            self.close()
            raise
        self.startup_seconds = round(time.monotonic() - started, 1)
        return self

    def _wait_healthy(self, started: float) -> None:
        assert self._proc is not None
        while time.monotonic() - started < self.startup_timeout:
            if self._proc.poll() is not None:
                raise ServerError(
                    f"prefect server exited with {self._proc.returncode}:\n{_tail(self.log)}"
                )
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=5) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise ServerError(
            f"prefect server not healthy after {self.startup_timeout:g} s:\n{_tail(self.log)}"
        )

    def __exit__(self, *exc: object) -> None:
        self.close()

    def kill(self) -> None:
        """SIGKILL the server and everything it started (its process group), as a crash or
        the OOM killer would: no shutdown, its clients find nobody there."""
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(30)
            self._proc = None

    def close(self) -> None:
        if self._proc is not None:
            _stop(self._proc)
            self._proc = None


def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server programs (initdb, pg_ctl), or None."""
    if found := shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name or 0)
    )
    return versions[-1] if versions else None


class Postgres:
    """A throwaway PostgreSQL cluster in ``data_dir`` on a free loopback port.

    Trust authentication on 127.0.0.1 only: it is for tests and benchmarks, never for a
    shared server (see docs/scaling.md for that).
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        port: int | None = None,
        database: str = "prefect",
        durable: bool = True,
    ) -> None:
        # Without data_dir, a fresh folder in /tmp that the postgres user can reach (pytest's
        # tmp_path is private to root).
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="agentrt-pg-")) / "data"
        self.port = port or free_port()
        self.database = database
        self.durable = durable
        self.user = "prefect"
        self.log = self.data_dir / "postgres.log"
        self._bin = postgres_bin()
        self._started = False

    @property
    def url(self) -> str:
        """The SQLAlchemy URL Prefect's server takes (asyncpg driver)."""
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str | os.PathLike[str], timeout: float = 120) -> None:
        command = [str(a) for a in args]
        preexec = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            account = pwd.getpwnam("postgres")

            def preexec() -> None:
                os.setgid(account.pw_gid)
                os.setuid(account.pw_uid)

        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, preexec_fn=preexec
        )
        if done.returncode:
            raise ServerError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
                f"\n{_tail(self.log)}"
            )

    def __enter__(self) -> Postgres:
        if self._bin is None or not (self._bin / "initdb").exists():
            raise PostgresUnavailable(
                "PostgreSQL is not installed (no initdb/pg_ctl); install Debian's package: "
                "apt-get install -y postgresql"
            )
        if self._own_dir:
            self.data_dir.parent.chmod(0o755)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root but there is no postgres user") from None
            os.chown(self.data_dir, account.pw_uid, account.pw_gid)
        self._run(
            self._bin / "initdb", "-D", self.data_dir, "-U", self.user, "--auth=trust",
            "--encoding=UTF8", "--no-sync",
        )  # fmt: skip
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir}"
        options += " -c max_connections=200"
        if not self.durable:  # tests only: benchmarks measure a server that syncs its writes
            options += " -c fsync=off -c synchronous_commit=off"
        self._run(
            self._bin / "pg_ctl", "-D", self.data_dir, "-o", options, "-l", self.log, "-w",
            "-t", "60", "start",
        )  # fmt: skip
        self._started = True
        try:
            self._run(
                self._bin / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
                self.database,
            )  # fmt: skip
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._started and self._bin is not None:
            with contextlib.suppress(ServerError, subprocess.TimeoutExpired):
                self._run(self._bin / "pg_ctl", "-D", self.data_dir, "-m", "fast", "-w", "stop")
            self._started = False
        if self._own_dir:
            shutil.rmtree(self.data_dir.parent, ignore_errors=True)
