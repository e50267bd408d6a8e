"""ctx.upstream: a step reads its dependencies' validated outputs, typed by the producing
agent's output model; they cross the task boundary as plain data and key the cache."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

import pytest

from agentrt.agents.registry import Registry
from agentrt.flows.attempt import RunInfo, UpstreamOutput
from agentrt.flows.cache_policy import upstream_digest
from agentrt.flows.results import RunResult
from agentrt.flows.schemas import upstream_view
from agentrt.flows.workflow import WorkflowManifest

UPSTREAM_AGENTS = Path(__file__).resolve().parent / "upstream_agents"
sys.path.insert(0, str(UPSTREAM_AGENTS))
from up_agents import Produced  # noqa: E402

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover([UPSTREAM_AGENTS], builtin=False, entry_points=False)


def run(registry: Registry, text: str, name: str = "upstream-wf") -> RunResult:
    from agentrt.flows.run import run_workflow

    spec: dict[str, Any] = {
        "name": name,
        "steps": [
            {"agent": "producer", "inputs": {"text": {"value": text}}},
            {"agent": "raw_producer", "inputs": {"text": {"value": text}}},
            {"agent": "producer", "id": "unrelated", "inputs": {"text": {"value": "other"}}},
            {"agent": "peek", "after": ["producer", "raw_producer"]},
        ],
    }
    return run_workflow(WorkflowManifest.model_validate(spec), registry=registry)


def test_a_step_reads_its_dependencies_outputs_typed(registry: Registry) -> None:
    result = run(registry, "hello", name="upstream-typed")
    assert result.state == "completed", result
    peek = result.steps["peek"].output
    # Only the steps it depends on; a pydantic output model gives an instance, inline JSON
    # Schema the data; the view is read-only.
    assert peek["seen"] == {
        "producer": {"type": "Produced", "value": "hello"},
        "raw_producer": {"type": "dict", "value": "HELLO"},
    }
    assert peek["read_only"] is True


def test_the_cache_key_changes_when_an_upstream_output_changes(registry: Registry) -> None:
    first = run(registry, "one", name="upstream-cache")
    again = run(registry, "one", name="upstream-cache")
    assert first.steps["peek"].state == "completed"
    assert again.steps["peek"].state == "cached"
    # peek's own inputs are the same, but what it can read upstream is not.
    changed = run(registry, "two", name="upstream-cache")
    assert changed.steps["peek"].state == "completed"
    assert changed.steps["peek"].output["seen"]["producer"]["value"] == "two"


def test_upstream_crosses_the_task_boundary_as_plain_data(registry: Registry) -> None:
    policy = registry.get("producer").policy
    entry = UpstreamOutput(
        "producer@1.0.0",
        {"value": "v", "size": 1},
        "up_agents:Produced",
        (str(policy.base_dir), policy.packages),
    )
    run_info = RunInfo(workflow="w", step="s", upstream={"producer": entry})
    copy = pickle.loads(pickle.dumps(run_info))
    assert copy.upstream == {"producer": entry}
    view = upstream_view(copy.upstream)
    assert view["producer"] == Produced(value="v", size=1)
    # The view is a copy: changing it leaves the driver's output alone.
    source = UpstreamOutput("raw@1", {"value": ["a"]})
    raw = upstream_view({"r": source})
    raw["r"]["value"].append("b")
    assert source.output == {"value": ["a"]}
    with pytest.raises(TypeError):
        raw["x"] = {}  # type: ignore[index]
    assert upstream_digest(copy.upstream) != upstream_digest(
        {"producer": UpstreamOutput("producer@1.0.0", {"value": "w", "size": 1})}
    )
    assert upstream_digest({}) is None
