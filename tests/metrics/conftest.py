"""Metrics produced by real workflow runs (Prefect test server, fixture agents), once per
session: a run mixing every record state, a failed run, and a cache miss then hit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentrt.agents.registry import Registry
from agentrt.flows.results import RunResult
from agentrt.flows.workflow import WorkflowManifest
from tests.runtime.helpers import FIXTURE_AGENTS

METRICS_AGENTS = Path(__file__).resolve().parent / "fixture_agents"

# Delivered by the ``deliver`` step; ``cite`` cites the first file only: 300 of 1,000 tokens.
ITEMS = [
    {"path": "src/a.py", "tokens": 300},
    {"path": "src/b.py", "tokens": 100},
    {"path": "src/c.py", "tokens": 600},
]


@dataclass
class Recorded:
    """The metrics folder and the runs that filled it (each already finalized)."""

    root: Path
    mixed: RunResult
    failed: RunResult
    first: RunResult
    cached: RunResult
    files: dict[str, Path]


def step(agent: str, name: str | None = None, **inputs: Any) -> dict[str, Any]:
    values = {"name": {"value": name or agent}, **{k: {"value": v} for k, v in inputs.items()}}
    return {"agent": agent, "id": name or agent, "inputs": values}


def run(registry: Registry, workdir: Path, name: str, steps: list[dict[str, Any]]) -> RunResult:
    from agentrt.flows.run import run_workflow

    workdir.mkdir(parents=True, exist_ok=True)
    spec = {
        "name": name,
        "params": {"workdir": {"type": "path", "default": str(workdir)}},
        "steps": steps,
    }
    return run_workflow(WorkflowManifest.model_validate(spec), registry=registry)


def finalize(result: RunResult) -> Path:
    """What the flow does at its end (until the runtime calls it itself, then a no-op)."""
    from agentrt.flows.metrics import finalize_run
    from agentrt.flows.settings import metrics_dir

    path = finalize_run(result, metrics_dir() / "spool" / str(result.flow_run_id))
    assert path is not None, "finalize_run wrote nothing (see the agentrt.metrics log)"
    return path


@pytest.fixture(scope="session")
def registry() -> Registry:
    return Registry.discover([FIXTURE_AGENTS, METRICS_AGENTS], builtin=False, entry_points=False)


@pytest.fixture(scope="session")
def recorded(
    prefect_harness: None, registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Recorded]:
    root = tmp_path_factory.mktemp("metrics")
    work = tmp_path_factory.mktemp("work")
    data = work / "input.txt"
    data.write_text("hello")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AGENTRT_METRICS_DIR", str(root))
        for name in ("AGENTRT_PRICES", "AGENTRT_LLM_BASE_URL", "OPENAI_BASE_URL"):
            mp.delenv(name, raising=False)  # the built-in price of openai:gpt-4o-mini
        mixed = run(
            registry,
            work / "mixed",
            "metrics-mixed",
            [
                {"agent": "deliver", "inputs": {"items": {"value": ITEMS}}},
                {"agent": "cite", "inputs": {"files": "deliver.files"}},
                {
                    "agent": "usage",
                    "inputs": {
                        "input_tokens": {"value": 1200},
                        "output_tokens": {"value": 80},
                        "delivered": {"value": 1000},
                        "referenced": {"value": 250},
                        "model": {"value": "openai:gpt-4o-mini"},  # 0.15/0.60 $ per M
                    },
                },
                step("alpha"),
                step("flaky", fail_times=1),
                step("broken_with_fallback"),
                step("optional_broken"),
                {"agent": "consumer", "inputs": {"files": "optional_broken.files"}},
            ],
        )
        failed = run(
            registry,
            work / "failed",
            "metrics-failed",
            [
                step("flaky", name="flaky_dead", fail_times=9),
                {**step("beta"), "after": ["flaky_dead"]},
            ],
        )
        reader = [{"agent": "reader", "inputs": {"path": {"value": str(data)}}}]
        first = run(registry, work / "cache", "metrics-cache", reader)
        files = {"mixed": finalize(mixed), "failed": finalize(failed), "first": finalize(first)}
        cached = run(registry, work / "cache", "metrics-cache", reader)
        files["cached"] = finalize(cached)
    # The environment is restored: tests that need metrics_dir() set it themselves.
    yield Recorded(root, mixed, failed, first, cached, files)
