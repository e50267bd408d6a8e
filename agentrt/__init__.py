"""agentrt: an agent runtime for context-limited LLM software-engineering work, on Prefect.

The public API::

    import agentrt

    result = agentrt.run_workflow("code-analysis", {"repo": "."})
    registry = agentrt.Registry.discover()
    selection = agentrt.select(".", "where are retries configured?", budget=4000)

Names are loaded on first use (PEP 562), so ``import agentrt`` is cheap and does not import
Prefect; running a workflow does. The subpackages are ``agentrt.agents`` (manifests, the
registry, the built-in agents), ``agentrt.context`` (the context manager) and
``agentrt.flows`` (workflows, the compiler to Prefect flows, reports and metrics).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentrt.lazy import lazy_exports

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS: dict[str, str] = {
    # errors
    "AgentrtError": "agentrt.errors",
    "ManifestError": "agentrt.agents.diagnostics",
    "Problem": "agentrt.agents.diagnostics",
    "AgentNotFound": "agentrt.agents.registry",
    "ResolutionError": "agentrt.agents.registry",
    # manifests and the registry
    "AgentManifest": "agentrt.agents.manifest",
    "load_manifest": "agentrt.agents.manifest",
    "Registry": "agentrt.agents.registry",
    "RegisteredAgent": "agentrt.agents.registry",
    "WorkflowManifest": "agentrt.flows.workflow",
    "load_workflow": "agentrt.flows.workflow",
    "find_workflow": "agentrt.flows.workflow",
    "discover_workflows": "agentrt.flows.workflow",
    # what an agent receives
    "AgentContext": "agentrt.agents.agent_context",
    "TokenUsage": "agentrt.agents.agent_context",
    # running workflows
    "run_workflow": "agentrt.flows.run",
    "arun_workflow": "agentrt.flows.run",
    "RunResult": "agentrt.flows.results",
    "StepResult": "agentrt.flows.results",
    "AttemptRecord": "agentrt.flows.results",
    "ErrorReport": "agentrt.flows.results",
    # context selection
    "select": "agentrt.context.select",
    "Selection": "agentrt.context.select",
    "select_impact": "agentrt.context.impact",
    "ImpactSelection": "agentrt.context.impact",
    "select_issue": "agentrt.context.issue",
    "IssuePicks": "agentrt.context.issue",
    "IssueSelection": "agentrt.context.issue",
    "SelectionItem": "agentrt.context.items",
    "count_tokens": "agentrt.context.tokens",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from agentrt.agents.agent_context import AgentContext, TokenUsage
    from agentrt.agents.diagnostics import ManifestError, Problem
    from agentrt.agents.manifest import AgentManifest, load_manifest
    from agentrt.agents.registry import AgentNotFound, RegisteredAgent, Registry, ResolutionError
    from agentrt.context.impact import ImpactSelection, select_impact
    from agentrt.context.issue import IssuePicks, IssueSelection, select_issue
    from agentrt.context.items import SelectionItem
    from agentrt.context.select import Selection, select
    from agentrt.context.tokens import count_tokens
    from agentrt.errors import AgentrtError
    from agentrt.flows.results import AttemptRecord, ErrorReport, RunResult, StepResult
    from agentrt.flows.run import arun_workflow, run_workflow
    from agentrt.flows.workflow import (
        WorkflowManifest,
        discover_workflows,
        find_workflow,
        load_workflow,
    )


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
