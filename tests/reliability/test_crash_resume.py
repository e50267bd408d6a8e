"""Crash and resume: ``agentrt run`` killed with SIGKILL in the middle of a workflow, then
run again with the same command.

The run uses its own AGENTRT_HOME, so it starts Prefect's embedded server under that home,
as ``agentrt run`` does for a user without a server: that is the honest case, because the
kill then takes down the flow, its task threads and the server writing the SQLite database at
once. (With PREFECT_API_URL the server would survive the kill, which is the easier case.)

The second run must serve the agents that had completed from Prefect's result cache (their own
call logs show no second call), re-run the one that was interrupted, end with the same result as
an uninterrupted run, and leave the context store readable and consistent.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from rel_faults import calls

from agentrt.agents.registry import Registry
from tests.reliability.conftest import FAULT_AGENTS, REPO_ROOT, cli_env

WORKFLOW = """\
name: rel-crash
params:
  repo: {type: path, required: true}
concurrency: 4
steps:
  - agent: context_gathering
    id: ctx
    inputs: {repo: params.repo, task: {value: "retry backoff and timeouts for agents"}}
  - agent: steady
    id: a
    inputs: {name: {value: a}}
  - agent: steady
    id: b
    inputs: {name: {value: b}, files: a.files}
  - agent: steady
    id: slow
    # Hangs on its first call only (the call counter lives in the log folder): the first run
    # is killed while it hangs, the second run finds it quick.
    inputs:
      name: {value: slow}
      files: [b.files]
      fault: {value: hang}
      fail_times: {value: 1}
      seconds: {value: 300}
  - agent: steady
    id: final
    inputs: {name: {value: final}, files: [slow.files, ctx.files]}
"""


def _alive(process: psutil.Process) -> bool:
    """Running and not a zombie (an exited child that init has not reaped yet)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@dataclass
class Crash:
    home: Path
    log: Path
    workflow: Path
    repo: Path
    survivors: list[str]  # processes of the killed run still alive after the kill
    first_calls: list[dict[str, Any]]
    resumed: dict[str, Any]  # the second run's result (--json)
    resumed_code: int
    resumed_stderr: str


def _command(workflow: Path, repo: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "agentrt.cli",
        "run",
        str(workflow),
        "-A",
        str(FAULT_AGENTS),
        "-p",
        f"repo={repo}",
        "--json",
    ]


def _wait_for(predicate: Any, timeout: float, what: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"agentrt run ended (code {proc.returncode}) before {what}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


@pytest.fixture(scope="module")
def crash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crash]:
    root = tmp_path_factory.mktemp("crash")
    repo = root / "repo"
    for package in ("context", "flows"):
        shutil.copytree(
            REPO_ROOT / package, repo / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    workflow = root / "rel-crash.yaml"
    workflow.write_text(WORKFLOW)
    home, log = root / "home", root / "log"
    env = cli_env(home, AGENTRT_FAULT_LOG=str(log))

    # First run: killed (SIGKILL, the agentrt process only, as a crash or the OOM killer
    # would) while `slow` hangs, i.e. after a and b finished (ctx may still be running).
    proc = subprocess.Popen(
        _command(workflow, repo),
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group: nothing of it can outlive the test
    )
    try:
        _wait_for(lambda: any(c["name"] == "slow" for c in calls(log)), 240, "slow to start", proc)
        time.sleep(0.5)
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        time.sleep(2)
        survivors = [" ".join(c.cmdline()[:4]) for c in children if _alive(c)]
    finally:
        # Whatever survived the crash (Prefect's embedded server) goes too, as after a reboot.
        _kill_group(proc.pid)
    first_calls = calls(log)

    # Second run: the same command.
    done = subprocess.run(
        _command(workflow, repo),
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
    )
    resumed = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    yield Crash(
        home, log, workflow, repo, survivors, first_calls, resumed, done.returncode, done.stderr
    )


def test_resumed_run_completes_and_serves_finished_agents_from_cache(crash: Crash) -> None:
    assert crash.resumed_code == 0, crash.resumed_stderr[-3000:]
    steps = crash.resumed["steps"]
    assert all(s["state"] in ("completed", "cached") for s in steps.values()), steps
    before = Counter(c["name"] for c in crash.first_calls if c["event"] == "start")
    assert before == {"a": 1, "b": 1, "slow": 1}, crash.first_calls
    after = Counter(c["name"] for c in calls(crash.log) if c["event"] == "start")
    # a and b finished before the kill: cached, never called again; slow and final ran.
    assert after == {"a": 1, "b": 1, "slow": 2, "final": 1}, after
    assert steps["a"]["state"] == steps["b"]["state"] == "cached"
    assert steps["slow"]["state"] == steps["final"]["state"] == "completed"


def test_resumed_result_equals_an_uninterrupted_run(
    crash: Crash, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None
) -> None:
    from agentrt.flows.run import run_workflow

    log = tmp_path / "log"
    log.mkdir()
    (log / "calls-slow").write_text("1")  # slow's hanging first call is behind it
    monkeypatch.setenv("AGENTRT_FAULT_LOG", str(log))
    registry = Registry.discover([FAULT_AGENTS], env=False, entry_points=False)
    baseline = run_workflow(str(crash.workflow), {"repo": str(crash.repo)}, registry=registry)
    assert baseline.state == "completed", baseline.errors
    volatile = {"call", "pid", "started", "ended"}
    for sid, step in baseline.steps.items():
        resumed = crash.resumed["steps"][sid]["output"]
        if sid == "ctx":
            assert resumed == step.output
        else:
            assert {k: v for k, v in resumed.items() if k not in volatile} == {
                k: v for k, v in step.output.items() if k not in volatile
            }, sid


def test_context_store_is_intact_after_the_crash(crash: Crash) -> None:
    from agentrt.context.store import ContextStore

    with ContextStore(crash.home / "context") as store:
        keys = list(store.cache.iterkeys())
        assert keys, "the context store is empty: context_gathering did not use it"
        for key in keys:
            store.get(key)  # every entry decompresses and unpickles
        assert store.cache.check() == []
        assert store.stats().entries == len([k for k in keys if not k.startswith("__agentrt")])


def test_killing_agentrt_run_leaves_no_orphan_server(crash: Crash) -> None:
    assert crash.survivors == []
