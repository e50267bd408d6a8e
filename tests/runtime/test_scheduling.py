"""Which ready step starts first when workers are scarce, and what keys the result cache.

Real Prefect runs (the session's test server). The agents live in a temporary folder with a
module of their own, so their manifests can say anything (and be edited between runs).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agentrt.agents.registry import Registry
from agentrt.flows.results import RunResult
from agentrt.flows.workflow import WorkflowManifest
from tests.runtime.helpers import FIXTURE_AGENTS, write

pytestmark = pytest.mark.usefixtures("prefect_harness")


LINES = """
def lines(inputs: dict) -> dict:
    \"\"\"The lines of a file; counts its calls next to it.\"\"\"
    with open(inputs["path"] + ".calls", "a") as fh:
        fh.write("call\\n")
    return {"items": Path(inputs["path"]).read_text().splitlines()}
"""


def _agents(folder: Path, module: str, manifests: dict[str, str]) -> Registry:
    """A registry of agents in ``folder`` running ``rt_agents.work`` (copied as ``module``)
    unless a manifest names its own entrypoint (``module:lines``: :data:`LINES`)."""
    folder.mkdir(parents=True, exist_ok=True)
    code = (FIXTURE_AGENTS / "rt_agents.py").read_text() + LINES
    (folder / f"{module}.py").write_text(code)
    for agent_id, extra in manifests.items():
        head = f"id: {agent_id}\nversion: 1.0.0\n"
        if "entrypoint:" not in extra:
            head += f"entrypoint: {module}:work\ninput: {module}:WorkIn\noutput: {module}:WorkOut\n"
        write(folder / f"{agent_id}.yaml", head + textwrap.dedent(extra))
    return Registry.discover([folder], builtin=False, entry_points=False)


def _run(registry: Registry, workdir: Path, steps: list[dict[str, Any]], **extra: Any) -> RunResult:
    from agentrt.flows.run import run_workflow

    spec = {
        "name": "sched-wf",
        "params": {"workdir": {"type": "path", "default": str(workdir)}, **extra.pop("params", {})},
        "steps": steps,
        **extra,
    }
    return run_workflow(WorkflowManifest.model_validate(spec), registry=registry)


def _step(agent: str, name: str | None = None, **more: Any) -> dict[str, Any]:
    return {
        "agent": agent,
        "id": name or agent,
        "inputs": {"name": {"value": name or agent}},
        **more,
    }


def _started_order(workdir: Path) -> list[str]:
    lines = (workdir / "events.jsonl").read_text().splitlines()
    return [e["name"] for e in sorted(map(json.loads, lines), key=lambda e: e["t"])]


def test_higher_priority_starts_first_when_workers_are_scarce(tmp_path: Path) -> None:
    registry = _agents(
        tmp_path / "agents",
        "prio_agents",
        {
            "low": "priority: 0\ncache: {enabled: false}\n",
            "high": "priority: 10\ncache: {enabled: false}\n",
            "mid": "priority: 5\ncache: {enabled: false}\n",
        },
    )
    work = tmp_path / "work"
    work.mkdir()
    # Listed lowest first: the plan order alone would start low first.
    result = _run(registry, work, [_step("low"), _step("high"), _step("mid")], concurrency=1)
    assert result.state == "completed", result.errors
    assert _started_order(work) == ["high", "mid", "low"]
    steps = result.steps
    assert steps["high"].started_at <= steps["mid"].started_at <= steps["low"].started_at


def test_ties_go_to_the_longer_chain_and_a_later_ready_step_can_overtake(
    tmp_path: Path,
) -> None:
    """``side`` and ``head`` tie on priority; ``head`` has a step after it, so it starts first
    although ``side`` comes first in the plan. While ``head`` runs, ``side`` waits in the
    driver: ``urgent`` (priority 10, after ``head``) is not ready yet but goes before it."""
    registry = _agents(
        tmp_path / "agents",
        "chain_agents",
        {
            "side": "cache: {enabled: false}\n",
            "head": "cache: {enabled: false}\n",
            "urgent": "priority: 10\ncache: {enabled: false}\n",
        },
    )
    work = tmp_path / "work"
    work.mkdir()
    steps = [
        _step("side"),
        {**_step("head"), "inputs": {"name": {"value": "head"}, "seconds": {"value": 0.3}}},
        _step("urgent", after=["head"]),
    ]
    result = _run(registry, work, steps, concurrency=1)
    assert result.state == "completed", result.errors
    assert _started_order(work) == ["head", "urgent", "side"]


def test_step_order_ranks_priority_then_chain_then_plan(tmp_path: Path) -> None:
    from agentrt.flows.driver import step_order
    from agentrt.flows.plan import build_plan

    registry = _agents(
        tmp_path,
        "order_agents",
        {"a": "", "b": "", "c": "", "d": "priority: 3\n", "e": "priority: -1\n"},
    )
    spec = {
        "name": "order",
        "params": {"workdir": {"type": "path", "default": "."}},
        "steps": [
            _step("a"),
            _step("b"),  # b → c: a chain of one step after it
            _step("c", after=["b"]),
            _step("d"),
            _step("e"),
        ],
    }
    plan = build_plan(WorkflowManifest.model_validate(spec), registry)
    order = step_order(plan)
    assert sorted(order, key=order.__getitem__) == ["d", "b", "a", "c", "e"]


LISTER = """
entrypoint: cache_agents:lines
description: {description}
input:
  type: object
  required: [path]
  properties:
    path: {{type: string}}
output:
  type: object
  required: [items]
  properties:
    items: {{type: array, items: {{type: string}}}}
"""


def test_manifest_edits_that_change_behaviour_rerun_the_agent(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("one\ntwo\n")
    work = tmp_path / "work"
    work.mkdir()
    folder = tmp_path / "agents"
    steps = [{"agent": "lister", "inputs": {"path": {"value": str(data)}}}]

    def run(extra: str = "", description: str = "lists lines") -> RunResult:
        manifest = LISTER.format(description=description) + extra
        registry = _agents(folder, "cache_agents", {"lister": manifest})
        return _run(registry, work, steps)

    def calls() -> int:
        return Path(f"{data}.calls").read_text().count("call")

    assert run().steps["lister"].state == "completed"
    second = run().steps["lister"]
    assert second.state == "cached" and second.output == {"items": ["one", "two"]}
    # Documentation only: still served from the cache.
    assert run(description="lists the lines of a file").steps["lister"].state == "cached"
    assert calls() == 1
    # A check the cached output violates: the agent runs again, and fails the check.
    failed = run("checks: [{field: items, max_items: 1}]\n")
    assert failed.state == "failed"
    assert failed.steps["lister"].state == "failed"
    assert failed.steps["lister"].error.phase == "validate", failed.steps["lister"].error
    assert calls() == 2


def test_the_steps_inputs_mapping_keys_the_cache(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("one\n")
    registry = _agents(
        tmp_path / "agents",
        "mapping_agents",
        {"lister": LISTER.format(description="x").replace("cache_agents", "mapping_agents")},
    )
    literal = [{"agent": "lister", "inputs": {"path": {"value": str(data)}}}]
    from_param = [{"agent": "lister", "inputs": {"path": "params.file"}}]
    params = {"file": {"type": "path", "default": str(data)}}
    work = tmp_path / "work"
    work.mkdir()
    assert _run(registry, work, literal, params=params).steps["lister"].state == "completed"
    assert _run(registry, work, literal, params=params).steps["lister"].state == "cached"
    # The same value, mapped from a parameter instead: a different step configuration.
    assert _run(registry, work, from_param, params=params).steps["lister"].state == "completed"
    assert _run(registry, work, from_param, params=params).steps["lister"].state == "cached"


def test_manifest_fingerprint_keys_behaviour_not_documentation() -> None:
    from agentrt.agents.manifest import AgentManifest
    from agentrt.flows.cache_policy import UNKEYED_FIELDS, manifest_fingerprint

    base = {"id": "x", "version": "1.0.0", "entrypoint": "m:f", "kind": "llm", "prompt": "p"}
    key = manifest_fingerprint(AgentManifest.model_validate(base))
    changes: dict[str, Any] = {
        "prompt": "q",
        "checks": [{"field": "items", "max_items": 1}],
        "min_confidence": 0.5,
        "fallbacks": ["y"],
        "entrypoint": "m:g",
        "input": "m:In",
        "output": "m:Out",
        "context": {"sources": ["repo"]},
        "cache": {"include": ["*.py"]},
    }
    for name, value in changes.items():
        edited = AgentManifest.model_validate({**base, name: value})
        assert manifest_fingerprint(edited) != key, name
    same = {"description": "d", "priority": 5, "retries": {"max": 2}, "model": "openai:o"}
    for name, value in same.items():
        assert name in UNKEYED_FIELDS
        edited = AgentManifest.model_validate({**base, name: value})
        assert manifest_fingerprint(edited) == key, name
