"""Hand-built run histories and run results for the metrics tests that need no Prefect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pandas as pd

from agentrt.flows.metrics import AgentRunRecord, records_frame
from agentrt.flows.results import AttemptRecord, RunResult, StepResult

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
_ids = count(1)


def record(agent: str = "alpha", *, run: int = 1, step: str | None = None, **fields: Any) -> dict:
    """One metrics record; ``run`` numbers the flow run (one per day from ``T0``)."""
    started = T0 + timedelta(days=run - 1, seconds=next(_ids))
    state = fields.get("state", "completed")
    executed = fields.pop("executed", state not in ("cached", "skipped"))
    base = {
        "record_id": f"r{next(_ids)}",
        "workflow": "wf",
        "flow_run_id": f"run-{run}",
        "task_run_id": f"task-{run}-{step or agent}",
        "step": step or agent,
        "agent_id": agent,
        "agent_version": "1.0.0",
        "attempt": 1 if executed else 0,
        "state": state,
        "step_state": state,
        "executed": executed,
        "final": True,
        "wall_seconds": 1.0 if executed else None,
        "cpu_seconds": 0.5 if executed else None,
        "cache_hit": state == "cached",
        "fallback_used": False,
        "started_at": started,
        "ended_at": started + timedelta(seconds=1),
        "run_started_at": T0 + timedelta(days=run - 1),
    }
    base.update(fields)
    return AgentRunRecord.model_validate(base).model_dump()


def frame(rows: list[dict]) -> pd.DataFrame:
    return records_frame(rows)


def attempt(step: str, agent: str = "alpha", attempt: int = 1, **fields: Any) -> AttemptRecord:
    started = T0 + timedelta(seconds=attempt)
    values = {
        "workflow": "wf",
        "flow_run_id": "flow-1",
        "task_run_id": f"task-{step}-{agent}",
        "step": step,
        "agent_id": agent,
        "agent_version": "1.0.0",
        "attempt": attempt,
        "state": "completed",
        "phases": {"initialise": 0.01, "execute": 0.5, "validate": 0.01, "cleanup": 0.0},
        "started_at": started,
        "ended_at": started + timedelta(seconds=0.5),
        "wall_seconds": 0.52,
        "cpu_seconds": 0.3,
        "peak_memory_mb": 120.0,
        **fields,
    }
    return AttemptRecord.model_validate(values)


def step_result(step: str, state: str, agent: str = "alpha@1.0.0", **fields: Any) -> StepResult:
    return StepResult.model_validate(
        {
            "step": step,
            "agent": agent,
            "state": state,
            "started_at": T0 if state != "skipped" else None,
            "ended_at": T0 + timedelta(seconds=1) if state != "skipped" else None,
            "duration_seconds": 1.0 if state != "skipped" else 0.0,
            **fields,
        }
    )


def run_result(
    steps: list[StepResult],
    levels: list[list[str]] | None = None,
    flow_run_id: str | None = "flow-1",
    started_at: datetime = T0,
) -> RunResult:
    return RunResult(
        workflow="wf",
        flow_run_id=flow_run_id,
        state="completed",
        params={},
        steps={s.step: s for s in steps},
        levels=levels or [[s.step for s in steps]],
        started_at=started_at,
        ended_at=started_at + timedelta(seconds=2),
        duration_seconds=2.0,
    )


def spool(folder: Any, attempts: list[AttemptRecord]) -> None:
    """Write attempt records as the lifecycle does: one JSON file each."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, a in enumerate(attempts):
        (folder / f"{a.step}-{a.agent_id}-{a.attempt}-{n:08x}.json").write_text(a.model_dump_json())
