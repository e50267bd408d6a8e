"""The Prefect server dies in the middle of a run (issue #21's acceptance test).

A real ``prefect server start`` process (SQLite in its own home) runs ``agentrt run`` of a
chain of four 3-second agents as a subprocess with ``PREFECT_API_URL``. The test kills the
server (SIGKILL) while the second agent runs: the run must end with exit 1 within 10 s of the
kill, print one line (no Prefect traceback) naming the server, the step that found it gone,
how many steps completed and were kept, and that re-running resumes; the completed steps'
outputs are in the local run record and in result storage; no new agent starts. Then the
server is started again on the same database and the same command re-runs: the completed
steps are served from Prefect's result cache, only the others execute.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from rel_faults import calls

from tests.deploy.servers import PrefectServer, free_port
from tests.reliability.conftest import FAULT_AGENTS, cli_env

STEPS = ["s1", "s2", "s3", "s4"]


def _chain(path: Path) -> Path:
    steps: list[dict[str, Any]] = []
    for i, sid in enumerate(STEPS):
        inputs: dict[str, Any] = {"name": {"value": sid}, "seconds": {"value": 3}}
        if i:
            inputs["files"] = f"{STEPS[i - 1]}.files"
        steps.append({"agent": "steady", "id": sid, "inputs": inputs})
    path.write_text(yaml.safe_dump({"name": "server-loss", "steps": steps}))
    return path


def _command(workflow: Path) -> list[str]:
    return [sys.executable, "-m", "agentrt.cli", "run", str(workflow), "-A", str(FAULT_AGENTS)]


@dataclass
class Loss:
    home: Path
    log: Path
    server_url: str
    code: int
    seconds_after_kill: float
    stdout: str
    stderr: str
    first_calls: list[dict[str, Any]]
    rerun: dict[str, Any]
    rerun_code: int
    rerun_stderr: str


def _wait_for_start(log: Path, step: str, proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(c["name"] == step and c["event"] == "start" for c in calls(log)):
            return
        if proc.poll() is not None:
            raise AssertionError(f"agentrt run ended (code {proc.returncode}) before {step}")
        time.sleep(0.05)
    raise AssertionError(f"{step} did not start within {timeout:g} s")


@pytest.fixture(scope="module")
def loss(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loss]:
    root = tmp_path_factory.mktemp("server-loss")
    workflow = _chain(root / "server-loss.yaml")
    home, log, server_home = root / "home", root / "log", root / "server"
    port = free_port()
    with PrefectServer(server_home, port=port) as server:
        env = cli_env(home, AGENTRT_FAULT_LOG=str(log), PREFECT_API_URL=server.api_url)
        proc = subprocess.Popen(
            _command(workflow),
            env=env,
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            _wait_for_start(log, "s2", proc, 240)
            time.sleep(0.3)
            server.kill()
            killed = time.monotonic()
            stdout, stderr = proc.communicate(timeout=120)
            seconds = time.monotonic() - killed
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    first_calls = calls(log)
    # The same server, database and address again; the same command again.
    with PrefectServer(server_home, port=port) as server:
        done = subprocess.run(
            [*_command(workflow), "--json"],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=300,
        )
    rerun = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    yield Loss(
        home, log, server.api_url, proc.returncode, seconds, stdout, stderr, first_calls,
        rerun, done.returncode, done.stderr,
    )  # fmt: skip


def test_run_ends_within_10_s_of_the_kill_with_one_line(loss: Loss) -> None:
    assert loss.code == 1, (loss.stdout, loss.stderr)
    # The acceptance bound: the run is over within 10 s of the server's death (the
    # agent running at the kill finishes first; before the fix Prefect retried for ~80 s).
    assert loss.seconds_after_kill < 10, loss.seconds_after_kill
    assert "Traceback" not in loss.stdout + loss.stderr
    lines = [line for line in loss.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, loss.stderr
    line = lines[0]
    assert f"the Prefect server at {loss.server_url} stopped answering" in line, line
    assert "found by " in line and "s2" in line, line
    assert "2 of 4 steps completed and were kept" in line, line
    assert "re-run the same command to resume" in line, line
    # Prefect's own account of it went to the log file under AGENTRT_HOME.
    assert "ConnectError" in (loss.home / "logs" / "prefect.log").read_text()


def test_no_new_agent_starts_and_completed_outputs_are_kept(loss: Loss) -> None:
    started = [c["name"] for c in loss.first_calls if c["event"] == "start"]
    ended = [c["name"] for c in loss.first_calls if c["event"] == "end"]
    assert started == ended == ["s1", "s2"], loss.first_calls  # s2 ran on to its end
    record = sorted((loss.home / "runs").glob("server-loss-*.json"))[0]  # then the re-run's
    result = json.loads(record.read_text())
    assert result["state"] == "failed"
    states = {sid: s["state"] for sid, s in result["steps"].items()}
    assert states == {"s1": "completed", "s2": "completed", "s3": "skipped", "s4": "skipped"}
    assert result["steps"]["s2"]["output"]["files"] == ["s1.out", "s2.out"]
    (error,) = result["errors"]
    assert error["cause"] == "infrastructure" and error["step"] == "s3", error
    assert "retry_on" not in error["suggestion"] and "start it and re-run" in error["suggestion"]
    assert result["interrupted"].startswith(f"the Prefect server at {loss.server_url}")
    stored = list((loss.home / "prefect" / "storage").iterdir())
    assert len(stored) >= 2, stored  # the two results, in Prefect's result storage


def test_rerun_after_the_server_is_back_executes_only_the_rest(loss: Loss) -> None:
    assert loss.rerun_code == 0, loss.rerun_stderr[-3000:]
    states = {sid: s["state"] for sid, s in loss.rerun["steps"].items()}
    assert states == {"s1": "cached", "s2": "cached", "s3": "completed", "s4": "completed"}
    started = Counter(c["name"] for c in calls(loss.log) if c["event"] == "start")
    assert started == {"s1": 1, "s2": 1, "s3": 1, "s4": 1}, started


def test_server_unreachable_at_start_is_one_line_and_exit_1(tmp_path: Path) -> None:
    workflow = _chain(tmp_path / "server-loss.yaml")
    url = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    env = cli_env(tmp_path / "home", AGENTRT_FAULT_LOG=str(tmp_path / "log"), PREFECT_API_URL=url)
    done = subprocess.run(
        _command(workflow), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert f"the Prefect server at {url} does not answer" in lines[0], lines[0]
    assert not calls(tmp_path / "log")
