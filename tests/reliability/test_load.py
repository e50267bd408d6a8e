"""Load, small enough for CI: concurrent ``agentrt run`` processes against one server and one
AGENTRT_HOME, and a workflow of a hundred agents. ``python -m bench.load`` runs the full
size (20 workflows, 1,000 agents) and writes the figures into docs/benchmarks.md.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.load import max_overlap, run_big, run_concurrent
from tests.reliability.conftest import REPO_ROOT

pytestmark = pytest.mark.usefixtures("prefect_harness")

WORKFLOWS = 4  # 20 in bench/load.py: each process pays ~4 s of CPU for its imports
LIMIT = 2
AGENTS = 100  # 1,000 in bench/load.py


def test_max_overlap() -> None:
    assert max_overlap([]) == 0
    assert max_overlap([(0, 1), (1, 2)]) == 1  # touching intervals do not overlap
    assert max_overlap([(0, 3), (1, 2), (1.5, 4), (5, 6)]) == 3


def test_concurrent_workflows_share_a_server_and_a_home(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    repo = tmp_path / "repo"
    shutil.copytree(
        REPO_ROOT / "context", repo / "context", ignore=shutil.ignore_patterns("__pycache__")
    )
    load = run_concurrent(
        tmp_path / "load",
        str(PREFECT_API_URL.value()),
        repo,
        workflows=WORKFLOWS,
        slots=3,
        limit=LIMIT,
        seconds=0.5,
    )
    assert not load.errors and load.codes == [0] * WORKFLOWS, load.errors
    for result in load.results:
        assert result["state"] == "completed"
        assert {s["state"] for s in result["steps"].values()} <= {"completed", "cached"}
    assert load.records_missing == []
    assert load.slot_records == WORKFLOWS * 3
    # The Prefect tag limit held across processes, and was not stricter than asked.
    assert load.max_slot_overlap == LIMIT
    assert load.store_problems == [] and load.store_entries > 0


def test_a_workflow_of_a_hundred_agents(fault_log: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    big = run_big(str(PREFECT_API_URL.value()), agents=AGENTS)
    assert big.state == "completed"
    assert big.agents == AGENTS and big.task_runs_completed == AGENTS
    assert big.records == AGENTS
    assert len((fault_log / "calls.jsonl").read_text().splitlines()) == 2 * AGENTS  # start, end
