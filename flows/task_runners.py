"""The Prefect task runner a workflow's agents run on: thread, process, Dask or Ray."""

from __future__ import annotations

import os
from typing import Any

from agentrt.flows.plan import Plan

__all__ = ["task_runner_for", "worker_slots"]


def worker_slots(plan: Plan, override: str | None = None) -> int:
    """How many agents the workflow's task runner runs at once: its pool's size (a local
    Dask cluster: its single-threaded workers). For a Dask or Ray cluster at an address,
    whose size agentrt does not know, the workflow's ``concurrency``. The driver hands the
    runner more only when the order in which they start cannot matter."""
    spec = plan.workflow.task_runner
    kind = override or spec.type
    workers = plan.workflow.concurrency.max_workers
    if kind == "process":
        return spec.workers or min(workers, os.cpu_count() or 2)
    if kind == "dask" and not spec.address:
        return spec.workers or 2
    return workers


def task_runner_for(plan: Plan, override: str | None = None) -> Any:
    """The task runner the workflow's manifest asks for (or ``override``, a runner type)."""
    spec = plan.workflow.task_runner
    kind = override or spec.type
    workers = plan.workflow.concurrency.max_workers
    if kind == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "process":
        from prefect.task_runners import ProcessPoolTaskRunner

        return ProcessPoolTaskRunner(max_workers=spec.workers or min(workers, os.cpu_count() or 2))
    if kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError:
            raise ValueError(
                "task_runner dask needs prefect-dask: pip install 'agentrt[dask]'"
            ) from None
        if spec.address:
            return DaskTaskRunner(address=spec.address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": spec.workers or 2,
                "processes": True,
                "threads_per_worker": 1,
            }
        )
    if kind == "ray":
        try:
            from prefect_ray import RayTaskRunner
        except ImportError:
            raise ValueError(
                "task_runner ray needs prefect-ray: pip install 'agentrt[ray]'"
            ) from None
        return RayTaskRunner(address=spec.address) if spec.address else RayTaskRunner()
    raise ValueError(f"unknown task runner {kind!r}; use thread, process, dask or ray")
