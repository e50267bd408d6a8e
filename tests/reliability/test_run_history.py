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

import yaml

from tests.reliability.conftest import REPO_ROOT, cli_env

AGENTS = 60


def test_every_task_run_is_recorded_before_agentrt_run_exits(tmp_path: Path) -> None:
    workflow = tmp_path / "wide.yaml"
    workflow.write_text(
        yaml.safe_dump(
            {
                "name": "wide",
                "concurrency": 16,
                "steps": [
                    {"agent": "noop", "id": f"s{i:03d}", "inputs": {"i": {"value": i}}}
                    for i in range(AGENTS)
                ],
            }
        )
    )
    home = tmp_path / "home"
    agents = str(REPO_ROOT / "bench" / "agents")
    done = subprocess.run(
        [sys.executable, "-m", "flows.console", "run", str(workflow), "-A", agents, "--json"],
        env=cli_env(home),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    ids = {tid for step in result["steps"].values() for tid in step["task_run_ids"]}
    assert len(ids) == AGENTS
    with sqlite3.connect(home / "prefect" / "prefect.db") as db:
        states = dict(db.execute("SELECT id, state_type FROM task_run").fetchall())
    recorded = {tid: states.get(tid) for tid in ids}
    assert set(recorded.values()) == {"COMPLETED"}, recorded


_SERVER_ENV = """
import json, subprocess
from flows import settings
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
        done = subprocess.run(
            [sys.executable, "-c", _SERVER_ENV],
            env={**cli_env(tmp_path / "home"), **override},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        assert (seen[batch], seen[flush]) == expected  # the user's environment wins


_RUN_AND_EXIT = """
import sys
from agents.registry import Registry
from flows import run_workflow
registry = Registry.discover([sys.argv[2]], builtin=False, entry_points=False)
print(run_workflow(sys.argv[1], registry=registry).flow_run_id)
"""


def test_background_artifacts_are_published_before_the_process_exits(tmp_path: Path) -> None:
    """A script that runs a workflow and exits at once still leaves the run's artifacts: the
    background publisher is drained at exit, before Prefect stops the embedded server."""
    workflow = tmp_path / "small.yaml"
    steps = [{"agent": "noop", "id": f"s{i}", "inputs": {"i": {"value": i}}} for i in range(20)]
    workflow.write_text(yaml.safe_dump({"name": "small", "steps": steps}))
    home = tmp_path / "home"
    done = subprocess.run(
        [sys.executable, "-c", _RUN_AND_EXIT, str(workflow), str(REPO_ROOT / "bench" / "agents")],
        env=cli_env(home),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    flow_run_id = done.stdout.split()[-1]
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
from flows.artifacts import _publisher

async def slow():  # stands in for artifact calls waiting behind a busy server
    await asyncio.sleep(1.5)
    pathlib.Path(sys.argv[1]).write_text("published")
    return []

_publisher.submit(slow())
"""


def test_the_interpreter_waits_for_artifacts_still_being_published(tmp_path: Path) -> None:
    marker = tmp_path / "published"
    done = subprocess.run(
        [sys.executable, "-c", _SLOW_CALL_THEN_EXIT, str(marker)],
        env=cli_env(tmp_path / "home"),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert marker.read_text() == "published"
