"""The result cache key of an agent's task run: the agent, its code and its inputs' contents.

Prefect's result cache serves a finished task run's result again when the key matches.
:class:`AgentCachePolicy` keys on the agent id and version, the hash of its source, the
manifest fields that change what a completed run returns (:func:`manifest_fingerprint`:
prompt, checks, schemas, …), an LLM agent's model, the step's ``inputs`` mapping in the
workflow, the inputs, and the *contents* of the files and folders the inputs name, so equal
contents share a key whatever the paths' modification times.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect.cache_policies import CachePolicy
from prefect.context import TaskRunContext

from agentrt.context.git import head_commit

if TYPE_CHECKING:
    from agentrt.agents.manifest import AgentManifest

__all__ = ["AgentCachePolicy", "content_fingerprint", "manifest_fingerprint", "upstream_digest"]

#: Manifest fields left out of the cache key: editing them cannot change what a completed
#: run of the agent returns, or they are keyed elsewhere. Every other field is keyed (a field
#: added later too, until it is listed here): kind, entrypoint, input and output schemas
#: (validation), context (what is looked for), fallbacks, min_confidence, checks, cache
#: (which files key it), prompt. An edit to those re-runs the agent instead of serving an
#: output the manifest would now reject or produce differently.
UNKEYED_FIELDS = frozenset(
    {
        "id",  # keyed as the agent key (id@version)
        "version",
        "description",  # documentation
        "capabilities",  # discovery and task tags
        "requires",  # plan edges; the data the agent receives is keyed as its inputs
        "priority",  # scheduling order; the token budget it buys is keyed as budget_tokens
        "resources",  # memory hint and concurrency tag: where and when it runs
        "retries",  # whether a failed attempt is tried again; failures are never cached
        "timeout_seconds",  # when an attempt is cut off; a completed one returned anyway
        "optional",  # what the run does when the agent fails
        "model",  # keyed as the model in effect (AGENTRT_MODEL overrides the manifest's)
    }
)


def manifest_fingerprint(manifest: AgentManifest) -> str:
    """A hash of the manifest's fields that change what a completed run returns (all but
    :data:`UNKEYED_FIELDS`)."""
    data = manifest.model_dump(mode="json", exclude=set(UNKEYED_FIELDS))
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


def upstream_digest(upstream: Any) -> str | None:
    """A hash of the upstream outputs a step receives (step id → producing agent and
    output); None when it receives none."""
    if not upstream:
        return None
    data = {sid: [entry.agent, entry.output] for sid, entry in sorted(upstream.items())}
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


def content_fingerprint(path: str, include: tuple[str, ...] | None) -> str | None:
    """A hash of a file's bytes, or of a folder's files (those ``include`` selects) and
    its checked-out commit; None when ``path`` is neither or cannot be read."""
    p = Path(path)
    try:
        if p.is_file():
            return hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest()
        if p.is_dir():
            from agentrt.context.sources import scan_repository

            scan = scan_repository(p, include=list(include) if include else None)
            tree = scan.fingerprint(store=_hash_store())
            head = head_commit(p)
            return f"{tree}:{head}" if head else tree
    except (OSError, ValueError):
        return None
    return None


def _hash_store() -> Any:
    """The context store, where file content hashes outlive the process: a warm run then
    stats the repository's files instead of reading and hashing them again."""
    from agentrt.context.store import default_store_dir

    return _open_store(default_store_dir())


@functools.lru_cache(maxsize=4)
def _open_store(directory: Path) -> Any:
    try:
        from agentrt.context.store import ContextStore

        return ContextStore(directory)
    except Exception:  # an unusable store only costs the re-hashing
        return None


@dataclass
class AgentCachePolicy(CachePolicy):
    """Cache key = agent id + version + source hash + manifest fingerprint + the step's
    inputs mapping + inputs, with paths keyed by content.

    Two runs with the same agent code and manifest and equal input *contents* share a key,
    whatever the object identity or file modification times; editing a file the agent
    reads, its code, its manifest (but for :data:`UNKEYED_FIELDS`) or the step's ``inputs``
    in the workflow changes the key.
    """

    agent_key: str = ""
    source: str = ""
    manifest: str = ""  # manifest_fingerprint(manifest)
    include: tuple[str, ...] | None = None
    model: str | None = None  # LLM agents: the manifest's model (AGENTRT_MODEL overrides)

    def compute_key(
        self,
        task_ctx: TaskRunContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        values = inputs.get("inputs") or {}
        content = {
            name: content_fingerprint(value, self.include)
            for name, value in sorted(values.items())
            if isinstance(value, str) and value and len(value) < 4096 and os.path.exists(value)
        }
        run = inputs.get("run")
        payload = {
            "agent": self.agent_key,
            "source": self.source,
            "manifest": self.manifest,
            "step_inputs": getattr(run, "step_inputs", None),
            "inputs": values,
            "content": content,
            "budget": inputs.get("budget_tokens"),
            # Enforced only under a workflow budget: an output cached without the limit must
            # not be served to a run that enforces one (the lifecycle check runs on misses).
            "token_limit": getattr(run, "token_limit", None),
            "model": (os.environ.get("AGENTRT_MODEL") or self.model) if self.model else None,
            # What the step can read as ctx.upstream (and an LLM agent renders in its prompt).
            "upstream": upstream_digest(getattr(run, "upstream", None)),
        }
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return f"agentrt-{self.agent_key}-{hashlib.blake2b(blob, digest_size=20).hexdigest()}"
