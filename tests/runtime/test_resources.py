"""Memory and cores as resources: admission against the workflow's totals, the plan error
for a declaration larger than the whole, the hard memory limit on the process runner, and
each attempt's own peak memory.

Real Prefect runs (the session's test server); the agents live in a temporary folder.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from agentrt.agents.registry import Registry
from agentrt.cli import app
from agentrt.flows.resources import _trim
from agentrt.flows.results import RunResult
from agentrt.flows.workflow import WorkflowManifest
from tests.runtime.helpers import write

CODE = '''
import os
import time

from pydantic import BaseModel, ConfigDict


class HoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = ""
    seconds: float = 0.0
    alloc_mb: int = 0


class HoldOut(BaseModel):
    name: str
    started: float
    ended: float
    pid: int
    allocated: int


def hold(inputs: HoldIn) -> HoldOut:
    """Allocate (and touch) alloc_mb in 1 MB pieces, hold it for `seconds`, return."""
    started = time.time()
    chunks = [bytearray(1 << 20) for _ in range(inputs.alloc_mb)]
    time.sleep(inputs.seconds)
    allocated = len(chunks)
    del chunks
    return HoldOut(
        name=inputs.name, started=started, ended=time.time(), pid=os.getpid(), allocated=allocated
    )
'''


def _agents(folder: Path, manifests: dict[str, str]) -> Registry:
    """Agents running ``hold`` from a module of their own (one name per test: a module once
    imported shadows another of the same name)."""
    folder.mkdir(parents=True, exist_ok=True)
    module = "res_" + re.sub(r"\W", "_", folder.parent.name)
    (folder / f"{module}.py").write_text(CODE)
    for agent_id, extra in manifests.items():
        head = (
            f"id: {agent_id}\nversion: 1.0.0\nentrypoint: {module}:hold\n"
            f"input: {module}:HoldIn\noutput: {module}:HoldOut\ncache: {{enabled: false}}\n"
        )
        write(folder / f"{agent_id}.yaml", head + textwrap.dedent(extra))
    return Registry.discover([folder], builtin=False, entry_points=False)


def _run(registry: Registry, steps: list[dict[str, Any]], **extra: Any) -> RunResult:
    from agentrt.flows.run import run_workflow

    spec = {"name": "res-wf", "steps": steps, **extra}
    return run_workflow(WorkflowManifest.model_validate(spec), registry=registry)


def _step(agent: str, name: str, **inputs: Any) -> dict[str, Any]:
    values = {"name": name, **inputs}
    return {"agent": agent, "id": name, "inputs": {k: {"value": v} for k, v in values.items()}}


def _overlap(result: RunResult, a: str, b: str) -> bool:
    x, y = result.steps[a].output, result.steps[b].output
    return x["started"] < y["ended"] and y["started"] < x["ended"]


def _records(result: RunResult) -> pd.DataFrame:
    return pd.read_parquet(result.report_paths["metrics"])


# -- admission -----------------------------------------------------------------------------
@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize(
    ("field", "big", "small", "total"),
    [("memory_mb", "600", "400", {"memory_mb": 1000}), ("cpus", "1.5", "1", {"cpus": 2})],
)
def test_steps_that_do_not_fit_together_never_overlap(
    tmp_path: Path, field: str, big: str, small: str, total: dict[str, int]
) -> None:
    registry = _agents(
        tmp_path / "agents",
        {"big": f"resources: {{{field}: {big}}}\n", "small": f"resources: {{{field}: {small}}}\n"},
    )
    steps = [_step("big", f"big{i}", seconds=0.6) for i in range(2)]
    steps += [_step("small", f"small{i}", seconds=0.6) for i in range(2)]
    # Two of 60 % (75 % for cores) never run at once; two of 40 % (50 %) do, with the same
    # two workers: the overlap check can see an overlap.
    steps[2]["after"] = steps[3]["after"] = ["big0", "big1"]
    result = _run(registry, steps, concurrency=2, resources=total)
    assert result.state == "completed", result.errors
    assert not _overlap(result, "big0", "big1")
    assert _overlap(result, "small0", "small1")
    records = _records(result).set_index("step")
    first, second = sorted(["big0", "big1"], key=lambda s: records.loc[s, "started_at"])
    assert records.loc[first, "ended_at"] <= records.loc[second, "started_at"]


@pytest.mark.usefixtures("prefect_harness")
def test_a_large_step_is_not_overtaken_and_undeclared_steps_are_not_held(tmp_path: Path) -> None:
    """In step order: ``huge`` (priority 5) waits for ``big`` to end; ``small`` (priority 0)
    would fit beside ``big`` but comes after ``huge``, so it waits too. ``free`` declares
    nothing and runs beside ``big``."""
    registry = _agents(
        tmp_path / "agents",
        {
            "big": "priority: 9\nresources: {memory_mb: 500}\n",
            "huge": "priority: 5\nresources: {memory_mb: 900}\n",
            "small": "resources: {memory_mb: 100}\n",
            "free": "priority: 1\n",
        },
    )
    steps = [
        _step("small", "small", seconds=0.2),
        _step("huge", "huge", seconds=0.2),
        _step("big", "big", seconds=0.6),
        _step("free", "free", seconds=0.6),
    ]
    result = _run(registry, steps, concurrency=4, resources={"memory_mb": 1000})
    assert result.state == "completed", result.errors
    out = {sid: s.output for sid, s in result.steps.items()}
    assert out["huge"]["started"] >= out["big"]["ended"]
    assert out["small"]["started"] >= out["big"]["ended"]
    assert _overlap(result, "big", "free")


# -- a declaration larger than the whole --------------------------------------------------
@pytest.mark.parametrize(
    ("declared", "total", "words"),
    [
        ("memory_mb: 5000", "memory_mb: 4000", ["5000", "4000 MB", "resources.memory_mb"]),
        ("cpus: 3", "cpus: 2", ["resources.cpus: 3", "has 2 in all"]),
        ("memory_mb: 99999999", None, ["99999999", "the machine's available memory"]),
    ],
)
@pytest.mark.parametrize("command", ["show", "run"])
def test_a_declaration_larger_than_the_whole_is_a_plan_error(
    tmp_path: Path, declared: str, total: str | None, words: list[str], command: str
) -> None:
    folder = tmp_path / "agents"
    _agents(folder, {"whale": f"resources: {{{declared}}}\n", "minnow": ""})
    resources = f"resources: {{{total}}}\n" if total else ""
    wf = write(
        tmp_path / "wf.yaml",
        f"name: res-plan\n{resources}steps:\n  - {{agent: minnow}}\n  - {{agent: whale}}\n",
    )
    args = ["workflows", "show", str(wf)] if command == "show" else ["run", str(wf)]
    result = CliRunner().invoke(app, [*args, "-A", str(folder)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stderr + result.stdout
    (line,) = [x for x in result.stderr.splitlines() if "whale" in x]
    assert "whale@1.0.0" in line and "steps.1.agent" in line and "wf.yaml:" in line
    for word in [*words, "lower the agent's"]:
        assert word in line, line


# -- the hard limit on the process runner, and the peak of each attempt -------------------
@pytest.mark.usefixtures("prefect_harness")
def test_the_process_runner_stops_an_agent_beyond_its_memory_mb(tmp_path: Path) -> None:
    registry = _agents(
        tmp_path / "agents",
        {
            "lean": "resources: {memory_mb: 60}\n",
            "roomy": "resources: {memory_mb: 300}\n",
        },
    )
    result = _run(
        registry,
        [
            {**_step("lean", "over", alloc_mb=600, seconds=0.5), "optional": True},
            {**_step("roomy", "within", alloc_mb=100), "after": ["over"]},
        ],
        task_runner={"type": "process", "workers": 1},
        concurrency=1,
        resources={"memory_mb": 2000},
    )
    over, within = result.steps["over"], result.steps["within"]
    assert within.state == "completed", within.error
    assert within.output["allocated"] == 100
    assert over.state == "skipped" and over.error is not None, over
    assert over.error.error_type == "AgentMemoryError" and over.error.attempts == 1
    assert "above its limit of 60 MB (resources.memory_mb)" in over.error.message
    assert "raise resources.memory_mb" in over.error.suggestion
    records = _records(result).set_index("step")
    peak = records.loc["over", "peak_memory_mb"]
    assert 60 < peak < 600, peak  # stopped on the way, not after allocating it all
    assert f"used {peak:,.1f} MB at its peak" in over.error.message
    # Its own 100 MB, less what it reused of memory freed earlier in the worker.
    assert 50 <= records.loc["within", "peak_memory_mb"] < 300


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("runner", ["thread", "process"])
def test_peak_memory_is_each_attempts_own(tmp_path: Path, runner: str) -> None:
    """A small attempt after a large one in the same process records its own peak, not the
    process's lifetime peak (what ru_maxrss gave)."""
    registry = _agents(tmp_path / "agents", {"plain": ""})
    # An unlimited attempt's peak is its RSS rise, and glibc keeps memory that earlier tests
    # in this process freed resident: the large attempt reused ~105 MB of it in one full-suite
    # run (194.5 MB measured). Give it back first, as a limited attempt's start does.
    _trim()
    result = _run(
        registry,
        [
            _step("plain", "large", alloc_mb=300),
            {**_step("plain", "small", alloc_mb=5), "after": ["large"]},
        ],
        task_runner={"type": runner, "workers": 1} if runner == "process" else {"type": runner},
        concurrency=1,
    )
    assert result.state == "completed", result.errors
    assert result.steps["large"].output["pid"] == result.steps["small"].output["pid"]
    records = _records(result).set_index("step")
    assert records.loc["large", "peak_memory_mb"] >= 200
    assert records.loc["small", "peak_memory_mb"] < 100


def test_workflows_show_lists_the_totals_and_each_reservation(tmp_path: Path) -> None:
    folder = tmp_path / "agents"
    _agents(
        folder,
        {
            "main": "resources: {memory_mb: 300, cpus: 1}\nfallbacks: [backup]\n",
            "backup": "resources: {memory_mb: 500}\n",
            "plain": "",
        },
    )
    wf = write(
        tmp_path / "wf.yaml",
        "name: res-show\nresources: {memory_mb: 1000}\nsteps:\n  - {agent: main}\n"
        "  - {agent: plain}\n",
    )
    result = CliRunner().invoke(app, ["workflows", "show", str(wf), "--json", "-A", str(folder)])
    assert result.exit_code == 0, result.output
    res = json.loads(result.stdout)["resources"]
    assert res["memory_mb"] == 1000 and res["memory_from"] == "the workflow's resources.memory_mb"
    assert res["cpus_from"] == "the machine's cores"
    # A step reserves the largest declaration among its agent and its fallbacks.
    assert res["steps"] == {"main": {"memory_mb": 500, "cpus": 1.0}}
