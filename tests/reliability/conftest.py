"""Shared set-up for the reliability tests: the fault-injection agents and run helpers."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from agentrt.agents.registry import Registry

HERE = Path(__file__).resolve().parent
FAULT_AGENTS = HERE / "fault_agents"
CORPUS = HERE / "corpus"
REPO_ROOT = HERE.parents[1]

# The fault agent's helpers (its log reader) are used by the tests themselves.
if str(FAULT_AGENTS) not in sys.path:
    sys.path.insert(0, str(FAULT_AGENTS))


@pytest.fixture(scope="session")
def fault_registry() -> Registry:
    registry = Registry.discover([FAULT_AGENTS], builtin=False, env=False, entry_points=False)
    assert not registry.problems, registry.problems
    return registry


@pytest.fixture
def fault_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the fault agents log their calls in this test (``$AGENTRT_FAULT_LOG``)."""
    folder = tmp_path / "fault-log"
    folder.mkdir()
    monkeypatch.setenv("AGENTRT_FAULT_LOG", str(folder))
    return folder


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment for an ``agentrt`` subprocess with its own AGENTRT_HOME (and so its own
    embedded Prefect server, unless PREFECT_API_URL is given in ``extra``)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "AGENTRT_"))
        or k in ("PREFECT_SERVER_ANALYTICS_ENABLED", "AGENTRT_SERVER")
    }
    env.update(
        {
            "AGENTRT_HOME": str(home),
            "PYTHONPATH": str(REPO_ROOT),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "NO_COLOR": "1",
            "COLUMNS": "200",
            **extra,
        }
    )
    return env


def step(agent: str, sid: str | None = None, **inputs: Any) -> dict[str, Any]:
    """A workflow step whose inputs are literals; ``name`` defaults to the step id."""
    sid = sid or agent
    values = {"name": {"value": sid}, **{k: {"value": v} for k, v in inputs.items()}}
    return {"agent": agent, "id": sid, "inputs": values}
