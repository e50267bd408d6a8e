"""Agent manifests, the agent registry and the built-in agents.

Public API::

    from agents import AgentManifest, Registry, load_manifest
"""

from agents.diagnostics import ManifestError, Problem
from agents.imports import EntrypointError, ImportPolicy
from agents.manifest import AgentManifest, load_manifest, parse_requirement
from agents.registry import (
    ENTRY_POINT_GROUP,
    AgentNotFound,
    RegisteredAgent,
    Registry,
    ResolutionError,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "AgentManifest",
    "AgentNotFound",
    "EntrypointError",
    "ImportPolicy",
    "ManifestError",
    "Problem",
    "RegisteredAgent",
    "Registry",
    "ResolutionError",
    "load_manifest",
    "parse_requirement",
]
