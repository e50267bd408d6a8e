"""The local Prefect server agentrt manages: one per ``AGENTRT_HOME``, started on first need.

Prefect's ephemeral server costs every ``agentrt run`` a server start (5-13 s on 2 cores)
and ends with the run. Without ``PREFECT_API_URL``, ``agentrt run`` uses this server instead
(:func:`connect`): a Prefect server with its UI, started detached on a free loopback port
(or ``AGENTRT_SERVER_PORT``) the first time a run needs it, on the database under
``PREFECT_HOME`` (``$AGENTRT_HOME/prefect/prefect.db``, the one Prefect's ephemeral server
uses too), and found again by later runs. ``AGENTRT_SERVER=ephemeral`` keeps Prefect's
ephemeral server.

Its files are in ``$AGENTRT_HOME/local-server/``: ``state.json`` (pid, port, URLs, Prefect
version, id), ``lock`` (held while a process checks, starts or stops the server, so two
concurrent first runs start one server) and ``server.log``. A later run trusts the state
file only if its process is alive (pid and start time), the port answers ``/api/health``
with the server's id (header ``x-agentrt-server``: not some other program that took the
port) and the installed Prefect is the version the server runs; otherwise the old server
is stopped (if it is ours and alive) and a new one started.

The server stops itself after ``AGENTRT_SERVER_IDLE_MINUTES`` (default 60; 0: never)
without a request and without an open connection (a worker's or the UI's requests count
as use; ``agentrt server status``'s do not), and on ``agentrt server stop``. No agentrt
process needs to be alive for that: the server process runs :func:`main`, which wraps
Prefect's app in a middleware that records the last request, and a thread that stops
the process once it has been idle long enough.

Importing this module does not import Prefect (``agentrt server status`` stays fast);
only the server process does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any, Literal

from agentrt.errors import AgentrtError
from agentrt.flows.settings import EMBEDDED_SERVER_DEFAULTS, agentrt_home, configure_prefect

__all__ = [
    "LocalServerError",
    "ServerSettingError",
    "ServerState",
    "ServerStatus",
    "configured_api_url",
    "connect",
    "ensure_server",
    "idle_minutes",
    "main",
    "running_server",
    "server_dir",
    "server_mode",
    "status",
    "stop_server",
]

#: Response headers of the managed server: its id, and seconds since its last use.
ID_HEADER = "x-agentrt-server"
IDLE_HEADER = "x-agentrt-idle-seconds"
#: A request with this header (``agentrt server status``) does not count as use.
PROBE_HEADER = "x-agentrt-probe"
#: How long a start may take (migrations of a new database on a busy machine), and a stop.
START_TIMEOUT = 120.0
STOP_TIMEOUT = 20.0
#: How long a running server that stopped answering is probed before it is replaced.
STUCK_TIMEOUT = 30.0
#: How long the server may take for a graceful shutdown once idle before it exits anyway.
IDLE_GRACE_SECONDS = 10.0
DEFAULT_IDLE_MINUTES = 60.0
LOG_MAX_BYTES = 5_000_000
#: Bumped when the server process's interface (arguments, headers) changes.
PROTOCOL = 1

Mode = Literal["managed", "ephemeral"]
State = Literal["running", "stopped", "stale", "other-version", "not-responding"]


class LocalServerError(AgentrtError, RuntimeError):
    """The managed local Prefect server could not be started, reached or stopped."""

    retryable = False
    hint = (
        "see $AGENTRT_HOME/local-server/server.log; `agentrt server stop` clears a stuck "
        "server, AGENTRT_SERVER=ephemeral runs on Prefect's ephemeral server instead"
    )


class ServerSettingError(LocalServerError, ValueError):
    """An ``AGENTRT_SERVER*`` variable has a value agentrt cannot use (bad input)."""

    hint = "fix the AGENTRT_SERVER* variable named in the message"


@dataclass(frozen=True)
class ServerState:
    """What ``state.json`` records about a managed server."""

    id: str
    pid: int
    create_time: float  # the process's start time (psutil): a reused pid is not ours
    port: int
    url: str
    api_url: str
    prefect_version: str
    protocol: int
    started_at: str
    idle_minutes: float
    prefect_home: str
    log: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ServerStatus:
    """The managed server of this ``AGENTRT_HOME`` as a process finds it.

    ``state``: ``running``; ``stopped`` (no state file); ``stale`` (its process is gone,
    or the port answers for something else); ``other-version`` (it runs another Prefect
    version: the next run replaces it); ``not-responding`` (alive, but its health check
    fails: starting, or stuck).
    """

    state: State
    server: ServerState | None
    idle_seconds: float | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"state": self.state, "detail": self.detail}
        data.update(self.server.to_dict() if self.server else {})
        data["ui_url"] = self.server.url if self.server else None
        data["idle_seconds"] = self.idle_seconds
        data["directory"] = str(server_dir())
        data["mode"] = server_mode()
        data["runs_use"] = _runs_use(self)
        return data


# -- settings --------------------------------------------------------------------------
def server_dir() -> Path:
    """``$AGENTRT_HOME/local-server``: state file, lock and log of the managed server."""
    return agentrt_home() / "local-server"


def server_mode() -> Mode:
    """``AGENTRT_SERVER``: ``managed`` (default) or ``ephemeral`` (Prefect's own)."""
    value = (os.environ.get("AGENTRT_SERVER") or "managed").strip().lower()
    if value not in ("managed", "ephemeral"):
        raise ServerSettingError(
            f"AGENTRT_SERVER={value!r}: use 'managed' (the default) or 'ephemeral'"
        )
    return value  # type: ignore[return-value]


def idle_minutes() -> float:
    """``AGENTRT_SERVER_IDLE_MINUTES``: idle time before the server stops (0: never)."""
    raw = os.environ.get("AGENTRT_SERVER_IDLE_MINUTES") or str(DEFAULT_IDLE_MINUTES)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        raise ServerSettingError(
            f"AGENTRT_SERVER_IDLE_MINUTES={raw!r}: give minutes, a number >= 0 (0: never stop)"
        )
    return value


def _forced_port() -> int | None:
    raw = os.environ.get("AGENTRT_SERVER_PORT")
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ServerSettingError(f"AGENTRT_SERVER_PORT={raw!r}: give a TCP port, 1-65535")
    return int(raw)


def configured_api_url() -> str | None:
    """``PREFECT_API_URL`` from the environment or the active Prefect profile (what
    ``prefect config set PREFECT_API_URL=…`` writes), read without importing Prefect."""
    if url := os.environ.get("PREFECT_API_URL"):
        return url
    import tomllib

    home = os.environ.get("PREFECT_HOME") or agentrt_home() / "prefect"  # configure_prefect's
    path = Path(os.environ.get("PREFECT_PROFILES_PATH") or Path(home) / "profiles.toml")
    try:
        data = tomllib.loads(path.expanduser().read_text())
    except (OSError, ValueError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or data.get("active")
    profile = data.get("profiles", {}).get(active) if isinstance(active, str) else None
    url = profile.get("PREFECT_API_URL") if isinstance(profile, dict) else None
    return str(url) if url else None


def _prefect_version() -> str:
    return dist_version("prefect")


def _runs_use(status: ServerStatus) -> str:
    if url := configured_api_url():
        return f"PREFECT_API_URL ({url})"
    if server_mode() == "ephemeral":
        return "Prefect's ephemeral server (AGENTRT_SERVER=ephemeral)"
    if status.state == "running" and status.server is not None:
        return f"this server ({status.server.api_url})"
    return "this server, started by the next run"


# -- the state file ---------------------------------------------------------------------
def _state_path() -> Path:
    return server_dir() / "state.json"


def _read_state() -> ServerState | None:
    try:
        data = json.loads(_state_path().read_text())
        return ServerState(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        return None  # unreadable or from another agentrt: treated as absent (and replaced)


def _write_state(state: ServerState) -> None:
    path = _state_path()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.to_dict(), indent=2) + "\n")
    tmp.replace(path)


def _remove_state(server_id: str | None = None) -> None:
    """Remove the state file (only if it still names ``server_id``, when given)."""
    if server_id is not None:
        current = _read_state()
        if current is None or current.id != server_id:
            return
    with contextlib.suppress(FileNotFoundError):
        _state_path().unlink()


@contextlib.contextmanager
def _locked(timeout: float = START_TIMEOUT + 30) -> Iterator[None]:
    """Hold the home's server lock (one process checks, starts or stops at a time)."""
    from filelock import FileLock, Timeout

    directory = server_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = FileLock(directory / "lock", timeout=timeout)
        lock.acquire()
    except Timeout:
        raise LocalServerError(
            f"another agentrt process has held {directory / 'lock'} for {timeout:g} s"
        ) from None
    except OSError as exc:
        raise LocalServerError(f"cannot use {directory}: {exc.strerror or exc}") from None
    try:
        yield
    finally:
        lock.release()


# -- the process and its health ---------------------------------------------------------
def _alive(state: ServerState) -> bool:
    """True if the state's process runs (not a zombie, not a reused pid)."""
    import psutil

    try:
        proc = psutil.Process(state.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(state.pid, os.WNOHANG)  # our child: reap it
            return False
        return abs(proc.create_time() - state.create_time) < 1.0
    except psutil.Error:
        return False


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def _probe(
    state: ServerState, *, count_as_use: bool = True, timeout: float = 3.0
) -> tuple[Literal["ok", "foreign", "down"], float | None]:
    """Ask the server's ``/api/health``: ``ok`` (and its idle seconds) if it answers as
    this server, ``foreign`` if something else answers on its port, ``down`` if nothing."""
    headers = {} if count_as_use else {PROBE_HEADER: "status"}
    request = urllib.request.Request(f"{state.api_url}/health", headers=headers)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            server_id = response.headers.get(ID_HEADER)
            idle = response.headers.get(IDLE_HEADER)
    except urllib.error.HTTPError as exc:
        return ("down" if exc.headers.get(ID_HEADER) == state.id else "foreign"), None
    except (OSError, ValueError):
        return "down", None
    if server_id != state.id:
        return "foreign", None
    try:
        return "ok", float(idle) if idle is not None else None
    except ValueError:
        return "ok", None


def _check(state: ServerState, *, count_as_use: bool, timeout: float = 3.0) -> ServerStatus:
    if not _alive(state):
        return ServerStatus("stale", state, None, f"its process {state.pid} is gone")
    health, idle = _probe(state, count_as_use=count_as_use, timeout=timeout)
    if health == "foreign":
        return ServerStatus("stale", state, None, f"port {state.port} answers for another program")
    if health == "down":
        return ServerStatus(
            "not-responding", state, None, f"process {state.pid} does not answer on {state.url}"
        )
    installed = _prefect_version()
    if state.prefect_version != installed or state.protocol != PROTOCOL:
        return ServerStatus(
            "other-version",
            state,
            idle,
            f"it runs Prefect {state.prefect_version}, Prefect {installed} is installed",
        )
    return ServerStatus("running", state, idle, f"Prefect {state.prefect_version} on {state.url}")


def _patience(state: ServerState) -> float:
    """How long to wait for a server that does not answer before replacing it: what is
    left of a start's time if it started recently, else :data:`STUCK_TIMEOUT`."""
    try:
        age = time.time() - datetime.fromisoformat(state.started_at).timestamp()
    except ValueError:
        age = START_TIMEOUT
    return max(START_TIMEOUT - age, STUCK_TIMEOUT)


def _terminate(state: ServerState, timeout: float = STOP_TIMEOUT) -> None:
    """Stop the state's process (only if it is alive and ours) and wait for it to end."""
    import psutil

    if not _alive(state):
        return
    try:
        proc = psutil.Process(state.pid)
        try:
            os.killpg(state.pid, signal.SIGTERM)  # a session leader: its group is its own
        except OSError:
            proc.terminate()
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(state.pid, signal.SIGKILL)
            proc.kill()
            proc.wait(timeout)
    except psutil.NoSuchProcess:
        return
    except psutil.Error as exc:
        raise LocalServerError(f"cannot stop process {state.pid}: {exc}") from None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _last_line(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - 4000))
            lines = [ln.strip() for ln in fh.read().decode(errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln and not ln.startswith("--- ")]
    return lines[-1][:300] if lines else ""


def _server_env(api_url: str) -> dict[str, str]:
    """The server's environment: this process's Prefect settings (home, database),
    :data:`EMBEDDED_SERVER_DEFAULTS` under them, the UI pointed at this server; without
    the secrets of the environment (``*_API_KEY``, ``*_TOKEN``, … but ``PREFECT_*``)."""
    from agentrt.agents.redact import secret_name

    configure_prefect()
    env = {**EMBEDDED_SERVER_DEFAULTS, **os.environ}
    for name in ("PREFECT_API_URL", "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"):
        env.pop(name, None)
    for name in [n for n in env if secret_name(n) and not n.startswith("PREFECT_")]:
        del env[name]  # provider keys and tokens: a long-lived server needs none of them
    env["PREFECT_UI_API_URL"] = api_url  # the UI asks this address for its data
    env.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    env["PREFECT__SERVER_FINAL"] = "1"
    return env


#: Started servers (a Popen reference kept for the process's life: no "still running" warning).
_STARTED: list[subprocess.Popen[bytes]] = []


def _start(version: str, notify: Callable[[str], None] | None) -> ServerState:
    """Start a server and wait until it answers; called under the lock, with no server."""
    directory = server_dir()
    forced = _forced_port()
    if forced is not None and not _port_is_free(forced):
        raise LocalServerError(f"AGENTRT_SERVER_PORT={forced} is in use")
    port = forced or _free_port()
    url = f"http://127.0.0.1:{port}"
    minutes = idle_minutes()
    server_id = uuid.uuid4().hex
    env = _server_env(f"{url}/api")
    log = directory / "server.log"
    try:
        if log.exists() and log.stat().st_size > LOG_MAX_BYTES:
            log.replace(log.with_suffix(".log.1"))
        with log.open("ab") as sink:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            sink.write(f"--- {stamp} starting Prefect {version} on {url}\n".encode())
            sink.flush()
            proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", __name__, "--directory", str(directory)),
                    *("--port", str(port), "--id", server_id, "--idle-minutes", f"{minutes:g}"),
                ],
                env=env,
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal does not reach it
            )
    except OSError as exc:
        raise LocalServerError(f"cannot start it: {exc.strerror or exc}") from None
    _STARTED.append(proc)
    import psutil

    try:
        created = psutil.Process(proc.pid).create_time()
    except psutil.Error:
        created = time.time()
    state = ServerState(
        id=server_id,
        pid=proc.pid,
        create_time=created,
        port=port,
        url=url,
        api_url=f"{url}/api",
        prefect_version=version,
        protocol=PROTOCOL,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        idle_minutes=minutes,
        prefect_home=env.get("PREFECT_HOME", ""),
        log=str(log),
    )
    _write_state(state)
    if notify is not None:
        notify(f"starting the local Prefect server on {url} (`agentrt server stop` stops it)…")
    started = time.monotonic()
    while time.monotonic() - started < START_TIMEOUT:
        code = proc.poll()
        if code is not None:
            _remove_state(server_id)
            why = _last_line(log) or "no output"
            raise LocalServerError(f"the server exited with code {code}: {why} (log: {log})")
        if _probe(state)[0] == "ok":
            return state
        time.sleep(0.1)
    _terminate(state)
    _remove_state(server_id)
    raise LocalServerError(f"the server did not answer within {START_TIMEOUT:g} s (log: {log})")


# -- what runs and the command line use -------------------------------------------------
def status() -> ServerStatus:
    """The managed server as found now; the check does not count as use."""
    state = _read_state()
    if state is None:
        return ServerStatus("stopped", None, None, "no local server is running")
    return _check(state, count_as_use=False)


def running_server() -> ServerState | None:
    """The managed server of this home if it runs now (never started by this call)."""
    found = status()
    return found.server if found.state == "running" else None


def ensure_server(notify: Callable[[str], None] | None = None) -> ServerState:
    """The running managed server of this home, started if needed (one per home).

    Reuses a healthy server of the installed Prefect version; replaces one of another
    version; clears a stale state file. ``notify`` receives a line when a server is
    started or replaced. Raises :class:`LocalServerError` if no server could be started.
    """
    state = _read_state()
    if state is not None and _check(state, count_as_use=True).state == "running":
        return state  # the common case: no lock needed
    version = _prefect_version()
    with _locked():
        state = _read_state()
        if state is not None:
            found = _check(state, count_as_use=True)
            if found.state == "not-responding":
                # Still starting (its starter died), or busy: give it time before replacing it.
                patience = _patience(state)
                if notify is not None:
                    notify(f"waiting up to {patience:.0f} s for the local Prefect server on "
                           f"{state.url} to answer…")  # fmt: skip
                deadline = time.monotonic() + patience
                while found.state == "not-responding" and time.monotonic() < deadline:
                    time.sleep(0.5)
                    found = _check(state, count_as_use=True, timeout=10.0)
                if found.state == "not-responding" and notify is not None:
                    notify(
                        f"the local Prefect server (pid {state.pid}) does not answer: replacing it"
                    )
            if found.state == "running":
                return state
            if found.state == "other-version" and notify is not None:
                notify(
                    f"replacing the local Prefect server (Prefect {state.prefect_version}) "
                    f"with one of Prefect {version}"
                )
            if found.state != "stale":
                _terminate(state)
            _remove_state()
        return _start(version, notify)


def stop_server() -> ServerStatus:
    """Stop the managed server of this home; return what was found before stopping."""
    with _locked(timeout=STOP_TIMEOUT + START_TIMEOUT):
        found = status()
        if found.server is not None:
            if found.state != "stale":
                _terminate(found.server)
            _remove_state()
    return found


def connect(notify: Callable[[str], None]) -> ServerState | None:
    """Point this process's Prefect client at the managed server (call before importing
    Prefect): returns the server, or None when runs use ``PREFECT_API_URL`` (from the
    environment or the active Prefect profile) or Prefect's ephemeral server
    (``AGENTRT_SERVER=ephemeral``, or the server could not be started: then ``notify`` gets
    one line saying why). Raises :class:`ServerSettingError`.
    """
    configure_prefect()  # PREFECT_HOME (and so the profile) as the run will see it
    if configured_api_url() or server_mode() == "ephemeral":
        return None
    idle_minutes()  # a bad value is bad input, not a reason to fall back
    _forced_port()
    try:
        state = ensure_server(notify)
    except LocalServerError as exc:
        notify(
            f"the local Prefect server could not be started ({exc}); this run uses "
            "Prefect's ephemeral server (set AGENTRT_SERVER=ephemeral to skip the attempt)"
        )
        return None
    os.environ["PREFECT_API_URL"] = state.api_url
    return state


# -- the server process -----------------------------------------------------------------
ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class UseTracker:
    """ASGI middleware: records when the server was last used and how many requests and
    websockets are open; adds the server's id and idle seconds to every response."""

    def __init__(self, app: ASGIApp, server_id: str) -> None:
        self.app = app
        self.server_id = server_id.encode()
        self.last_used = time.monotonic()
        self.open = 0

    def idle_seconds(self) -> float:
        return 0.0 if self.open else time.monotonic() - self.last_used

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        use = not any(name == PROBE_HEADER.encode() for name, _ in scope.get("headers", ()))

        async def send_tagged(message: Any) -> None:
            if message.get("type") == "http.response.start":
                headers = [
                    *message.get("headers", ()),
                    (ID_HEADER.encode(), self.server_id),
                    (IDLE_HEADER.encode(), f"{self.idle_seconds():.0f}".encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        if use:
            self.open += 1
            self.last_used = time.monotonic()
        try:
            await self.app(scope, receive, send_tagged)
        finally:
            if use:
                self.open -= 1
                self.last_used = time.monotonic()


def _stop_when_idle(
    tracker: UseTracker, idle_seconds: float, directory: Path, server_id: str
) -> None:
    """Stop this server process once it has not been used for ``idle_seconds``."""
    from filelock import FileLock, Timeout

    from agentrt.flows.server_guard import stop_self

    every = min(30.0, max(0.2, idle_seconds / 10))
    lock = FileLock(directory / "lock")
    while True:
        time.sleep(every)
        if tracker.idle_seconds() < idle_seconds:
            continue
        try:
            lock.acquire(timeout=0)  # a run checking or starting the server: not now
        except Timeout:
            continue
        except OSError:  # the folder is gone (the home was deleted): nobody can find us
            print("--- the state folder is gone: stopping", flush=True)
            stop_self(IDLE_GRACE_SECONDS)
        if tracker.idle_seconds() < idle_seconds:
            lock.release()
            continue
        state = _state_file_in(directory)
        if state is not None and state.get("id") == server_id:
            (directory / "state.json").unlink(missing_ok=True)
        print(f"--- idle for {idle_seconds / 60:g} minutes: stopping", flush=True)
        stop_self(IDLE_GRACE_SECONDS)  # the lock goes with the process


def _state_file_in(directory: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((directory / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def main(argv: list[str] | None = None) -> None:
    """The server process: Prefect's app (API, UI, services) under :class:`UseTracker`."""
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}")
    parser.add_argument("--directory", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--idle-minutes", type=float, default=DEFAULT_IDLE_MINUTES)
    args = parser.parse_args(argv)

    import uvicorn
    from prefect.server.api.server import create_app
    from prefect.settings import (
        PREFECT_SERVER_API_KEEPALIVE_TIMEOUT,
        PREFECT_SERVER_API_WEBSOCKET_PING_INTERVAL,
        PREFECT_SERVER_API_WEBSOCKET_PING_TIMEOUT,
    )

    tracker = UseTracker(create_app(final=True), args.id)
    if args.idle_minutes > 0:
        threading.Thread(
            target=_stop_when_idle,
            args=(tracker, args.idle_minutes * 60, args.directory, args.id),
            name="idle-stop",
            daemon=True,
        ).start()
    uvicorn.run(
        tracker,
        host="127.0.0.1",
        port=args.port,
        log_level="error",
        lifespan="on",
        timeout_keep_alive=PREFECT_SERVER_API_KEEPALIVE_TIMEOUT.value(),
        ws_ping_interval=PREFECT_SERVER_API_WEBSOCKET_PING_INTERVAL.value(),
        ws_ping_timeout=PREFECT_SERVER_API_WEBSOCKET_PING_TIMEOUT.value(),
    )


if __name__ == "__main__":
    main()
