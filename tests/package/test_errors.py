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
