"""The Prefect task runner a workflow's agents run on: thread, process, Dask or Ray."""

from __future__ import annotations

import os
from typing import Any

from agentrt.flows.plan import Plan

__all__ = ["task_runner_for"]


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
