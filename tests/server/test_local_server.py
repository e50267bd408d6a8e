"""The managed local Prefect server: real server processes in homes of their own.

One home (``shared``) serves the run, status, version and stale-state tests, each of which
finds or starts its server through ``agentrt server start`` (so they pass in any order);
every server process started under a test home is killed at teardown, whatever happened.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
NOOP_AGENTS = REPO_ROOT / "bench" / "agents"

pytestmark = pytest.mark.slow  # real server processes (each start costs seconds)
PREFECT_VERSION = version("prefect")
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def server_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment for ``agentrt`` in ``home``, managed server on (the suite turns it off)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AGENTRT_"))}
    env.update(
        AGENTRT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        NO_COLOR="1",
        COLUMNS="200",
        **extra,
    )
    return env


def agentrt(
    *args: str, env: dict[str, str], cwd: Path = REPO_ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentrt.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
    )


def state_of(home: Path) -> dict[str, Any]:
    return json.loads((home / "local-server" / "state.json").read_text())


def write_state(home: Path, state: dict[str, Any]) -> None:
    (home / "local-server" / "state.json").write_text(json.dumps(state))


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_dead(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not alive(pid)


def server_processes(home: Path) -> list[psutil.Process]:
    """The live server processes of ``home`` (by the folder on their command line)."""
    marker = str(home / "local-server")
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and marker in cmdline:
            found.append(proc)
    return found


def kill_servers(home: Path) -> None:
    for proc in server_processes(home):
        proc.kill()
        proc.wait(10)


def start(home: Path, **extra: str) -> dict[str, Any]:
    """``agentrt server start --json`` (the running server, or a new one)."""
    done = agentrt("server", "start", "--json", env=server_env(home, **extra))
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["state"] == "running"
    return data


def get(url: str) -> Any:
    with NO_PROXY.open(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("managed") / "home"
    try:
        yield home
    finally:
        agentrt("server", "stop", env=server_env(home))
        kill_servers(home)


@pytest.fixture
def own_home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    try:
        yield home
    finally:
        kill_servers(home)


@pytest.fixture(scope="module")
def noop_workflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wf") / "one-noop.yaml"
    steps = [{"agent": "noop", "inputs": {"i": {"value": 1}}}]
    path.write_text(yaml.safe_dump({"name": "one-noop", "steps": steps}))
    return path


def test_a_run_starts_the_server_and_later_runs_reuse_it(shared: Path, noop_workflow: Path) -> None:
    env = server_env(shared)
    first = agentrt("run", str(noop_workflow), "-A", str(NOOP_AGENTS), env=env)
    assert first.returncode == 0, first.stderr
    state = state_of(shared)
    assert alive(state["pid"]) and state["prefect_version"] == PREFECT_VERSION
    # The run ends with its page in the UI of that server; the server holds the flow run.
    last = first.stdout.strip().splitlines()[-1]
    match = re.fullmatch(
        r"flow run: (http://127\.0\.0\.1:(\d+))/runs/flow-run/([0-9a-f-]{36})", last
    )
    assert match, first.stdout
    assert int(match[2]) == state["port"]
    assert get(f"{state['api_url']}/flow_runs/{match[3]}")["name"]
    with NO_PROXY.open(f"{state['url']}/ui-settings", timeout=10) as response:
        assert json.loads(response.read())["api_url"] == state["api_url"]  # the UI's API

    second = agentrt("run", str(noop_workflow), "-A", str(NOOP_AGENTS), "--json", env=env)
    assert second.returncode == 0, second.stderr
    assert "starting the local Prefect server" not in second.stderr
    assert state_of(shared)["pid"] == state["pid"]
    result = json.loads(second.stdout)
    assert result["flow_run_url"] == (f"{state['url']}/runs/flow-run/{result['flow_run_id']}")
    assert len(server_processes(shared)) == 1


def test_status_json_names_the_server_without_importing_prefect(shared: Path) -> None:
    server = start(shared)
    code = (
        "import atexit, sys\n"
        "loaded = lambda: sys.stderr.write(f'prefect loaded: {\"prefect\" in sys.modules}')\n"
        "atexit.register(loaded)\n"
        "sys.argv = ['agentrt', 'server', 'status', '--json']\n"
        "from agentrt.cli import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=server_env(shared), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "prefect loaded: False" in done.stderr
    data = json.loads(done.stdout)
    assert data["state"] == "running"
    assert (data["pid"], data["port"], data["id"]) == (server["pid"], server["port"], server["id"])
    assert data["url"] == data["ui_url"] == f"http://127.0.0.1:{data['port']}"
    assert data["api_url"] == data["url"] + "/api"
    assert data["prefect_version"] == PREFECT_VERSION
    assert data["idle_minutes"] == 60 and data["idle_seconds"] >= 0
    assert data["prefect_home"] == str(shared / "prefect")
    assert data["directory"] == str(shared / "local-server")
    assert data["mode"] == "managed" and data["runs_use"].startswith("this server")


def test_a_server_of_another_prefect_version_is_replaced(shared: Path) -> None:
    old = start(shared)
    write_state(shared, {**state_of(shared), "prefect_version": "3.0.0"})
    found = agentrt("server", "status", "--json", env=server_env(shared))
    assert found.returncode == 1
    assert json.loads(found.stdout)["state"] == "other-version"

    done = agentrt("server", "start", "--json", env=server_env(shared))
    assert done.returncode == 0, done.stderr
    assert "replacing the local Prefect server (Prefect 3.0.0)" in done.stderr
    new = json.loads(done.stdout)
    assert new["pid"] != old["pid"] and new["prefect_version"] == PREFECT_VERSION
    assert wait_dead(old["pid"])
    assert [p.pid for p in server_processes(shared)] == [new["pid"]]


def test_a_dead_server_leaves_a_stale_state_file_that_is_replaced(shared: Path) -> None:
    old = start(shared)
    os.kill(old["pid"], signal.SIGKILL)
    assert wait_dead(old["pid"])
    found = agentrt("server", "status", "--json", env=server_env(shared))
    assert found.returncode == 1
    data = json.loads(found.stdout)
    assert data["state"] == "stale" and str(old["pid"]) in data["detail"]

    new = start(shared)
    assert new["pid"] != old["pid"] and alive(new["pid"])

    stopped = agentrt("server", "stop", env=server_env(shared))
    assert stopped.returncode == 0, stopped.stderr
    assert f"pid {new['pid']}" in stopped.stdout
    assert wait_dead(new["pid"]) and not (shared / "local-server" / "state.json").exists()
    after = agentrt("server", "status", env=server_env(shared))
    assert after.returncode == 1 and "stopped" in after.stdout


def test_a_state_file_naming_another_program_is_stale_and_that_program_is_left_alone(
    shared: Path, tmp_path: Path
) -> None:
    """A port that answers, but not as this server (a reused port): never stopped by us."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    other = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        (shared / "local-server").mkdir(parents=True, exist_ok=True)
        agentrt("server", "stop", env=server_env(shared))  # no server of ours in the way
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until http.server listens
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port}"
        write_state(
            shared,
            {
                "id": "0" * 32, "pid": other.pid,
                "create_time": psutil.Process(other.pid).create_time(), "port": port,
                "url": url, "api_url": f"{url}/api", "prefect_version": PREFECT_VERSION,
                "protocol": 1, "started_at": "2026-01-01T00:00:00+00:00", "idle_minutes": 60,
                "prefect_home": str(shared / "prefect"), "log": str(shared / "server.log"),
            },
        )  # fmt: skip
        found = agentrt("server", "status", "--json", env=server_env(shared))
        assert found.returncode == 1
        data = json.loads(found.stdout)
        assert data["state"] == "stale" and "another program" in data["detail"]
        stopped = agentrt("server", "stop", env=server_env(shared))
        assert stopped.returncode == 0 and "stale state file" in stopped.stdout
        assert other.poll() is None  # not ours: left alone
        assert not (shared / "local-server" / "state.json").exists()
    finally:
        other.kill()
        other.wait(10)


def test_two_concurrent_first_starts_share_one_server_which_stops_when_idle(
    own_home: Path,
) -> None:
    env = server_env(
        own_home, AGENTRT_SERVER_IDLE_MINUTES="0.05", OPENAI_API_KEY="sk-not-for-the-server"
    )  # idle: 3 s
    command = [sys.executable, "-m", "agentrt.cli", "server", "start", "--json"]
    procs = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=240) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    servers = [json.loads(out) for out, _ in outputs]
    assert servers[0]["pid"] == servers[1]["pid"] and servers[0]["port"] == servers[1]["port"]
    assert sum("starting the local Prefect server" in err for _, err in outputs) == 1
    assert [p.pid for p in server_processes(own_home)] == [servers[0]["pid"]]
    server_env_seen = psutil.Process(servers[0]["pid"]).environ()
    assert server_env_seen["PREFECT_UI_API_URL"] == servers[0]["api_url"]
    assert "OPENAI_API_KEY" not in server_env_seen  # no secrets in a long-lived process

    # Nobody uses it: it stops by itself and removes its state file.
    assert wait_dead(servers[0]["pid"], timeout=120)
    assert not (own_home / "local-server" / "state.json").exists()
    log = (own_home / "local-server" / "server.log").read_text()
    assert "idle for 0.05 minutes: stopping" in log


def test_when_the_server_cannot_start_the_run_says_why_and_uses_the_ephemeral_server(
    own_home: Path, noop_workflow: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # (A fresh database's migrations can outlast Prefect's 20 s on a busy machine.)
        env = server_env(
            own_home,
            AGENTRT_SERVER_PORT=str(port),
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
        )
        done = agentrt("run", str(noop_workflow), "-A", str(NOOP_AGENTS), env=env)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "local Prefect server" in line]
    assert said == [
        f"the local Prefect server could not be started (AGENTRT_SERVER_PORT={port} is in "
        "use); this run uses Prefect's ephemeral server (set AGENTRT_SERVER=ephemeral to skip "
        "the attempt)"
    ]
    assert "completed" in done.stdout and "flow run:" not in done.stdout  # no UI to show
    assert not (own_home / "local-server" / "state.json").exists()
    assert not server_processes(own_home)


def test_start_fails_in_one_line_when_the_home_is_unusable(own_home: Path) -> None:
    own_home.mkdir(parents=True)
    (own_home / "local-server").write_text("a file where the folder should be")
    done = agentrt("server", "start", env=server_env(own_home))
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot use ") and len(done.stderr.splitlines()) == 1
    bad = agentrt("server", "status", env=server_env(own_home, AGENTRT_SERVER="sometimes"))
    assert bad.returncode == 2 and "AGENTRT_SERVER='sometimes'" in bad.stderr


def test_an_api_url_in_the_active_prefect_profile_is_used_instead(own_home: Path) -> None:
    """`prefect config set PREFECT_API_URL=…` (the profile) counts like the variable."""
    from agentrt.flows import local_server

    (own_home / "prefect").mkdir(parents=True)
    (own_home / "prefect" / "profiles.toml").write_text(
        'active = "remote"\n[profiles.remote]\nPREFECT_API_URL = "http://127.0.0.1:9/api"\n'
    )
    done = agentrt("server", "status", "--json", env=server_env(own_home))
    assert json.loads(done.stdout)["runs_use"] == "PREFECT_API_URL (http://127.0.0.1:9/api)"
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(server_env(own_home))  # connect() sets Prefect defaults in it
    try:
        lines: list[str] = []
        assert local_server.connect(lines.append) is None and lines == []
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert not (own_home / "local-server").exists()  # nothing started


def test_events_push_goes_to_the_running_local_server(shared: Path, tmp_path: Path) -> None:
    server = start(shared)
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    (repo / "a.py").write_text("x = 1\n")
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    done = agentrt("events", "push", "--repo", str(repo), "--rev", "HEAD", env=server_env(shared))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("sent agentrt.repo.pushed")
    assert state_of(shared)["pid"] == server["pid"]
