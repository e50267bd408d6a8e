"""Scale-out: the code-analysis pipeline on a process pool and on a local Dask cluster.

Agents and their inputs/outputs must survive pickling into other processes, and the
results must not depend on where the agents ran. Each runner analyses its own copy of the
same small repository (a different path, so Prefect's cache does not serve one run from
another), and the outputs are compared with the thread runner's after the path is
normalised. Two ``pid_probe`` agents run beside the real ones and report their process id,
which shows that agents ran outside the test process.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from agentrt.agents.registry import Registry
from agentrt.flows.results import RunEvents
from agentrt.flows.run import run_workflow
from tests.deploy.scenario import FILES

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

PROBE_AGENT = """\
id: pid_probe
version: 1.0.0
description: Reports the process it ran in.
entrypoint: probe:run
input: probe:In
output: probe:Out
capabilities: [testing]
cache: {enabled: false}
"""

PROBE_CODE = '''\
"""Which process ran this agent."""
import os

from pydantic import BaseModel


class In(BaseModel):
    repo: str


class Out(BaseModel):
    summary: str
    pid: int


def run(inputs: In) -> Out:
    return Out(summary=f"ran in {os.getpid()}", pid=os.getpid())
'''

CODE_ANALYSIS_AGENTS = {
    "context_gathering",
    "architecture_analysis",
    "code_review",
    "documentation_generation",
    "analysis_summary",
}


@pytest.fixture(scope="module")
def probe_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Registry]:
    """The code-analysis steps plus two probes, and a registry that knows the probe."""
    root = tmp_path_factory.mktemp("scaleout")
    agents = root / "agents"
    agents.mkdir()
    (agents / "pid_probe.yaml").write_text(PROBE_AGENT)
    (agents / "probe.py").write_text(PROBE_CODE)
    builtin = Path(__file__).resolve().parents[2] / "flows" / "workflows" / "code-analysis.yaml"
    workflow = root / "code-analysis-probed.yaml"
    spec = yaml.safe_load(builtin.read_text())
    spec["name"] = "code-analysis-probed"
    spec["steps"] += [
        {"agent": "pid_probe", "id": probe, "after": ["context_gathering"]}
        for probe in ("probe_a", "probe_b")
    ]
    workflow.write_text(yaml.safe_dump(spec, sort_keys=False))
    return workflow, Registry.discover([agents])


def analyse(tmp_path: Path, setup: tuple[Path, Registry], runner: str) -> tuple[Any, Path]:
    repo = tmp_path / f"repo-{runner}"
    for rel, text in FILES.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    workflow, registry = setup
    result = run_workflow(
        str(workflow),
        {"repo": str(repo), "task": "add and run"},
        registry=registry,
        task_runner=runner,
    )
    assert result.state == "completed", [e.render() for e in result.errors]
    return result, repo


def agent_outputs(result: Any, repo: Path) -> dict[str, Any]:
    """The real agents' outputs, with the repository path made neutral."""
    outputs = {k: v for k, v in result.outputs.items() if k in CODE_ANALYSIS_AGENTS}
    text = json.dumps(outputs, sort_keys=True).replace(str(repo.resolve()), "<repo>")
    return json.loads(text.replace(str(repo), "<repo>"))


def probe_pids(result: Any) -> set[int]:
    return {result.outputs[p]["pid"] for p in ("probe_a", "probe_b")}


@pytest.fixture(scope="module")
def thread_baseline(
    tmp_path_factory: pytest.TempPathFactory, probe_setup: tuple[Path, Registry]
) -> dict[str, Any]:
    result, repo = analyse(tmp_path_factory.mktemp("thread"), probe_setup, "thread")
    assert set(result.outputs) == CODE_ANALYSIS_AGENTS | {"probe_a", "probe_b"}
    assert probe_pids(result) == {os.getpid()}  # the probe tells the truth
    return agent_outputs(result, repo)


def test_process_pool_runs_agents_in_other_processes_with_equal_results(
    tmp_path: Path, probe_setup: tuple[Path, Registry], thread_baseline: dict[str, Any]
) -> None:
    result, repo = analyse(tmp_path, probe_setup, "process")
    assert os.getpid() not in probe_pids(result)
    assert agent_outputs(result, repo) == thread_baseline
    # The workers' attempt records (spool files, not the flow process's memory) reach the
    # run's metrics file: one final row per step.
    rows = pd.read_parquet(result.report_paths["metrics"])
    assert set(rows.loc[rows["final"], "step"]) == set(result.steps)


def test_dask_cluster_with_two_workers_gives_the_thread_runners_results(
    tmp_path: Path, probe_setup: tuple[Path, Registry], thread_baseline: dict[str, Any]
) -> None:
    pytest.importorskip(
        "prefect_dask", reason="prefect-dask is not installed: pip install -e '.[dask]'"
    )
    # The workflow's task_runner spec: a local cluster of 2 worker processes.
    result, repo = analyse(tmp_path, probe_setup, "dask")
    pids = probe_pids(result)
    assert os.getpid() not in pids
    assert all(pid > 0 for pid in pids)
    assert agent_outputs(result, repo) == thread_baseline
    # No model in tests: analysis_summary's fallback wrote the guide (not a failure).
    assert {s.state for s in result.steps.values()} == {"completed", "fallback"}
    assert result.steps["analysis_summary"].no_model and result.fallbacks == 0


class _LiveProgress:
    """Like the CLI's live table: a progress callback that holds a lock (not picklable)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.seen: list[tuple[str, str]] = []

    def __call__(self, step: str, state: str, result: Any = None) -> None:
        with self.lock:
            self.seen.append((step, state))


def test_dask_with_a_live_progress_callback_like_the_cli(
    tmp_path: Path, probe_setup: tuple[Path, Registry]
) -> None:
    pytest.importorskip("prefect_dask")
    progress = _LiveProgress()
    repo = tmp_path / "repo"
    for rel, text in FILES.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    workflow, registry = probe_setup
    result = run_workflow(
        str(workflow),
        {"repo": str(repo)},
        registry=registry,
        task_runner="dask",
        events=RunEvents(on_step=progress),
    )
    assert result.state == "completed", [e.render() for e in result.errors]
    assert ("probe_a", "completed") in progress.seen


def test_ray_is_reported_clearly_when_missing() -> None:
    if shutil.which("ray") or _importable("prefect_ray"):
        pytest.skip("prefect-ray is installed here; the ray runner is exercised by hand")
    from agentrt.flows.run import prepare
    from agentrt.flows.task_runners import task_runner_for

    plan, _ = prepare("code-analysis", strict=False)
    with pytest.raises(ValueError, match=r"pip install 'agentrt\[ray\]'"):
        task_runner_for(plan, "ray")


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
