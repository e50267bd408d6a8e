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
