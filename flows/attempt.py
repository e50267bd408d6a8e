"""What one attempt of an agent is told about its run, and where a failed attempt failed.

:class:`RunInfo` crosses a Prefect task parameter (passed opaque on the thread runner,
pickled by the process, Dask and Ray runners), so it is a frozen, picklable dataclass of
plain data. The result cache key (:class:`~agentrt.flows.cache_policy.AgentCachePolicy`) reads
three of its fields: ``step_inputs``, ``token_limit`` and a digest of ``upstream``.

:class:`AttemptFailure` is the phase and attempt number of a failed attempt. It rides on the
original exception (see :func:`mark_failure`) rather than wrapping it, because the original
exception must stay what the task raises: Prefect's ``retry_condition_fn`` matches the
manifest's ``retries.retry_on`` against its class, Prefect's state message and logs name
it, and records and reports keep its class name as ``error_type``. A WeakKeyDictionary
would not do either: the process runner hands the exception back pickled (a new object),
and only the exception's ``__dict__`` travels with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["AttemptFailure", "RunInfo", "UpstreamOutput", "failure_of", "mark_failure"]


@dataclass(frozen=True)
class UpstreamOutput:
    """One upstream step's validated output, as plain data for the attempt to type.

    The attempt (:func:`~agentrt.flows.lifecycle.run_agent`) turns it into ``ctx.upstream``:
    an instance of ``schema`` (the producing agent's output model) when it names one, else
    ``output`` itself (inline JSON Schema).
    """

    #: The key (id@version) of the agent that produced the output (a fallback, if one did).
    agent: str
    #: The output as validated, JSON data.
    output: Any
    #: ``module:Model`` of that agent's pydantic output model (None: inline JSON Schema).
    schema: str | None = None
    #: That agent's import policy, (base_dir, packages), to import ``schema`` with.
    policy: tuple[str | None, tuple[str, ...]] = (None, ())


@dataclass(frozen=True, eq=False)
class RunInfo:
    """The run an attempt belongs to (one per step and agent: fallbacks get their own)."""

    workflow: str
    step: str
    params: dict[str, Any] = field(default_factory=dict)
    #: Input field → the key of the agent whose output it came from (for data-flow errors).
    provenance: dict[str, str] = field(default_factory=dict)
    #: The workflow's per-process limits for resources.concurrency tags.
    tag_limits: dict[str, int] = field(default_factory=dict)
    #: The run's metrics spool folder (None: no records kept).
    spool_dir: str | None = None
    #: Why the step got its token slice (the budget grant's reason).
    budget_reason: str | None = None
    #: The most tokens the attempt may deliver: the grant, when the workflow sets a total
    #: budget (None: nothing to enforce).
    token_limit: int | None = None
    #: The key of the agent this one stands in for, when it runs as a fallback.
    fallback_for: str | None = None
    #: The step's ``inputs`` mapping in the workflow, as JSON (part of the cache key).
    step_inputs: str | None = None
    #: The outputs of the steps this one depends on (``after``, ``requires`` and input
    #: sources) that produced one, by step id: ``ctx.upstream`` (part of the cache key).
    upstream: dict[str, UpstreamOutput] = field(default_factory=dict)
    #: The attempt's memory limit in MB (the agent's resources.memory_mb on the process
    #: runner; None: measured, not enforced).
    memory_limit_mb: int | None = None
    #: ``i/N`` when the attempt runs chunk i of N of a chunked step (manifest ``chunking``).
    chunk: str | None = None


@dataclass(frozen=True)
class AttemptFailure:
    """Where a failed attempt failed: its phase and its attempt number (Prefect's run count)."""

    phase: str
    attempt: int


# Not a dunder (Python reserves those) and not a name an agent's exception would use.
_ATTRIBUTE = "_agentrt_failure"


def mark_failure(exc: BaseException, phase: str, attempt: int) -> None:
    """Record on ``exc`` the phase and attempt it failed in (travels when it is pickled)."""
    setattr(exc, _ATTRIBUTE, AttemptFailure(phase, attempt))  # every exception has a __dict__


def failure_of(exc: BaseException | None) -> AttemptFailure | None:
    """The :class:`AttemptFailure` :func:`mark_failure` left on ``exc``, if any."""
    found = getattr(exc, _ATTRIBUTE, None) if exc is not None else None
    return found if isinstance(found, AttemptFailure) else None
