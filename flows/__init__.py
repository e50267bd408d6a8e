"""Workflow manifests, the manifest-to-Prefect-flow compiler, reports and metrics.

Public API (importing it does not import Prefect; running a workflow does)::

    from agentrt.flows import run_workflow
    result = run_workflow("code-analysis", {"repo": "."})

Names are loaded on first use, so importing this package does not load the runtime.
"""

from __future__ import annotations

from agentrt.lazy import lazy_exports

_EXPORTS = {
    "AgentContext": "agentrt.agents.agent_context",
    "AttemptRecord": "agentrt.flows.results",
    "ErrorReport": "agentrt.flows.results",
    "RunEvents": "agentrt.flows.results",
    "RunResult": "agentrt.flows.results",
    "StepResult": "agentrt.flows.results",
    "arun_workflow": "agentrt.flows.run",
    "drain_artifacts": "agentrt.flows.artifacts",
    "prepare": "agentrt.flows.run",
    "run_workflow": "agentrt.flows.run",
    "WorkflowManifest": "agentrt.flows.workflow",
    "discover_workflows": "agentrt.flows.workflow",
    "find_workflow": "agentrt.flows.workflow",
    "load_workflow": "agentrt.flows.workflow",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
