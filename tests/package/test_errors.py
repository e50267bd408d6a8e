"""One error family: every error agentrt defines derives from AgentrtError, and the runtime
decides retries and hints from the classes' attributes, not from their names."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import agentrt
from agentrt.agents.imports import EntrypointError
from agentrt.errors import AgentrtError
from agentrt.flows import retry_policy
from agentrt.flows.lifecycle import DataFlowError, LowConfidenceError, OutputValidationError

# Importing this module builds a Prefect flow per built-in workflow (its job, for workers).
_SIDE_EFFECTS = {"agentrt.flows.deployments"}


def _modules() -> list[str]:
    names = ["agentrt"]
    for info in pkgutil.walk_packages(agentrt.__path__, "agentrt."):
        names.append(info.name)
    for sub in ("agents", "context", "flows"):
        package = importlib.import_module(f"agentrt.{sub}")
        names += [i.name for i in pkgutil.walk_packages(package.__path__, f"agentrt.{sub}.")]
    return sorted(n for n in set(names) - _SIDE_EFFECTS if not n.endswith(".__main__"))


def _defined_errors() -> list[type[BaseException]]:
    found = []
    for name in _modules():
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if (
                obj.__module__ == name
                and issubclass(obj, Exception)
                and not issubclass(obj, Warning)
                and not obj.__name__.startswith("_")
            ):
                found.append(obj)
    return found


def test_every_public_error_class_derives_from_agentrt_error() -> None:
    errors = _defined_errors()
    assert len(errors) >= 15, [e.__name__ for e in errors]  # the walk found the modules
    outside = [
        f"{e.__module__}.{e.__qualname__}" for e in errors if not issubclass(e, AgentrtError)
    ]
    assert outside == []


def test_errors_keep_their_builtin_bases() -> None:
    # Code that catches ValueError/ImportError/TimeoutError keeps working.
    assert issubclass(DataFlowError, ValueError) and issubclass(EntrypointError, ImportError)
    assert issubclass(agentrt.AgentrtError, Exception)


@pytest.mark.parametrize(
    ("error", "named", "expected"),
    [
        (DataFlowError("x"), {"DataFlowError"}, False),  # declared not retryable
        (EntrypointError("x"), {"ImportError"}, False),
        (OutputValidationError("x"), {"ValueError"}, True),
        (ConnectionError("x"), {"ConnectionError"}, True),
        (ConnectionError("x"), {"TimeoutError"}, False),
    ],
)
def test_retry_follows_the_class_attribute(error, named, expected) -> None:
    assert retry_policy.retry_matches(error, frozenset(named)) is expected


def test_a_renamed_subclass_keeps_its_family_behaviour() -> None:
    class RenamedUpstreamMismatch(DataFlowError):
        pass

    class CustomNeverRetry(AgentrtError):
        retryable = False

    exc = RenamedUpstreamMismatch("x")
    assert not retry_policy.retry_matches(exc, frozenset({"RenamedUpstreamMismatch"}))
    assert not retry_policy.retry_matches(CustomNeverRetry(), frozenset({"CustomNeverRetry"}))
    hint = retry_policy.failure_hint(exc, type(exc).__name__, "execute", "reviewer")
    assert hint == DataFlowError.hint


def test_hints_come_from_the_class_and_name_the_agent() -> None:
    exc = LowConfidenceError("0.2 < 0.7")
    hint = retry_policy.failure_hint(exc, "LowConfidenceError", "validate", "reviewer")
    assert hint == "lower min_confidence in reviewer's manifest, or add a fallback agent"
    plain = retry_policy.failure_hint(ValueError("x"), "ValueError", "execute", "reviewer")
    assert "add ValueError to retries.retry_on" in plain


# -- infrastructure failures: never the agent's fault ---------------------------------
def _server_errors() -> list[BaseException]:
    import httpx
    from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError
    from prefect.exceptions import PrefectHTTPStatusError

    request = httpx.Request("POST", "http://127.0.0.1:4200/api/task_runs/")
    slot = ConcurrencySlotAcquisitionError("Unable to acquire concurrency slots")
    slot.__cause__ = httpx.ConnectError("All connection attempts failed")
    return [
        httpx.ConnectError("All connection attempts failed", request=request),
        httpx.ReadTimeout("timed out", request=request),
        slot,
        PrefectHTTPStatusError(
            "Server error '503 Service Unavailable'",
            request=request,
            response=httpx.Response(503, request=request),
        ),
    ]


def test_server_storage_and_worker_failures_are_the_infrastructures() -> None:
    from concurrent.futures.process import BrokenProcessPool

    for exc in _server_errors():
        assert retry_policy.infrastructure_failure(exc) == "server", exc
        hint = retry_policy.failure_hint(
            exc, type(exc).__name__, "execute", "sleepy", server="http://127.0.0.1:4200/api"
        )
        assert hint.startswith("the Prefect server at http://127.0.0.1:4200/api stopped"), hint
        assert "retry_on" not in hint and "fix the error in" not in hint, hint
        assert "re-run: completed steps are reused" in hint
    storage = OSError(28, "No space left on device")
    assert retry_policy.infrastructure_failure(storage) == "storage"
    assert "result storage" in retry_policy.failure_hint(storage, "OSError", "execute", "a")
    assert retry_policy.infrastructure_failure(BrokenProcessPool("gone")) == "worker"


def test_an_agents_own_network_error_stays_its_own() -> None:
    """An exception raised inside the agent's attempt (agentrt marked it) is the agent's,
    even a connection error: its LLM provider may be down, and retry_on may name it."""
    import httpx

    from agentrt.flows.attempt import mark_failure

    for exc in [httpx.ConnectError("provider down"), OSError("no such file")]:
        mark_failure(exc, "execute", 1)
        assert retry_policy.infrastructure_failure(exc) is None
        hint = retry_policy.failure_hint(exc, type(exc).__name__, "execute", "reviewer")
        assert "fix the error in reviewer" in hint
    assert retry_policy.infrastructure_failure(ValueError("x")) is None
    assert retry_policy.infrastructure_failure(None) is None


def test_an_error_retried_to_the_end_is_not_told_to_be_retried() -> None:
    from agentrt.flows.attempt import mark_failure

    exc = ConnectionError("down")
    mark_failure(exc, "execute", 4)
    hint = retry_policy.failure_hint(
        exc, "ConnectionError", "execute", "reviewer", retry_on=["ConnectionError"]
    )
    assert "add ConnectionError to retries.retry_on" not in hint
    assert "raise retries.max" in hint
