"""Manifest → Prefect: one task per agent, one async flow per workflow.

Prefect does the retries (``exponential_backoff`` + ``retry_jitter_factor``, filtered by a
``retry_condition_fn`` built from ``retry_on``), timeouts, the result cache (a cache policy
keyed on the agent's id, version, source and input *contents*), result persistence and the
UI. This module decides what runs when: steps start as soon as their dependencies finish
(which runs each topological level in parallel, and never waits for a slow sibling),
fallbacks run in order as task runs of their own, optional failures are skipped, and a
required failure stops new work (fail fast) while keeping every finished output.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import graphlib
import hashlib
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE, CachePolicy
from prefect.context import SyncClientContext, TaskRunContext
from prefect.states import Failed
from prefect.tasks import exponential_backoff
from prefect.utilities.annotations import opaque

from agentrt.agents.redact import redact
from agentrt.agents.registry import RegisteredAgent
from agentrt.errors import AgentrtError
from agentrt.flows.artifacts import ArtifactMaker, ArtifactsMode, RunArtifacts
from agentrt.flows.lifecycle import agent_spec, hold_spool, run_agent, spool_record
from agentrt.flows.plan import InputRef, Plan, PlannedStep
from agentrt.flows.results import AttemptRecord, ErrorReport, RunEvents, RunResult, StepResult
from agentrt.flows.schemas import input_fields, required_input_fields

__all__ = ["AgentCachePolicy", "RunEvents", "build_flow", "make_task"]

_base_task = task(run_agent, name="agent", persist_result=True)
#: Seconds Prefect's own task timeout waits beyond the manifest's ``timeout_seconds``.
PREFECT_TIMEOUT_GRACE = 5.0


# -- caching -------------------------------------------------------------------------
def _content_fingerprint(path: str, include: tuple[str, ...] | None) -> str | None:
    p = Path(path)
    try:
        if p.is_file():
            return hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest()
        if p.is_dir():
            from agentrt.context.sources import scan_repository

            scan = scan_repository(p, include=list(include) if include else None)
            tree = scan.fingerprint(store=_hash_store())
            head = _git_head(p)
            return f"{tree}:{head}" if head else tree
    except (OSError, ValueError):
        return None
    return None


def _hash_store() -> Any:
    """The context store, where file content hashes outlive the process: a warm run then
    stats the repository's files instead of reading and hashing them again."""
    from agentrt.context.store import default_store_dir

    return _open_store(default_store_dir())


@functools.lru_cache(maxsize=4)
def _open_store(directory: Path) -> Any:
    try:
        from agentrt.context.store import ContextStore

        return ContextStore(directory)
    except Exception:  # an unusable store only costs the re-hashing
        return None


def _git_head(repo: Path) -> str | None:
    """The commit checked out in ``repo`` (part of a repository's state, beside its files)."""
    git = repo / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
    except OSError:
        return None
    if not head.startswith("ref: "):
        return head
    ref = head[5:]
    try:
        return (git / ref).read_text().strip()
    except OSError:
        pass
    try:
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        pass
    return ref  # an unborn branch


@dataclass
class AgentCachePolicy(CachePolicy):
    """Cache key = agent id + version + source hash + inputs, with paths keyed by content.

    Two runs with the same agent code and equal input *contents* share a key, whatever
    the object identity or file modification times; editing a file the agent reads (or
    its code) changes the key.
    """

    agent_key: str = ""
    source: str = ""
    include: tuple[str, ...] | None = None
    model: str | None = None  # LLM agents: the manifest's model (AGENTRT_MODEL overrides)

    def compute_key(
        self,
        task_ctx: TaskRunContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        values = inputs.get("inputs") or {}
        content = {
            name: _content_fingerprint(value, self.include)
            for name, value in sorted(values.items())
            if isinstance(value, str) and value and len(value) < 4096 and os.path.exists(value)
        }
        payload = {
            "agent": self.agent_key,
            "source": self.source,
            "inputs": values,
            "content": content,
            "budget": inputs.get("budget_tokens"),
            "model": (os.environ.get("AGENTRT_MODEL") or self.model) if self.model else None,
        }
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return f"agentrt-{self.agent_key}-{hashlib.blake2b(blob, digest_size=20).hexdigest()}"


# -- retries -------------------------------------------------------------------------
def retry_matches(exc: BaseException, names: frozenset[str]) -> bool:
    """Whether ``exc`` (or a base class of it) is named in ``retry_on``.

    An agentrt error whose class says ``retryable = False`` is never retried, named or not.
    """
    if isinstance(exc, AgentrtError) and not exc.retryable:
        return False
    mro = type(exc).__mro__
    return any(c.__name__ in names or f"{c.__module__}.{c.__qualname__}" in names for c in mro)


def retry_condition(retry_on: list[str]) -> Callable[[Any, Any, Any], bool]:
    """A Prefect ``retry_condition_fn`` retrying only the exceptions named in ``retry_on``.

    It must be a plain function: Prefect ignores callables that ``inspect.isfunction``
    does not recognise.
    """
    names = frozenset(retry_on)

    def should_retry(task: Any, task_run: Any, state: Any) -> bool:
        try:
            state.result()
        except BaseException as exc:
            return retry_matches(exc, names)
        return False

    return should_retry


def make_task(agent: RegisteredAgent, source_hash: str) -> Any:
    """The Prefect task for one agent, configured from its manifest."""
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
        "timeout_seconds": m.timeout_seconds + PREFECT_TIMEOUT_GRACE if m.timeout_seconds else None,
        "persist_result": True,
        "result_serializer": "json",
    }
    if retries and m.retries.backoff.jitter:
        options["retry_jitter_factor"] = m.retries.backoff.jitter
    if m.cache.enabled:
        if m.kind == "llm":  # the prompt is code too
            prompt = hashlib.blake2b((m.prompt or "").encode(), digest_size=8).hexdigest()
            source_hash = f"{source_hash}:{prompt}"
        options["cache_policy"] = AgentCachePolicy(
            agent_key=m.key,
            source=source_hash,
            include=tuple(m.cache.include) if m.cache.include else None,
            model=(m.model or "unset") if m.kind == "llm" else None,
        )
    else:
        options["cache_policy"] = NO_CACHE
    return _base_task.with_options(**options)


# -- running -------------------------------------------------------------------------
def _suggest(exc: BaseException | None, error_type: str, phase: str, agent: str) -> str:
    """What to do about a failed step: the error class's own ``hint`` for agentrt's errors."""
    if isinstance(exc, AgentrtError) and exc.hint:
        return exc.hint.format(agent=agent)
    # Errors from outside agentrt (the agent's own code, Python, Prefect, Dask).
    if isinstance(exc, TimeoutError) or "Timeout" in error_type:
        return f"raise timeout_seconds in {agent}'s manifest, or give it a smaller input"
    if isinstance(exc, ImportError):
        return "run `agentrt agents validate` and fix the entrypoint"
    if isinstance(exc, BrokenExecutor) or error_type == "KilledWorker":  # Dask's, not imported
        return (
            f"the worker process running {agent} died (out of memory or killed): raise the "
            "machine's memory or resources.memory_mb, give it a smaller input, or run it on "
            "the thread task runner"
        )
    if phase == "execute":
        return (
            f"fix the error in {agent}; if it is transient, add {error_type} to retries.retry_on; "
            "or add a fallback, or mark the agent optional"
        )
    return f"see the error above; `agentrt agents show {agent}` shows the manifest"


@dataclass
class _Driver:
    plan: Plan
    params: dict[str, Any]
    tasks: dict[str, Any]
    grants: dict[str, tuple[int | None, str | None]]
    events: RunEvents
    spool_dir: str | None
    #: How task parameters are passed (see _parameter_wrapper); fixed by the run's runner.
    wrap: Callable[[Any], Any]
    results: dict[str, StepResult] = field(default_factory=dict)
    fatal: list[ErrorReport] = field(default_factory=list)
    #: The run's Prefect artifacts (None with AGENTRT_ARTIFACTS=off).
    artifacts: RunArtifacts | None = None
    #: Each agent's spec, made once per run (agent key → wrapped spec).
    specs: dict[str, Any] = field(default_factory=dict)

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

    async def _attempt(
        self, step: PlannedStep, agent: RegisteredAgent, inputs, provenance, fallback_for
    ):
        tokens, reason = self.grants.get(step.id, (None, None))
        run = {
            "workflow": self.plan.workflow.name,
            "step": step.id,
            "params": self.params,
            "provenance": provenance,
            "tag_limits": dict(self.plan.workflow.concurrency.tags),
            "spool_dir": self.spool_dir,
            "budget_reason": reason,
            "fallback_for": fallback_for,
        }
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
            future = self.tasks[agent.key].submit(spec, wrap(inputs), tokens, wrap(run))
            loop = asyncio.get_running_loop()
            done = loop.create_future()
            future.add_done_callback(lambda _f: loop.call_soon_threadsafe(_set_done, done))
            await done
            if self.wrap is opaque:
                # Thread runner (parameters passed opaque): the finished task run left its
                # result in memory, so no hop to a thread just to read it.
                value = future.result(raise_on_failure=False)
            else:
                value = await asyncio.to_thread(future.result, raise_on_failure=False)
            return future.state, value, str(future.task_run_id)
        except Exception as exc:
            # Not the agent's failure but its worker's: a process-pool worker killed by the
            # OOM killer or a signal (BrokenProcessPool), a Dask worker lost. The agent
            # could not record its attempt, so the driver does.
            task_run_id = str(future.task_run_id) if future is not None else None
            self._record_lost_attempt(step, agent, run, exc, started, task_run_id)
            _dont_wait_for_dead_workers()
            exc.agentrt_phase = "execute"  # type: ignore[attr-defined]
            exc.agentrt_attempt = 1  # type: ignore[attr-defined]
            return Failed(message=redact(f"{type(exc).__name__}: {exc}")), exc, task_run_id

    def _record_lost_attempt(
        self,
        step: PlannedStep,
        agent: RegisteredAgent,
        run: dict[str, Any],
        exc: BaseException,
        started: datetime,
        task_run_id: str | None,
    ) -> None:
        from prefect.runtime import flow_run

        m = agent.manifest
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
            tokens_allocated=self.grants.get(step.id, (None, None))[0],
            budget_reason=run.get("budget_reason"),
            fallback_for=run.get("fallback_for"),
        )
        with contextlib.suppress(OSError):
            spool_record(record, self.spool_dir)

    async def run_step(self, sid: str) -> None:
        step = self.plan.steps[sid]
        result = StepResult(step=sid, agent=step.agent.key, state="pending")
        self.results[sid] = result
        blocked = self._blocked(step)
        if blocked:
            result.state, result.reason = "skipped", blocked
            self.events.emit(sid, "skipped", result)
            return
        inputs, provenance, _missing = self._inputs(step)
        result.state = "running"
        result.started_at = datetime.now(UTC)
        result.tokens_allocated, result.budget_reason = self.grants.get(sid, (None, None))
        self.events.emit(sid, "running", result)
        t0 = time.perf_counter()
        tried: list[str] = []
        last: tuple[str, str, str, int] | None = None
        last_exc: BaseException | None = None
        for index, agent in enumerate([step.agent, *step.fallbacks]):
            state, value, task_run_id = await self._attempt(
                step, agent, inputs, provenance, step.agent.key if index else None
            )
            result.task_run_ids.append(task_run_id)
            if state.is_completed() and isinstance(value, dict):
                t_int = time.perf_counter()
                result.output = value.get("output")
                result.phases = dict(value.get("phases") or {})
                result.attempts += int(value.get("attempt") or 1)
                result.tokens_delivered = value.get("tokens_delivered")
                if index:
                    result.state, result.used_agent = "fallback", agent.key
                    why = f" ({last[0]}: {last[2][:200]})" if last else ""
                    result.reason = f"{step.agent.key} failed{why}; fallback {agent.key} succeeded"
                elif state.name == "Cached":
                    result.state, result.reason = "cached", "served from Prefect's result cache"
                else:
                    result.state = "completed"
                result.phases["integrate"] = round(time.perf_counter() - t_int, 6)
                break
            tried.append(agent.key)
            exc = last_exc = value if isinstance(value, BaseException) else None
            attempts = getattr(exc, "agentrt_attempt", None) or 1
            result.attempts += attempts
            last = (
                type(exc).__name__ if exc else state.name,
                getattr(exc, "agentrt_phase", "execute"),
                redact(str(exc) if exc else (state.message or "failed")),
                attempts,
            )
        result.ended_at = datetime.now(UTC)
        result.duration_seconds = round(time.perf_counter() - t0, 6)
        if result.output is None and last is not None:
            error_type, phase, message, attempts = last
            report = ErrorReport(
                step=sid,
                agent=step.agent.key,
                phase=phase,
                error_type=error_type,
                message=message[:2000],
                attempts=result.attempts,
                suggestion=_suggest(last_exc, error_type, phase, step.agent.id),
                fallbacks_tried=tried[1:],
            )
            result.error = report
            if step.optional:
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
        running: dict[asyncio.Task[None], str] = {}
        # Finished steps arrive here; asyncio.wait over all running steps each time one ends
        # would cost O(steps²) for a wide level.
        finishing: asyncio.Queue[asyncio.Task[None]] = asyncio.Queue()
        for sid in self.plan.steps:
            self.events.emit(sid, "pending")
        if self.artifacts is not None:
            self.artifacts.start()
        while sorter.is_active():
            if not self.fatal:
                for sid in sorted(sorter.get_ready()):
                    task = asyncio.create_task(self.run_step(sid))
                    task.add_done_callback(finishing.put_nowait)
                    running[task] = sid
            if not running:
                break
            done = [await finishing.get()]
            while not finishing.empty():
                done.append(finishing.get_nowait())
            for finished in done:
                sid = running.pop(finished)
                finished.result()  # surface driver bugs instead of hanging
                sorter.done(sid)
            if self.artifacts is not None:
                self.artifacts.progress(len(self.results) - len(running))
        first = self.fatal[0].agent if self.fatal else "?"
        for sid, step in self.plan.steps.items():
            if sid not in self.results:
                self.results[sid] = StepResult(
                    step=sid,
                    agent=step.agent.key,
                    state="skipped",
                    reason=f"not started: the run stopped after {first} failed",
                )
                self.events.emit(sid, "skipped", self.results[sid])


async def _report(
    plan: Plan, result: RunResult, spool: str | None, attempts: list[AttemptRecord]
) -> list[ArtifactMaker]:
    """Metrics and report files at the end of a run (never failing the run for them), and
    the makers of the run's artifacts (built where they are published: flows/artifacts.py)."""
    from agentrt.flows.metrics import finalize_run_frame, metrics_artifact_args
    from agentrt.flows.report import render_report, report_artifacts, write_report

    makers: list[ArtifactMaker] = []
    try:
        markdown: str | None = render_report(plan, result)
    except Exception as exc:
        result.report_paths["error"] = f"report not written: {type(exc).__name__}: {exc}"
        markdown = None
    # In a worker thread: pandas and a Parquet write would hold up the event loop.
    metrics_path, frame = await asyncio.to_thread(finalize_run_frame, result, spool, plan, attempts)
    if metrics_path is not None:
        result.report_paths["metrics"] = str(metrics_path)
    if markdown is not None:
        try:
            result.report_paths.update(write_report(plan, result, markdown))
        except Exception as exc:
            result.report_paths["error"] = f"report not written: {type(exc).__name__}: {exc}"
        makers.append(functools.partial(report_artifacts, result, markdown))
    if metrics_path is not None:
        # The records just written (no read-back), or the file if it already existed.
        records = frame if frame is not None else metrics_path

        def metrics_table() -> list[Any]:
            from prefect.artifacts import TableArtifact

            return [TableArtifact(**metrics_artifact_args(records, plan.workflow.name))]

        makers.append(metrics_table)
    return makers


@contextlib.contextmanager
def _workers_share_embedded_server() -> Iterator[None]:
    """Point process, Dask and Ray workers at this process's embedded Prefect server.

    With no ``PREFECT_API_URL``, every worker process would start an embedded server of its
    own on the same SQLite database (5-13 s each, competing for its lock), and a worker
    stopped by a signal (its pool broken by a killed sibling) leaves that server running.
    The runner hands its workers the settings in effect when it first submits, so for the
    agents' phase the URL of the server this process already runs is made explicit.
    """
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings
    from prefect.task_runners import ThreadPoolTaskRunner

    ctx = FlowRunContext.get()
    if (
        ctx is None
        or isinstance(ctx.task_runner, ThreadPoolTaskRunner)
        or get_current_settings().api.url
    ):
        yield
        return
    with temporary_settings(updates={PREFECT_API_URL: str(ctx.client.api_url).rstrip("/")}):
        yield


def _dont_wait_for_dead_workers() -> None:
    """Let the process exit even if a dead worker left the runner's message queue locked.

    A process-pool worker killed while sending a log line or event to the parent (the OOM
    killer strikes anywhere) dies holding the lock of Prefect's message queue, which it
    shares with the parent. Prefect's runner then cannot hand its own shutdown message to
    the queue, and at exit Python waits forever to flush it: `agentrt run` would report the
    failure and then never return. Nothing worth keeping is in that queue after a worker
    died (the run's records are on disk), so the interpreter need not flush it.
    """
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    # Private to Prefect's ProcessPoolTaskRunner (3.8); other runners have no such queue.
    queue = getattr(ctx.task_runner, "_subprocess_message_queue", None) if ctx else None
    if queue is not None:
        with contextlib.suppress(Exception):
            queue.cancel_join_thread()


def _parameter_wrapper() -> Callable[[Any], Any]:
    """``opaque`` on the thread runner: the values hold no futures (the driver resolves the
    data flow itself), so Prefect need not walk every item of the manifest, inputs and
    params (~1 ms per agent). Dask and Ray runners hand annotations to the task as they are,
    so there the values go plain."""
    from prefect.context import FlowRunContext
    from prefect.task_runners import ThreadPoolTaskRunner

    ctx = FlowRunContext.get()
    if ctx is not None and isinstance(ctx.task_runner, ThreadPoolTaskRunner):
        return opaque
    return lambda value: value


@contextlib.contextmanager
def _shared_sync_client() -> Iterator[None]:
    """One Prefect sync client for all the agents' task runs on the thread runner.

    An async flow has no sync client in its context, so Prefect's task engine builds a new
    one (two, in fact: a new httpx client and SSL context each) in every task run: ~40 ms
    of CPU per agent on 2 cores, more than the rest of the orchestration together. Task
    runs on threads inherit this context and share the client, as they do in Prefect's
    own sync flows; Dask/Ray/process workers build their own as before. Entered around the
    flow call (``agentrt.flows.run``), it also serves the flow engine's own sync requests (the
    result-storage lookup), which would otherwise build one more client.
    """
    with SyncClientContext.get_or_create():
        yield


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _prime_tag_limit_cache(tag_sets: list[frozenset[str]]) -> None:
    """Tell Prefect up front which agents' tags have no concurrency limits.

    Prefect's task engine asks the server for tag concurrency slots before every task run
    and caches "no limits for these tags" per tag set, but the first asks of a run all
    arrive at once; on the SQLite server they collide (SQLITE_BUSY → 503) and the client
    retries after ~2 s, stalling parallel agents. One read of the existing limits before
    the run fills the same cache. If Prefect's cache is ever renamed, this is a no-op and
    Prefect behaves as it does by default.
    """
    try:
        from prefect.concurrency import services

        cache, lock = services._no_limits_cache, services._cache_lock
    except (ImportError, AttributeError):
        return
    from prefect.client.orchestration import get_client

    names: set[str] = set()
    try:
        async with get_client() as client:
            offset = 0
            while True:
                page = await client.read_global_concurrency_limits(limit=200, offset=offset)
                names.update(limit.name for limit in page)
                if len(page) < 200:
                    break
                offset += 200
    except Exception:
        return  # priming is an optimisation; Prefect will ask per task run instead
    with lock:
        for tags in tag_sets:
            key = frozenset(f"tag:{t}" for t in tags)
            if key and not key & names:
                cache[key] = True


async def _keep_tag_limit_cache(tag_sets: list[frozenset[str]], every: float = 4.0) -> None:
    """Re-prime before Prefect's cache entries expire (5 s), for as long as the run lasts:
    otherwise every parallel agent of a long run asks the server again at once. A limit
    created during the run is seen within ``every`` seconds, as with Prefect's own TTL."""
    while True:
        await asyncio.sleep(every)
        await _prime_tag_limit_cache(tag_sets)


def allocate_budget(plan: Plan) -> dict[str, tuple[int | None, str | None]]:
    """Each step's token slice from the workflow's total, with the reason."""
    requests = []
    for sid, step in plan.steps.items():
        ctx = step.agent.manifest.context
        if ctx.min_tokens or ctx.optimal_tokens:
            requests.append((sid, step.agent.manifest.priority, ctx))
    total = plan.workflow.budget.total_tokens
    if not requests:
        return {}
    from agentrt.context.budget import BudgetRequest, TokenBudgetManager

    if not total:
        return {
            sid: (max(c.optimal_tokens, c.min_tokens), "no workflow budget: got its optimal tokens")
            for sid, _p, c in requests
        }
    allocation = TokenBudgetManager().allocate(
        [
            BudgetRequest(
                name=sid,
                priority=priority,
                min_tokens=c.min_tokens,
                optimal_tokens=max(c.optimal_tokens, c.min_tokens),
            )
            for sid, priority, c in requests
        ],
        total,
    )
    return {name: (g.tokens, g.reason) for name, g in allocation.grants.items()}


def task_runner_for(plan: Plan, override: str | None = None) -> Any:
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


_SINKS: dict[int, tuple[RunEvents, dict[str, Any]]] = {}
_sink_ids = itertools.count(1)


def _register_sink(events: RunEvents, holder: dict[str, Any]) -> int:
    key = next(_sink_ids)
    _SINKS[key] = (events, holder)
    return key


def build_flow(
    plan: Plan,
    *,
    events: RunEvents | None = None,
    task_runner: str | None = None,
    spool_root: Path | None = None,
    holder: dict[str, Any] | None = None,
    return_json: bool = True,
    artifacts: ArtifactsMode = "inline",
    report_after_return: bool = False,
) -> Any:
    """The Prefect flow for ``plan``. ``holder['result']`` is the RunResult; the flow returns
    it as JSON data, or nothing with ``return_json=False`` (for callers that read the holder:
    Prefect walks a flow's return value looking for futures, ~55 ms for 200 steps).
    ``artifacts``: when the run's Prefect artifacts are published (flows/artifacts.py).

    With ``report_after_return`` (ignored for inline artifacts) the flow returns before the
    run's metrics and report files are written, so that work overlaps Prefect's final state
    call (which waits on a busy embedded server after a wide run); the caller must await
    ``holder['finishing']`` (:func:`agentrt.flows.run.arun_workflow` does), which also runs
    ``holder['after_report'](result)`` in a worker thread if given, then call
    ``holder['publish']()`` if set (background artifacts, sent after the flow run's end)."""
    from agentrt.agents.imports import source_hash

    # Prefect ships the flow object (with its closure) to Dask/Ray workers inside the run
    # context, and a live progress display holds locks that cannot be pickled: the closure
    # keeps only a key into this process's table of sinks.
    sink = _register_sink(events or RunEvents(), holder if holder is not None else {})
    agents = {s.agent.key: s.agent for s in plan.steps.values()}
    agents.update({fb.key: fb for s in plan.steps.values() for fb in s.fallbacks})
    tasks = {
        key: make_task(a, source_hash(a.manifest.entrypoint, a.policy)) for key, a in agents.items()
    }
    grants = allocate_budget(plan)

    async def run_workflow(params: dict[str, Any]) -> dict[str, Any]:
        from prefect.runtime import flow_run

        flow_run_id = str(flow_run.id) if flow_run.id else None
        spool = str(spool_root / "spool" / (flow_run_id or "local")) if spool_root else None
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        tag_sets = [frozenset(t.tags) for t in tasks.values()]
        await _prime_tag_limit_cache(tag_sets)
        keeper = asyncio.create_task(_keep_tag_limit_cache(tag_sets))
        events, holder = _SINKS.pop(sink)
        driver = _Driver(plan, params, tasks, grants, events, spool, _parameter_wrapper())
        if artifacts != "off":
            driver.artifacts = RunArtifacts(plan.workflow.name, len(plan.steps))
        with hold_spool(spool) as attempts:
            try:
                with _shared_sync_client(), _workers_share_embedded_server():
                    await driver.run()
            finally:
                keeper.cancel()
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
        )

        async def finish() -> None:
            makers = await _report(plan, result, spool, attempts)
            run_artifacts = driver.artifacts
            if run_artifacts is not None and artifacts == "inline":
                problems = await asyncio.wrap_future(run_artifacts.finish(makers, collect=False))
                if problems and "error" not in result.report_paths:
                    result.report_paths["error"] = f"artifacts not published: {problems[0]}"
            elif run_artifacts is not None and report_after_return:
                # Sent once the flow run's end is recorded: the calls would slow that down.
                holder["publish"] = functools.partial(run_artifacts.finish, makers)
            elif run_artifacts is not None:
                run_artifacts.finish(makers)
            if (after := holder.get("after_report")) is not None:
                await asyncio.to_thread(after, result)

        holder["result"] = result
        holder["finishing"] = asyncio.ensure_future(finish())
        if not report_after_return or artifacts == "inline":
            # Inline artifacts are on the flow run before it ends: so is the report then.
            await holder["finishing"]
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
