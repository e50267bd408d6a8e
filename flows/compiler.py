"""Manifest → Prefect: one task per agent, one async flow per workflow.

Prefect does the retries (``exponential_backoff`` + ``retry_jitter_factor``, filtered by a
``retry_condition_fn`` built from ``retry_on``: :mod:`agentrt.flows.retry_policy`), timeouts,
the result cache (:mod:`agentrt.flows.cache_policy`), result persistence and the UI. This
module builds the tasks (:func:`make_task`) and the flow (:func:`build_flow`); inside the
flow, :class:`~agentrt.flows.driver.Driver` decides what runs when, and
:func:`~agentrt.flows.run_outputs.write_run_outputs` leaves the run's metrics and report.
Whatever touches Prefect's internals is in :mod:`agentrt.flows.prefect_compat`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed
from prefect.tasks import exponential_backoff

from agentrt.agents.registry import RegisteredAgent
from agentrt.flows.allocation import allocate_budget, check_budget
from agentrt.flows.artifacts import ArtifactsMode, RunArtifacts, abandon_artifacts
from agentrt.flows.cache_policy import AgentCachePolicy, manifest_fingerprint
from agentrt.flows.driver import Driver
from agentrt.flows.lifecycle import hold_spool, run_agent
from agentrt.flows.plan import Plan
from agentrt.flows.prefect_compat import (
    keep_tag_limit_cache,
    parameter_wrapper,
    passes_opaque,
    prime_tag_limit_cache,
    shared_sync_client,
    workers_share_embedded_server,
)
from agentrt.flows.results import RunEvents, RunResult
from agentrt.flows.retry_policy import retry_condition
from agentrt.flows.run_log import buffer_lines
from agentrt.flows.run_outputs import write_run_outputs
from agentrt.flows.server_watch import ServerLoss, ServerWatch
from agentrt.flows.task_runners import task_runner_for, worker_slots

__all__ = ["PREFECT_TIMEOUT_GRACE", "RunHandle", "build_flow", "make_task"]

_base_task = task(run_agent, name="agent", persist_result=True)
#: Seconds Prefect's own task timeout waits beyond the manifest's ``timeout_seconds``.
PREFECT_TIMEOUT_GRACE = 5.0


@dataclass
class RunHandle:
    """What a flow built by :func:`build_flow` hands back to its caller besides its return
    value (filled in as the flow runs; the caller may set ``after_report`` beforehand)."""

    #: The run's result, set once the agents have finished.
    result: RunResult | None = None
    #: Writing the metrics, report and artifacts; the caller awaits it with
    #: ``report_after_return`` (the flow already did otherwise).
    finishing: asyncio.Future[None] | None = None
    #: Called with the result in a worker thread once the report is written (set by the
    #: caller, e.g. to save the result file).
    after_report: Callable[[RunResult], Any] | None = None
    #: Publishes the run's background artifacts; the caller calls it after the flow run's
    #: end is recorded (set only with ``report_after_return`` and background artifacts).
    publish: Callable[[], Any] | None = None
    #: Set when the Prefect server stopped answering during the run (the run then ends
    #: early; the flow run's final state cannot be recorded).
    server_lost: ServerLoss | None = None


def make_task(agent: RegisteredAgent, source_hash: str, *, prefect_timeout: bool = False) -> Any:
    """The Prefect task for one agent, configured from its manifest.

    agentrt's watchdog (:func:`agentrt.flows.lifecycle.run_agent`) enforces the manifest's
    ``timeout_seconds`` on every runner. Prefect's own task timeout is set too, as a
    backstop, only with ``prefect_timeout``: where the task engine runs in a process's main
    thread (the process runner's workers), so that its timer can interrupt the task. In a
    worker thread (thread and Dask runners) it could not, and Prefect says so in a warning
    at the top of every agent's log."""
    m = agent.manifest
    tags = {f"agent:{m.id}", *(f"capability:{c}" for c in m.capabilities)}
    if m.resources.concurrency:
        tags.add(m.resources.concurrency)
    retries = m.retries.max
    options: dict[str, Any] = {
        "name": m.id,
        "task_run_name": m.key,
        "tags": sorted(tags),
        "retries": retries,
        "retry_delay_seconds": exponential_backoff(m.retries.backoff.base)(retries)
        if retries
        else 0,
        "retry_condition_fn": retry_condition(m.retries.retry_on),
        # A backstop only: agentrt's watchdog (agentrt.flows.lifecycle._call) enforces the timeout
        # and records the attempt. With the same value, Prefect's timer (started earlier)
        # would fire first and inject CancelledError into run_agent, losing the record.
        "timeout_seconds": m.timeout_seconds + PREFECT_TIMEOUT_GRACE
        if m.timeout_seconds and prefect_timeout
        else None,
        "persist_result": True,
        "result_serializer": "json",
    }
    if retries and m.retries.backoff.jitter:
        options["retry_jitter_factor"] = m.retries.backoff.jitter
    if m.cache.enabled:
        options["cache_policy"] = AgentCachePolicy(
            agent_key=m.key,
            source=source_hash,
            manifest=manifest_fingerprint(m),  # the prompt, checks, schemas, …
            include=tuple(m.cache.include) if m.cache.include else None,
            model=(m.model or "unset") if m.kind == "llm" else None,
        )
    else:
        options["cache_policy"] = NO_CACHE
    return _base_task.with_options(**options)


_SINKS: dict[int, tuple[RunEvents, RunHandle]] = {}
_sink_ids = itertools.count(1)


def _register_sink(events: RunEvents, handle: RunHandle) -> int:
    key = next(_sink_ids)
    _SINKS[key] = (events, handle)
    return key


def build_flow(
    plan: Plan,
    *,
    events: RunEvents | None = None,
    task_runner: str | None = None,
    spool_root: Path | None = None,
    handle: RunHandle | None = None,
    return_json: bool = True,
    artifacts: ArtifactsMode = "inline",
    report_after_return: bool = False,
) -> Any:
    """The Prefect flow for ``plan``. ``handle.result`` is the RunResult; the flow returns
    it as JSON data, or nothing with ``return_json=False`` (for callers that read the handle:
    Prefect walks a flow's return value looking for futures, ~55 ms for 200 steps).
    ``artifacts``: when the run's Prefect artifacts are published (flows/artifacts.py).

    With ``report_after_return`` (ignored for inline artifacts) the flow returns before the
    run's metrics and report files are written, so that work overlaps Prefect's final state
    call (which waits on a busy embedded server after a wide run); the caller must await
    ``handle.finishing`` (:func:`agentrt.flows.run.arun_workflow` does), which also runs
    ``handle.after_report(result)`` in a worker thread if given, then call
    ``handle.publish()`` if set (background artifacts, sent after the flow run's end)."""
    from agentrt.agents.imports import source_hash

    # Prefect ships the flow object (with its closure) to Dask/Ray workers inside the run
    # context, and a live progress display holds locks that cannot be pickled: the closure
    # keeps only a key into this process's table of sinks.
    sink = _register_sink(events or RunEvents(), handle if handle is not None else RunHandle())
    agents = {s.agent.key: s.agent for s in plan.steps.values()}
    agents.update({fb.key: fb for s in plan.steps.values() for fb in s.fallbacks})
    # Prefect's timeout acts only where a task runs in a process's main thread (make_task).
    backstop = (task_runner or plan.workflow.task_runner.type) == "process"
    tasks = {
        key: make_task(a, source_hash(a.manifest.entrypoint, a.policy), prefect_timeout=backstop)
        for key, a in agents.items()
    }
    grants = allocate_budget(plan)
    check_budget(plan, grants)  # a required agent granted nothing: fail before any starts
    slots = worker_slots(plan, task_runner)

    async def run_workflow(params: dict[str, Any]) -> dict[str, Any]:
        from prefect.runtime import flow_run

        flow_run_id = str(flow_run.id) if flow_run.id else None
        spool = str(spool_root / "spool" / (flow_run_id or "local")) if spool_root else None
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        tag_sets = [frozenset(t.tags) for t in tasks.values()]
        await prime_tag_limit_cache(tag_sets)
        keeper = asyncio.create_task(keep_tag_limit_cache(tag_sets))
        events, handle = _SINKS.pop(sink)
        driver = Driver(plan, params, tasks, grants, events, spool, parameter_wrapper())
        driver.slots = slots
        driver.limit_memory = (task_runner or plan.workflow.task_runner.type) == "process"
        if artifacts != "off":
            driver.artifacts = RunArtifacts(plan.workflow.name, len(plan.steps))
        # The server's health, checked while the agents run (flows/server_watch.py).
        watch = driver.server = ServerWatch.for_flow_run()
        watching = None
        if watch is not None:
            watch.running = lambda: sorted(driver.running_steps)
            watching = asyncio.create_task(watch.run())
        with hold_spool(spool) as attempts:
            try:
                # Agents on threads here: their log lines go to Prefect's log worker in
                # bursts (run_log.buffer_lines); in worker processes, at once.
                lines = buffer_lines() if passes_opaque(driver.wrap) else contextlib.nullcontext()
                with shared_sync_client(), workers_share_embedded_server(), lines:
                    await driver.run()
            finally:
                keeper.cancel()
                if watching is not None:
                    watching.cancel()
                    await watch.close()
        loss = watch.lost if watch is not None else None
        result = RunResult(
            workflow=plan.workflow.name,
            flow_run_id=flow_run_id,
            state="failed" if driver.fatal else "completed",
            params=params,
            steps={sid: driver.results[sid] for sid in plan.steps},
            levels=plan.levels,
            started_at=started,
            ended_at=datetime.now(UTC),
            duration_seconds=round(time.perf_counter() - t0, 6),
            errors=driver.fatal,
            interrupted=loss.line(driver.kept(), len(plan.steps)) if loss is not None else None,
        )
        handle.server_lost = loss

        async def finish() -> None:
            makers = await write_run_outputs(plan, result, spool, attempts)
            run_artifacts = driver.artifacts
            if loss is not None:
                run_artifacts = None  # nowhere to publish them
                abandon_artifacts()
            if run_artifacts is not None and artifacts == "inline":
                problems = await asyncio.wrap_future(run_artifacts.finish(makers, collect=False))
                if problems and "error" not in result.report_paths:
                    result.report_paths["error"] = f"artifacts not published: {problems[0]}"
            elif run_artifacts is not None and report_after_return:
                # Sent once the flow run's end is recorded: the calls would slow that down.
                handle.publish = functools.partial(run_artifacts.finish, makers)
            elif run_artifacts is not None:
                run_artifacts.finish(makers)
            if (after := handle.after_report) is not None:
                await asyncio.to_thread(after, result)

        handle.result = result
        finishing = handle.finishing = asyncio.ensure_future(finish())
        if not report_after_return or artifacts == "inline":
            # Inline artifacts are on the flow run before it ends: so is the report then.
            await finishing
        if driver.fatal:
            # A Failed state (rather than an exception) marks the flow run failed without a
            # traceback in the logs: the error reports already say what happened.
            return Failed(message="; ".join(e.render() for e in driver.fatal)[:4000])
        return result.model_dump(mode="json") if return_json else None

    return flow(
        run_workflow,
        name=plan.workflow.name,
        description=plan.workflow.description or None,
        task_runner=task_runner_for(plan, task_runner),
        persist_result=False,
        validate_parameters=False,
        log_prints=False,
    )
