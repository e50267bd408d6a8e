"""The step driver: runs a plan's steps as Prefect task runs, each as soon as it can.

Steps start as soon as their dependencies finish (which runs each topological level in
parallel, and never waits for a slow sibling), fallbacks run in order as task runs of their
own, optional failures are skipped, and a required failure stops new work (fail fast) while
keeping every finished output. When more steps are ready than the runner has workers, the
one whose agent has the highest ``priority`` starts first, then the one with the longest
chain of steps after it (the critical path), then the first in the plan (:func:`step_order`).
A step whose agent declares memory or cores (``resources.memory_mb``, ``resources.cpus``)
starts only when its reservation fits beside the running steps' within the plan's totals
(:mod:`agentrt.flows.resources`); until then it waits, and so do the steps after it in that
order that reserve anything (steps that reserve nothing go on).
A worker lost under an attempt (a killed process-pool worker, a lost Dask worker) fails the
attempt; the driver records it, as the agent could not.
When the Prefect server stops answering (:mod:`agentrt.flows.server_watch`: a health check,
or a step failing with a server error that a check then confirms), no new step or fallback
starts; the running steps finish and keep their outputs, the steps not started are skipped,
and the run fails with one infrastructure error report and ``RunResult.interrupted``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import graphlib
import heapq
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prefect.states import Failed

from agentrt.agents.manifest import UPSTREAM
from agentrt.agents.redact import redact
from agentrt.agents.registry import RegisteredAgent
from agentrt.flows.allocation import token_limit
from agentrt.flows.artifacts import RunArtifacts
from agentrt.flows.attempt import RunInfo, UpstreamOutput, failure_of, mark_failure
from agentrt.flows.chunking import run_chunks, split_inputs
from agentrt.flows.lifecycle import agent_spec, spool_record
from agentrt.flows.plan import InputRef, Plan, PlannedStep
from agentrt.flows.prefect_compat import (
    dont_wait_for_dead_workers,
    finished_result,
    passes_opaque,
)
from agentrt.flows.resources import Admission, step_demand
from agentrt.flows.results import AttemptRecord, ErrorReport, RunEvents, StepResult
from agentrt.flows.retry_policy import failure_hint, infrastructure_failure
from agentrt.flows.schemas import input_fields, required_input_fields

if TYPE_CHECKING:
    from agentrt.context.budget import Grant
    from agentrt.flows.server_watch import ServerWatch

#: The states of a step whose output was produced and kept.
KEPT = ("completed", "cached", "fallback")

__all__ = ["Driver", "step_order"]


def step_order(plan: Plan) -> dict[str, tuple[int, int, int]]:
    """Each step's place in the queue for a worker, smallest first: its agent's priority
    (highest first), then the length of the longest chain of steps that depend on it
    (longest first: it bounds the run's end), then its place in the plan."""
    dependents: dict[str, list[str]] = {sid: [] for sid in plan.steps}
    for sid, step in plan.steps.items():
        for dep in step.after:
            dependents[dep].append(sid)
    chain: dict[str, int] = {}
    for level in reversed(plan.levels):
        for sid in level:
            chain[sid] = max((1 + chain[d] for d in dependents[sid]), default=0)
    return {
        sid: (-step.agent.manifest.priority, -chain.get(sid, 0), index)
        for index, (sid, step) in enumerate(plan.steps.items())
    }


@dataclass
class Driver:
    """Runs one plan's steps inside its flow run (see the module's docstring)."""

    plan: Plan
    params: dict[str, Any]
    #: The Prefect task of each agent (agent key → task), fallbacks included.
    tasks: dict[str, Any]
    #: Each step's token grant (steps whose agents ask for no tokens are absent).
    grants: dict[str, Grant]
    events: RunEvents
    spool_dir: str | None
    #: How task parameters are passed (see prefect_compat.parameter_wrapper); fixed by the
    #: run's runner.
    wrap: Callable[[Any], Any]
    results: dict[str, StepResult] = field(default_factory=dict)
    fatal: list[ErrorReport] = field(default_factory=list)
    #: The run's Prefect artifacts (None with AGENTRT_ARTIFACTS=off).
    artifacts: RunArtifacts | None = None
    #: Each agent's spec, made once per run (agent key → wrapped spec).
    specs: dict[str, Any] = field(default_factory=dict)
    #: Each step's inputs mapping as JSON, made once per run (step id → :func:`_mapping`).
    mappings: dict[str, str] = field(default_factory=dict)
    #: How many steps the task runner runs at once (None: as many as are ready). Beyond
    #: that, ready steps wait in the driver so that the first in :func:`step_order` starts
    #: first (the runner's own queue is first come, first served).
    slots: int | None = None
    #: Whether each attempt's resources.memory_mb is a hard limit in its worker (the
    #: process runner: one attempt per worker process).
    limit_memory: bool = False
    #: The reservations of the running steps (memory, cores) against the plan's totals.
    admission: Admission | None = None
    #: Health checks of the run's Prefect server (None: not watched).
    server: ServerWatch | None = None
    #: The steps running now.
    running_steps: set[str] = field(default_factory=set)
    _completions: _Completions | None = None

    def server_gone(self) -> bool:
        return self.server is not None and self.server.lost is not None

    def _value(self, ref: InputRef) -> tuple[bool, Any]:
        if ref.source == "literal":
            return True, ref.value
        if ref.source == "params":
            return True, self.params.get(ref.path[0])
        upstream = self.results.get(ref.source)
        if upstream is None or upstream.output is None:
            return False, None
        data: Any = upstream.output
        for part in ref.path:
            if isinstance(data, dict) and part in data:
                data = data[part]
            else:
                return False, None
        return True, data

    def _inputs(self, step: PlannedStep) -> tuple[dict[str, Any], dict[str, str], list[str]]:
        inputs: dict[str, Any] = {}
        provenance: dict[str, str] = {}
        missing: list[str] = []
        for name, refs in step.inputs.items():
            values = []
            for ref in refs:
                ok, value = self._value(ref)
                if ok:
                    values.append(value)
                    if ref.source not in ("params", "literal"):
                        provenance[name] = self.plan.steps[ref.source].agent.key
                else:
                    missing.append(f"{name} ← {ref.describe()}")
            if not values:
                continue
            if len(refs) == 1:
                inputs[name] = values[0]
            elif all(isinstance(v, list) for v in values):
                inputs[name] = [x for v in values for x in v]
            else:
                inputs[name] = values
        return inputs, provenance, missing

    def _blocked(self, step: PlannedStep) -> str | None:
        for dep in sorted(step.after):
            upstream = self.results.get(dep)
            if upstream is None or upstream.state not in ("skipped", "failed"):
                continue
            why = upstream.reason or upstream.state
            if dep in step.required_steps:
                return f"requires {dep}, which was {upstream.state} ({why})"
            try:
                required = required_input_fields(step.agent)
            except Exception:
                required = set()
            for name, refs in step.inputs.items():
                if name in required and all(r.source == dep for r in refs):
                    return f"input {name} needs {dep}, which was {upstream.state} ({why})"
        return None

    def _mapping(self, step: PlannedStep) -> str:
        made = self.mappings.get(step.id)
        if made is None:
            made = self.mappings[step.id] = _mapping(step)
        return made

    def _upstream(self, step: PlannedStep, agent: RegisteredAgent) -> dict[str, UpstreamOutput]:
        """The upstream outputs ``agent`` declares it reads (``context.sources``: ``upstream``
        for every step ``step`` depends on — its ``after``, which holds its agent's
        ``requires`` and its input sources too — or those step ids), by step id; steps that
        produced no output (skipped, failed) are left out. Plain data: it crosses the task
        boundary. Only declared outputs are passed, because they are part of the cache key:
        an agent that reads none keeps its cache when an upstream output changes."""
        sources = agent.manifest.context.sources
        wanted = step.after if UPSTREAM in sources else step.after & set(sources)
        upstream: dict[str, UpstreamOutput] = {}
        for dep in sorted(wanted):
            result = self.results.get(dep)
            if result is None or result.output is None:
                continue
            planned = self.plan.steps[dep]
            key = result.used_agent or planned.agent.key
            producer = next(
                (a for a in (planned.agent, *planned.fallbacks) if a.key == key), planned.agent
            )
            ref = producer.manifest.output
            policy = producer.policy
            upstream[dep] = UpstreamOutput(
                agent=key,
                output=result.output,
                schema=ref if isinstance(ref, str) else None,
                policy=(str(policy.base_dir) if policy.base_dir else None, policy.packages),
            )
        return upstream

    async def _attempt(
        self,
        step: PlannedStep,
        agent: RegisteredAgent,
        inputs,
        provenance,
        fallback_for,
        upstream: dict[str, UpstreamOutput] | None = None,
        chunk: tuple[int, int] | None = None,
    ):
        grant = self.grants.get(step.id)
        run = RunInfo(
            workflow=self.plan.workflow.name,
            step=step.id,
            params=self.params,
            provenance=provenance,
            tag_limits=dict(self.plan.workflow.concurrency.tags),
            spool_dir=self.spool_dir,
            budget_reason=grant.reason if grant is not None else None,
            token_limit=token_limit(self.plan, grant),
            fallback_for=fallback_for,
            step_inputs=self._mapping(step),
            upstream=upstream or {},
            memory_limit_mb=agent.manifest.resources.memory_mb if self.limit_memory else None,
            chunk=f"{chunk[0]}/{chunk[1]}" if chunk else None,
        )
        tokens = grant.tokens if grant is not None else None
        if fallback_for:
            # A fallback gets the same data, less what its own input schema does not accept.
            try:
                accepted = input_fields(agent)
            except Exception:
                accepted = set()
            if accepted:
                inputs = {k: v for k, v in inputs.items() if k in accepted}
        future = None
        started = datetime.now(UTC)
        wrap = self.wrap
        try:
            spec = self.specs.get(agent.key)
            if spec is None:
                spec = self.specs[agent.key] = wrap(agent_spec(agent))
            task = self.tasks[agent.key]
            if chunk:
                task = task.with_options(task_run_name=f"{agent.key}[{chunk[0]}/{chunk[1]}]")
            future = task.submit(spec, wrap(inputs), tokens, wrap(run))
            completions = self._completions
            if completions is None:
                completions = self._completions = _Completions(asyncio.get_running_loop())
            done = completions.loop.create_future()
            future.add_done_callback(lambda _f: completions.add(done))
            await done
            if passes_opaque(wrap):
                # Thread runner (parameters passed opaque): the finished task run left its
                # result in memory, so no hop to a thread just to read it.
                value = finished_result(future)
            else:
                value = await asyncio.to_thread(future.result, raise_on_failure=False)
            return future.state, value, str(future.task_run_id)
        except Exception as exc:
            # Not the agent's failure but its worker's: a process-pool worker killed by the
            # OOM killer or a signal (BrokenProcessPool), a Dask worker lost. The agent
            # could not record its attempt, so the driver does.
            # Or the Prefect server's failure around the attempt (a concurrency-slot request
            # to a server that is gone): not marked as the agent's, so the report says so.
            task_run_id = str(future.task_run_id) if future is not None else None
            self._record_lost_attempt(step, agent, run, exc, started, task_run_id)
            dont_wait_for_dead_workers()
            if infrastructure_failure(exc) != "server":
                mark_failure(exc, "execute", 1)
            return Failed(message=redact(f"{type(exc).__name__}: {exc}")), exc, task_run_id

    def _record_lost_attempt(
        self,
        step: PlannedStep,
        agent: RegisteredAgent,
        run: RunInfo,
        exc: BaseException,
        started: datetime,
        task_run_id: str | None,
    ) -> None:
        from prefect.runtime import flow_run

        m = agent.manifest
        grant = self.grants.get(step.id)
        ended = datetime.now(UTC)
        record = AttemptRecord(
            workflow=self.plan.workflow.name,
            flow_run_id=str(flow_run.id) if flow_run.id else None,
            task_run_id=task_run_id,
            step=step.id,
            agent_id=m.id,
            agent_version=m.version,
            attempt=1,
            state="failed",
            error_type=type(exc).__name__,
            error_message=redact(str(exc) or type(exc).__name__)[:2000],
            phase="execute",
            started_at=started,
            ended_at=ended,
            wall_seconds=round((ended - started).total_seconds(), 6),
            cpu_seconds=0.0,
            tokens_allocated=grant.tokens if grant is not None else None,
            budget_reason=run.budget_reason,
            fallback_for=run.fallback_for,
            chunk=run.chunk,
        )
        with contextlib.suppress(OSError):
            spool_record(record, self.spool_dir)

    def _chunks(
        self, step: PlannedStep, agent: RegisteredAgent, inputs: dict[str, Any]
    ) -> list[dict[str, Any]] | None:
        """The inputs of each chunk when ``agent`` chunks its work and it does not fit."""
        spec = agent.manifest.chunking
        if spec is None:
            return None
        grant = self.grants.get(step.id)
        limit = token_limit(self.plan, grant)
        if limit is None and grant is not None and agent.manifest.kind == "llm":
            limit = grant.tokens  # an LLM agent's prompt is fitted to its grant regardless
        measure = None
        if spec.measure is not None:
            from agentrt.agents.imports import load_callable

            try:
                measure = load_callable(spec.measure, agent.policy)
            except Exception:  # `agents validate` reports it; the work runs whole
                return None
        return split_inputs(spec, inputs, limit, measure)

    async def _run_chunks(self, step, agent, chunks, provenance, fallback_for, upstream, result):
        """One attempt per chunk (flows/chunking.py), progress as ``chunk i of N`` events."""

        def attempt(inputs: dict[str, Any], chunk: tuple[int, int]):
            return self._attempt(step, agent, inputs, provenance, fallback_for, upstream, chunk)

        def progress(done: int, n: int) -> None:
            result.reason = f"chunk {done} of {n} done"
            self.events.emit(step.id, "running", result)

        result.reason = f"0 of {len(chunks)} chunks done"
        self.events.emit(step.id, "running", result)
        state, value, ids = await run_chunks(attempt, agent, chunks, progress)
        result.reason = None
        return state, value, ids

    async def run_step(self, sid: str) -> None:
        step = self.plan.steps[sid]
        result = StepResult(step=sid, agent=step.agent.key, state="pending")
        self.results[sid] = result
        blocked = self._blocked(step)
        if blocked:
            result.state, result.reason = "skipped", blocked
            self.events.emit(sid, "skipped", result)
            return
        grant = self.grants.get(sid)
        result.tokens_allocated = grant.tokens if grant is not None else None
        result.budget_reason = grant.reason if grant is not None else None
        if grant is not None and grant.tokens == 0:
            # A step granted nothing does not run (a required one stops the run before it
            # starts: allocation.check_budget).
            result.state, result.reason = "skipped", f"no token budget: {grant.reason}"
            self.events.emit(sid, "skipped", result)
            return
        inputs, provenance, _missing = self._inputs(step)
        result.state = "running"
        result.started_at = datetime.now(UTC)
        self.events.emit(sid, "running", result)
        t0 = time.perf_counter()
        tried: list[str] = []
        last: tuple[str, str, str, int] | None = None
        last_exc: BaseException | None = None
        chain = [step.agent, *step.fallbacks]
        for index, agent in enumerate(chain):
            if index < len(chain) - 1 and _no_model(agent):
                # An LLM agent whose model cannot be called as configured (no model, no
                # key): its fallback runs at once, no attempt is spent on it.
                result.not_run.append(agent.key)
                continue
            upstream = self._upstream(step, agent)
            fallback_for = step.agent.key if index else None
            spec = agent.manifest.chunking
            if spec is not None and spec.measure is not None:
                # A measure may read the repository (llm_review's runs git): off the loop.
                chunks = await asyncio.to_thread(self._chunks, step, agent, inputs)
            else:
                chunks = self._chunks(step, agent, inputs)
            if chunks:
                state, value, task_run_ids = await self._run_chunks(
                    step, agent, chunks, provenance, fallback_for, upstream, result
                )
                result.task_run_ids.extend(task_run_ids)
            else:
                state, value, task_run_id = await self._attempt(
                    step, agent, inputs, provenance, fallback_for, upstream
                )
                result.task_run_ids.append(task_run_id)
            if state.is_completed() and isinstance(value, dict):
                t_int = time.perf_counter()
                result.output = value.get("output")
                result.phases = dict(value.get("phases") or {})
                result.attempts += int(value.get("attempt") or 1)
                result.tokens_delivered = value.get("tokens_delivered")
                result.chunks = value.get("chunks")
                result.from_cache = state.name == "Cached"
                if index:
                    result.state, result.used_agent = "fallback", agent.key
                    if last is None:  # nothing failed: the LLM agents before it were not run
                        from agentrt.agents.llm import no_model_message

                        result.fallback_cause = "no_model"
                        result.reason = no_model_message(result.not_run)
                    else:
                        result.fallback_cause = "failure"
                        why = f" ({last[0]}: {last[2][:200]})"
                        failed = step.agent.key if step.agent.key in tried else tried[-1]
                        result.reason = f"{failed} failed{why}; fallback {agent.key} succeeded"
                elif state.name == "Cached":
                    result.state, result.reason = "cached", "served from Prefect's result cache"
                else:
                    result.state = "completed"
                result.phases["integrate"] = round(time.perf_counter() - t_int, 6)
                break
            tried.append(agent.key)
            exc = last_exc = value if isinstance(value, BaseException) else None
            failure = failure_of(exc)
            infrastructure = infrastructure_failure(exc)
            attempts = failure.attempt if failure is not None else 1
            result.attempts += attempts
            last = (
                type(exc).__name__ if exc else state.name,
                failure.phase if failure is not None else "execute",
                redact(str(exc) if exc else (state.message or "failed")),
                attempts,
            )
            if self.server is not None and exc is not None and infrastructure == "server":
                await self.server.confirm(sid, exc)
            if self.server_gone():
                break  # no fallback starts once the server is gone
        result.ended_at = datetime.now(UTC)
        result.duration_seconds = round(time.perf_counter() - t0, 6)
        if result.output is None and last is not None:
            error_type, phase, message, attempts = last
            infrastructure = infrastructure_failure(last_exc)
            report = ErrorReport(
                step=sid,
                agent=tried[0],  # the step's agent, unless it was not run (no model)
                phase=phase,
                error_type=error_type,
                message=message[:2000],
                attempts=result.attempts,
                suggestion=failure_hint(
                    last_exc,
                    error_type,
                    phase,
                    step.agent.id,
                    retry_on=step.agent.manifest.retries.retry_on,
                    server=self.server.address if self.server is not None else None,
                ),
                fallbacks_tried=tried[1:],
                cause="infrastructure" if infrastructure else "agent",
            )
            result.error = report
            if self.server_gone() and infrastructure == "server":
                # The run's one report of the server's loss says it (Driver.run).
                result.state = "failed"
                result.reason = f"the Prefect server stopped answering ({error_type})"
            elif step.optional:
                result.state = "skipped"
                result.reason = f"optional agent failed: {error_type}: {message[:300]}"
            else:
                result.state = "failed"
                result.reason = f"{error_type} in {phase}"
                self.fatal.append(report)
        self.events.emit(sid, result.state, result)

    async def run(self) -> None:
        sorter = graphlib.TopologicalSorter(self.plan.graph())
        sorter.prepare()
        order = step_order(self.plan)
        # Ready steps not started yet, and steps not ready yet, each first in order on top.
        ready: list[tuple[tuple[int, int, int], str]] = []
        later = sorted((key, sid) for sid, key in order.items())
        unready = set(order)
        running: dict[asyncio.Task[None], str] = {}
        # Memory and cores: a step starts only when its reservation fits beside the running
        # steps' (in step order: a large step is not overtaken by smaller ones after it).
        totals = self.plan.resources
        admission = self.admission = Admission(totals) if totals is not None else None
        demands = {sid: step_demand([s.agent, *s.fallbacks]) for sid, s in self.plan.steps.items()}
        # Finished steps arrive here; asyncio.wait over all running steps each time one ends
        # would cost O(steps²) for a wide level.
        finishing: asyncio.Queue[asyncio.Task[None]] = asyncio.Queue()
        for sid in self.plan.steps:
            self.events.emit(sid, "pending")
        if self.artifacts is not None:
            self.artifacts.start()
        while sorter.is_active():
            if not self.fatal and not self.server_gone():
                for sid in sorter.get_ready():
                    unready.discard(sid)
                    heapq.heappush(ready, (order[sid], sid))
                while later and later[0][1] not in unready:
                    heapq.heappop(later)  # `later` is sorted, hence a heap
                held: list[tuple[tuple[int, int, int], str]] = []
                while ready:
                    key, sid = ready[0]
                    # With every worker busy, a step may still be handed to the runner (to
                    # wait in its queue, as cheap as it gets) unless a step that is not
                    # ready yet should start before it: then it waits here for a worker.
                    busy = self.slots is not None and len(running) >= self.slots
                    if busy and later and later[0][0] < key:
                        break
                    demand = demands[sid]
                    if admission is not None and demand:
                        if held or (running and not admission.fits(demand)):
                            # Held until running steps release enough; so is every step
                            # after it that reserves anything (no overtaking). A step that
                            # reserves nothing cannot delay it, and goes on.
                            held.append(heapq.heappop(ready))
                            continue
                        admission.take(demand)
                    heapq.heappop(ready)
                    task = asyncio.create_task(self.run_step(sid))
                    task.add_done_callback(finishing.put_nowait)
                    running[task] = sid
                    self.running_steps.add(sid)
                for item in held:
                    heapq.heappush(ready, item)
            if not running:
                break
            done = [await finishing.get()]
            while not finishing.empty():
                done.append(finishing.get_nowait())
            for finished in done:
                sid = running.pop(finished)
                self.running_steps.discard(sid)
                if admission is not None and demands[sid]:
                    admission.release(demands[sid])
                finished.result()  # surface driver bugs instead of hanging
                sorter.done(sid)
            if self.artifacts is not None and not self.server_gone():
                self.artifacts.progress(len(self.results) - len(running))
        loss = self.server.lost if self.server is not None else None
        first = self.fatal[0].agent if self.fatal else "?"
        why = (
            f"the Prefect server at {loss.address} stopped answering"
            if loss is not None
            else f"the run stopped after {first} failed"
        )
        for sid, step in self.plan.steps.items():
            if sid not in self.results:
                self.results[sid] = StepResult(
                    step=sid, agent=step.agent.key, state="skipped", reason=f"not started: {why}"
                )
                self.events.emit(sid, "skipped", self.results[sid])
        if loss is not None:
            self.fatal.insert(0, self._loss_report())

    def kept(self) -> int:
        """How many steps produced an output that was kept."""
        return sum(1 for r in self.results.values() if r.state in KEPT)

    def _loss_report(self) -> ErrorReport:
        """The one error report of the Prefect server's loss, on the step that found it (or,
        when a health check did, the first step that did not complete)."""
        assert self.server is not None and self.server.lost is not None
        loss = self.server.lost
        sid = loss.step or next(
            (s for s in self.plan.steps if self.results[s].state not in KEPT), "?"
        )
        step = self.plan.steps.get(sid)
        result = self.results.get(sid)
        return ErrorReport(
            step=sid,
            agent=step.agent.key if step is not None else "?",
            phase="orchestration",
            error_type=loss.error.partition(":")[0] or "ServerGone",
            message=f"the Prefect server at {loss.address} stopped answering ({loss.where()})",
            attempts=result.attempts if result is not None else 0,
            suggestion=(
                f"the Prefect server at {loss.address} stopped answering; start it and re-run "
                f"the same command: the {self.kept()} completed steps are reused"
            ),
            cause="infrastructure",
        )


def _no_model(agent: RegisteredAgent) -> bool:
    """Whether ``agent`` is an LLM agent whose model is not configured (no model, no key:
    ``agentrt.agents.llm.model_not_configured``), checked in the flow's process."""
    if agent.manifest.kind != "llm":
        return False
    from agentrt.agents.llm import model_not_configured

    return model_not_configured(agent) is not None


def _mapping(step: PlannedStep) -> str:
    """The step's ``inputs`` mapping (where each input comes from) as JSON: a cache key part."""
    mapping = {
        name: [[ref.source, list(ref.path), ref.value] for ref in refs]
        for name, refs in sorted(step.inputs.items())
    }
    return json.dumps(mapping, sort_keys=True, default=repr)


class _Completions:
    """Attempts finished in worker threads, handed to the driver's event loop in batches:
    one wake-up of the loop (a write to its self-pipe, a thread switch) for all the attempts
    that ended since it last looked, rather than one per attempt (a wide level's agents end
    together)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.finished: collections.deque[asyncio.Future[None]] = collections.deque()
        self.scheduled = False

    def add(self, waiter: asyncio.Future[None]) -> None:
        """Called from any thread when an attempt's task run ends."""
        self.finished.append(waiter)
        if not self.scheduled:
            # A drain already scheduled (but not yet started) takes this one too: it clears
            # the flag before it empties the deque.
            self.scheduled = True
            self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self.scheduled = False
        while self.finished:
            waiter = self.finished.popleft()
            if not waiter.done():
                waiter.set_result(None)
