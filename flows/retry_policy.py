"""Which failures are retried, and what to advise when a step fails for good.

Prefect does the retrying (``retries``, ``exponential_backoff``, ``retry_jitter_factor``);
:func:`retry_condition` is its ``retry_condition_fn``, retrying only the exception classes a
manifest names in ``retries.retry_on`` (an agentrt error whose class says
``retryable = False`` never). :func:`failure_hint` is the suggestion in a step's error report.

:func:`infrastructure_failure` tells the agent's own failures from the infrastructure's: the
Prefect server gone or failing, result storage failing, the worker running the agent dead.
An exception raised inside the agent's attempt carries agentrt's mark
(:func:`agentrt.flows.attempt.mark_failure`); one without it came from around the attempt
(Prefect's task engine: concurrency slots, result storage, state reporting).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import BrokenExecutor
from typing import Any, Literal

from agentrt.errors import AgentrtError
from agentrt.flows.attempt import failure_of

__all__ = [
    "Infrastructure",
    "failure_hint",
    "infrastructure_failure",
    "retry_condition",
    "retry_matches",
]

#: What failed when it was not the agent: the Prefect server, result storage, the worker.
Infrastructure = Literal["server", "storage", "worker"]

#: Exception classes (by name, anywhere in the class's bases or in the exception's causes)
#: that mean the Prefect server could not be reached or did not answer: httpx's transport
#: errors, websockets' closed connections, Prefect's failed concurrency-slot requests.
SERVER_ERRORS = frozenset(
    {
        "TransportError",  # httpx: ConnectError, timeouts, protocol errors
        "ConnectionClosed",  # websockets (Prefect's events client)
        "InvalidStatus",
        "ConcurrencySlotAcquisitionError",
        "ConcurrencySlotAcquisitionServiceError",
    }
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _server_error(exc: BaseException) -> bool:
    for e in _chain(exc):
        if {c.__name__ for c in type(e).__mro__} & SERVER_ERRORS:
            return True
        response = getattr(e, "response", None)
        status = getattr(response, "status_code", None)
        if type(e).__name__ == "PrefectHTTPStatusError" and isinstance(status, int):
            return status >= 500
    return False


def infrastructure_failure(exc: BaseException | None) -> Infrastructure | None:
    """What failed under a step when it was not the agent (None: the agent, or unknown).

    ``worker``: the process or Dask worker running the attempt died. For an exception raised
    outside the agent's attempt (no agentrt mark): ``server`` when it is the Prefect server's
    (a connection, a 5xx, a concurrency-slot request), ``storage`` for an ``OSError``
    (writing the result). An agent's own exceptions, network errors included, stay its own.
    """
    if exc is None:
        return None
    if isinstance(exc, BrokenExecutor) or type(exc).__name__ == "KilledWorker":  # Dask's
        return "worker"
    if failure_of(exc) is not None:
        return None
    if _server_error(exc):
        return "server"
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
        return "storage"
    return None


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


def failure_hint(
    exc: BaseException | None,
    error_type: str,
    phase: str,
    agent: str,
    *,
    retry_on: Iterable[str] = (),
    server: str | None = None,
) -> str:
    """What to do about a failed step: the error class's own ``hint`` for agentrt's errors,
    the infrastructure's fix for an infrastructure failure (never the agent's: see
    :func:`infrastructure_failure`). ``retry_on``: the agent's ``retries.retry_on``;
    ``server``: the Prefect API address of the run."""
    kind = infrastructure_failure(exc)
    if kind == "server":
        where = f"at {server} " if server else ""
        return (
            f"the Prefect server {where}stopped answering or failed ({error_type}), not "
            f"{agent}: start it (or see its log) and re-run: completed steps are reused"
        )
    if kind == "storage":
        return (
            f"writing {agent}'s result to Prefect's result storage failed ({error_type}), not "
            f"{agent}: check the free space and permissions of PREFECT_HOME/storage, then "
            "re-run: completed steps are reused"
        )
    if kind == "worker":
        return (
            f"the worker process running {agent} died (out of memory or killed): raise the "
            "machine's memory or resources.memory_mb, give it a smaller input, or run it on "
            "the thread task runner"
        )
    if isinstance(exc, AgentrtError) and exc.hint:
        return exc.hint.format(agent=agent)
    # Errors from outside agentrt (the agent's own code, Python, Prefect, Dask).
    if isinstance(exc, TimeoutError) or "Timeout" in error_type:
        return f"raise timeout_seconds in {agent}'s manifest, or give it a smaller input"
    if isinstance(exc, ImportError):
        return "run `agentrt agents validate` and fix the entrypoint"
    if phase == "execute":
        if exc is not None and retry_matches(exc, frozenset(retry_on)):
            return (
                f"fix the error in {agent}: it failed on every attempt although "
                f"{error_type} is retried (retries.retry_on); raise retries.max if it is "
                "transient, or add a fallback, or mark the agent optional"
            )
        return (
            f"fix the error in {agent}; if it is transient, add {error_type} to retries.retry_on; "
            "or add a fallback, or mark the agent optional"
        )
    return f"see the error above; `agentrt agents show {agent}` shows the manifest"
