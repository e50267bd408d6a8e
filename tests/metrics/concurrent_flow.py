"""One workflow run in its own process, for the concurrent-writers test.

Usage: python concurrent_flow.py NAME WORKDIR MEETING_FOLDER. The ``meet`` step waits
until the peer flow's ``meet`` step has started, so the two flows overlap; the run is then
finalized into $AGENTRT_METRICS_DIR and the result printed as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agentrt.agents.registry import Registry
from agentrt.flows.metrics import finalize_run
from agentrt.flows.run import run_workflow
from agentrt.flows.settings import metrics_dir
from agentrt.flows.workflow import WorkflowManifest

HERE = Path(__file__).resolve().parent
AGENT_PATHS = [HERE.parent / "runtime" / "fixture_agents", HERE / "fixture_agents"]


def main(name: str, workdir: str, meeting: str) -> None:
    registry = Registry.discover(AGENT_PATHS, builtin=False, entry_points=False)
    spec = {
        "name": name,
        "params": {"workdir": {"type": "path", "default": workdir}},
        "steps": [
            {"agent": "meet", "inputs": {"folder": {"value": meeting}, "name": {"value": name}}},
            {"agent": "alpha", "inputs": {"name": {"value": "alpha"}}},
            {"agent": "flaky", "inputs": {"name": {"value": "flaky"}, "fail_times": {"value": 1}}},
        ],
    }
    result = run_workflow(WorkflowManifest.model_validate(spec), registry=registry)
    path = finalize_run(result, metrics_dir() / "spool" / str(result.flow_run_id))
    meet = result.steps["meet"].output or {}
    print(json.dumps({"flow_run_id": result.flow_run_id, "path": str(path), "met": meet}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
