"""``agentrt run`` on the embedded server leaves the whole run in Prefect's database.

The embedded server ingests task-run events after the flow has returned, and Prefect stops it
when the process exits: without waiting, a wide run kept only part of its task runs. The run
here uses its own AGENTRT_HOME, so its own embedded server and SQLite database, as a user
without a Prefect server has.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.reliability.conftest import REPO_ROOT, cli_env

AGENTS = 60
NOOP_AGENTS = str(REPO_ROOT / "bench" / "agents")


def _noop_workflow(path: Path, agents: int, **extra: Any) -> Path:
    """A workflow named after ``path`` of ``agents`` independent no-op agents."""
    steps = [
        {"agent": "noop", "id": f"s{i:03d}", "inputs": {"i": {"value": i}}} for i in range(agents)
    ]
    path.write_text(yaml.safe_dump({"name": path.stem, **extra, "steps": steps}))
    return path


def _python(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> str:
    """Run ``python ARGS`` and return its output; a non-zero exit fails the test."""
    done = subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_every_task_run_is_recorded_before_agentrt_run_exits(tmp_path: Path) -> None:
    workflow = _noop_workflow(tmp_path / "wide.yaml", AGENTS, concurrency=16)
    home = tmp_path / "home"
    out = _python(
        ["-m", "agentrt.cli", "run", str(workflow), "-A", NOOP_AGENTS, "--json"],
        cli_env(home),
        tmp_path,
    )
    result = json.loads(out)
    ids = {tid for step in result["steps"].values() for tid in step["task_run_ids"]}
    assert len(ids) == AGENTS
    with sqlite3.connect(home / "prefect" / "prefect.db") as db:
        states = dict(db.execute("SELECT id, state_type FROM task_run").fetchall())
    recorded = {tid: states.get(tid) for tid in ids}
    assert set(recorded.values()) == {"COMPLETED"}, recorded


_SERVER_ENV = """
import json, subprocess
from agentrt.flows import settings
settings.configure_prefect()
settings.guard_embedded_server()
from prefect.server.api.server import SubprocessASGIServer
seen = {}
subprocess.Popen = lambda args, env: seen.update(env)  # capture, start nothing
SubprocessASGIServer._run_uvicorn_command(type("Server", (), {"port": 1})())
print(json.dumps({k: seen.get(k) for k in settings.EMBEDDED_SERVER_DEFAULTS}))
"""


def test_the_embedded_server_records_task_runs_in_batches(tmp_path: Path) -> None:
    batch = "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE"
    flush = "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL"
    for override, expected in (({}, ("50", "1")), ({batch: "7"}, ("7", "1"))):
        out = _python(["-c", _SERVER_ENV], {**cli_env(tmp_path / "home"), **override}, REPO_ROOT)
        seen = json.loads(out.strip().splitlines()[-1])
        assert (seen[batch], seen[flush]) == expected  # the user's environment wins


_RUN_AND_EXIT = """
import sys
from agentrt.agents.registry import Registry
from agentrt.flows import run_workflow
registry = Registry.discover([sys.argv[2]], builtin=False, entry_points=False)
print(run_workflow(sys.argv[1], registry=registry).flow_run_id)
"""


def test_background_artifacts_are_published_before_the_process_exits(tmp_path: Path) -> None:
    """A script that runs a workflow and exits at once still leaves the run's artifacts in
    its own embedded server's database. (Prefect's own exit work can give the publishing
    thread the time it needs; the next test shows that the exit hook waits for it.)"""
    workflow = _noop_workflow(tmp_path / "small.yaml", 20)
    home = tmp_path / "home"
    out = _python(["-c", _RUN_AND_EXIT, str(workflow), NOOP_AGENTS], cli_env(home), tmp_path)
    flow_run_id = out.split()[-1]
    with sqlite3.connect(home / "prefect" / "prefect.db") as db:
        rows = db.execute(
            "SELECT key, type, data FROM artifact WHERE flow_run_id = ?", (flow_run_id,)
        ).fetchall()
    assert {(key, kind) for key, kind, _ in rows} == {
        ("small-report", "markdown"),
        ("small-agents", "table"),
        ("small-agent-metrics", "table"),
        (None, "progress"),
    }, rows
    assert next(json.loads(str(data)) for _, kind, data in rows if kind == "progress") == 100


_SLOW_CALL_THEN_EXIT = """
import asyncio, pathlib, sys
from agentrt.flows.artifacts import _publisher

async def slow():  # stands in for artifact calls waiting behind a busy server
    await asyncio.sleep(1.5)
    pathlib.Path(sys.argv[1]).write_text("published")
    return []

_publisher.submit(slow())
"""


def test_the_interpreter_waits_for_artifacts_still_being_published(tmp_path: Path) -> None:
    marker = tmp_path / "published"
    _python(["-c", _SLOW_CALL_THEN_EXIT, str(marker)], cli_env(tmp_path / "home"), REPO_ROOT)
    assert marker.read_text() == "published"
