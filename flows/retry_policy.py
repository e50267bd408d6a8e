"""Which failures are retried, and what to advise when a step fails for good.

Prefect does the retrying (``retries``, ``exponential_backoff``, ``retry_jitter_factor``);
:func:`retry_condition` is its ``retry_condition_fn``, retrying only the exception classes a
manifest names in ``retries.retry_on`` (an agentrt error whose class says
``retryable = False`` never). :func:`failure_hint` is the suggestion in a step's error report.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import BrokenExecutor
from typing import Any

from agentrt.errors import AgentrtError

__all__ = ["failure_hint", "retry_condition", "retry_matches"]


def retry_matches(exc: BaseException, names: frozenset[str]) -> bool:
    """Whether ``exc`` (or a base class of it) is named in ``retry_on``.

    An agentrt error whose class says ``retryable = False`` is never retried, named or not.
    """
    if isinstance(exc, AgentrtError) and not exc.retryable:
        return False
    mro = type(exc).__mro__
    return any(c.__name__ in names or f"{c.__module__}.{c.__qualname__}" in names for c in mro)


def retry_condition(retry_on: list[str]) -> Callable[[Any, Any, Any], bool]:
    """A Prefect ``retry_condition_fn`` retrying only the exceptions named in ``retry_on``.

    It must be a plain function: Prefect ignores callables that ``inspect.isfunction``
    does not recognise.
    """
    names = frozenset(retry_on)

    def should_retry(task: Any, task_run: Any, state: Any) -> bool:
        try:
            state.result()
        except BaseException as exc:
            return retry_matches(exc, names)
        return False

    return should_retry


def failure_hint(exc: BaseException | None, error_type: str, phase: str, agent: str) -> str:
    """What to do about a failed step: the error class's own ``hint`` for agentrt's errors."""
    if isinstance(exc, AgentrtError) and exc.hint:
        return exc.hint.format(agent=agent)
    # Errors from outside agentrt (the agent's own code, Python, Prefect, Dask).
    if isinstance(exc, TimeoutError) or "Timeout" in error_type:
        return f"raise timeout_seconds in {agent}'s manifest, or give it a smaller input"
    if isinstance(exc, ImportError):
        return "run `agentrt agents validate` and fix the entrypoint"
    if isinstance(exc, BrokenExecutor) or error_type == "KilledWorker":  # Dask's, not imported
        return (
            f"the worker process running {agent} died (out of memory or killed): raise the "
            "machine's memory or resources.memory_mb, give it a smaller input, or run it on "
            "the thread task runner"
        )
    if phase == "execute":
        return (
            f"fix the error in {agent}; if it is transient, add {error_type} to retries.retry_on; "
            "or add a fallback, or mark the agent optional"
        )
    return f"see the error above; `agentrt agents show {agent}` shows the manifest"
