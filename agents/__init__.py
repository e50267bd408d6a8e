"""Agent manifests, the agent registry and the built-in agents.

Public API::

    from agentrt.agents import AgentManifest, Registry, load_manifest
"""

from agentrt.agents.agent_context import AgentContext, TokenUsage
from agentrt.agents.diagnostics import ManifestError, Problem
from agentrt.agents.imports import EntrypointError, ImportPolicy
from agentrt.agents.manifest import AgentManifest, load_manifest, parse_requirement
from agentrt.agents.registry import (
    ENTRY_POINT_GROUP,
    AgentNotFound,
    RegisteredAgent,
    Registry,
    ResolutionError,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "AgentContext",
    "AgentManifest",
    "AgentNotFound",
    "EntrypointError",
    "ImportPolicy",
    "ManifestError",
    "Problem",
    "RegisteredAgent",
    "Registry",
    "ResolutionError",
    "TokenUsage",
    "load_manifest",
    "parse_requirement",
]
