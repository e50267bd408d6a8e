"""Workflow manifests, the manifest-to-Prefect-flow compiler, reports, metrics and the CLI.

Public API (importing it does not import Prefect; running a workflow does)::

    from flows import run_workflow
    result = run_workflow("code-analysis", {"repo": "."})

Names are loaded on first use, so ``agentrt hook`` (which lives in this package) starts
without loading the runtime.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AgentContext": "flows.lifecycle",
    "AttemptRecord": "flows.results",
    "ErrorReport": "flows.results",
    "RunEvents": "flows.results",
    "RunResult": "flows.results",
    "StepResult": "flows.results",
    "arun_workflow": "flows.run",
    "drain_artifacts": "flows.artifacts",
    "prepare": "flows.run",
    "run_workflow": "flows.run",
    "WorkflowManifest": "flows.workflow",
    "discover_workflows": "flows.workflow",
    "find_workflow": "flows.workflow",
    "load_workflow": "flows.workflow",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'flows' has no attribute {name!r}")
