"""Wait until Prefect's embedded server has recorded every task run of a workflow run.

Task-run states reach the Prefect server as events, which the embedded (SQLite) server
ingests after the flow has returned (in batches,
``agentrt.flows.settings.EMBEDDED_SERVER_DEFAULTS``).
Prefect stops the embedded server when the process exits and drops what it has not ingested, so
the Prefect UI showed most agents of a wide run missing or stuck
(``tests/reliability/test_run_history.py`` fails that way without the wait). ``agentrt
run`` therefore waits here before it exits. With a real server (``PREFECT_API_URL``)
nothing is lost at exit and nothing waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from uuid import UUID

from agentrt.flows.results import RunResult

__all__ = ["embedded_server", "task_run_ids", "wait_until_recorded"]


def embedded_server() -> bool:
    """True when runs go to Prefect's embedded server (no ``PREFECT_API_URL``)."""
    from prefect.settings import get_current_settings

    return not get_current_settings().api.url


def task_run_ids(result: RunResult) -> set[str]:
    """The task runs a workflow run made: one per agent run, fallbacks included."""
    return {tid for step in result.steps.values() for tid in step.task_run_ids}


def wait_until_recorded(
    result: RunResult,
    *,
    timeout: float = 120.0,
    stall: float = 10.0,
    poll: float = 0.5,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Block until the server holds every task run of ``result`` in a final state; return
    (recorded, expected).

    Gives up after ``timeout`` seconds, or once nothing new has been recorded for ``stall``
    seconds: a task run whose worker process was killed never reaches a final state.
    Call it in the process that ran the workflow, while its embedded server still runs.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        TaskRunFilter,
        TaskRunFilterId,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    ids = sorted(task_run_ids(result))
    if not ids:
        return 0, 0
    final = [StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED]
    ours = TaskRunFilterId(any_=[UUID(i) for i in ids])
    query = TaskRunFilter(
        id=ours, state=TaskRunFilterState(type=TaskRunFilterStateType(any_=final))
    )
    anything = TaskRunFilter(id=ours)
    bodies = [{"task_runs": f.model_dump(mode="json")} for f in (query, anything)]
    start = moved = time.monotonic()
    seen: list[int] = []
    with get_client(sync_client=True) as client:
        while True:
            counts = []
            for body in bodies:
                response = client.request("POST", "/task_runs/count", json=body)
                response.raise_for_status()
                counts.append(int(response.json()))
            now = time.monotonic()
            if counts != seen:  # progress: more task runs, or more of them final
                seen, moved = counts, now
            if on_progress is not None:
                on_progress(counts[0], len(ids))
            if counts[0] >= len(ids) or now - start >= timeout or now - moved >= stall:
                return counts[0], len(ids)
            time.sleep(poll)
