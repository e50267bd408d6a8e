"""One attempt of one agent, in phases: initialise, execute, validate (integrate and clean up
finish in the flow and in ``finally``).

This is the body of every agent's Prefect task. It receives only plain data (the manifest,
inputs, the token slice and run information) so it can run in threads, processes or on
Dask/Ray workers alike. Every attempt, success or failure, leaves an
:class:`~agentrt.flows.results.AttemptRecord` in the metrics spool, written in ``finally``.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import inspect
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from agentrt.agents.agent_context import AgentContext
from agentrt.agents.imports import ImportPolicy, load_callable
from agentrt.agents.manifest import AgentManifest
from agentrt.agents.redact import install_log_redaction, redact
from agentrt.agents.registry import RegisteredAgent
from agentrt.errors import AgentrtError
from agentrt.flows.attempt import RunInfo, mark_failure
from agentrt.flows.resources import AgentMemoryError, MemoryWatch
from agentrt.flows.results import AttemptRecord
from agentrt.flows.run_log import agent_log, log_end, log_failure, log_start
from agentrt.flows.schemas import (
    SchemaValidationError,
    lookup_field,
    upstream_view,
    validate_input,
    validate_output,
)

__all__ = [
    "AgentTimeoutError",
    "DataFlowError",
    "LowConfidenceError",
    "QualityCheckError",
    "agent_spec",
    "hold_spool",
    "run_agent",
    "spool_record",
]


class AgentTimeoutError(AgentrtError, TimeoutError):
    """The agent did not finish within its manifest's ``timeout_seconds``."""

    hint = "raise timeout_seconds in {agent}'s manifest, or give it a smaller input"


class DataFlowError(AgentrtError, ValueError):
    """Upstream data does not match this agent's input schema (never retried)."""

    retryable = False
    hint = "make the upstream output match this agent's input schema, or map inputs explicitly"


class OutputValidationError(AgentrtError, ValueError):
    """The agent returned data that does not match its output schema."""

    hint = "fix {agent} so its output matches its output schema and checks"


class QualityCheckError(AgentrtError, ValueError):
    """A quality check declared in the manifest failed on the output."""

    hint = "fix {agent} so its output matches its output schema and checks"


class LowConfidenceError(AgentrtError, ValueError):
    """The output's confidence is below the manifest's ``min_confidence``."""

    hint = "lower min_confidence in {agent}'s manifest, or add a fallback agent"


def agent_spec(agent: RegisteredAgent) -> dict[str, Any]:
    """Plain data describing an agent, enough to rebuild it in any worker."""
    spec = {
        "manifest": agent.manifest.model_dump(mode="json"),
        "source": agent.source,
        "line": agent.line,
        "policy": agent.policy.to_dict(),
    }
    blob = json.dumps(spec, sort_keys=True, default=str).encode()
    spec["fingerprint"] = hashlib.blake2b(blob, digest_size=16).hexdigest()
    return spec


# Agents rebuilt in this process, by spec fingerprint: a workflow runs the same agent in
# many steps, and validating its manifest again each time costs ~75 µs per attempt.
_rebuilt: dict[str, RegisteredAgent] = {}


def _rebuild(spec: dict[str, Any]) -> RegisteredAgent:
    key = spec.get("fingerprint")
    agent = _rebuilt.get(key) if key else None
    if agent is None:
        agent = RegisteredAgent(
            AgentManifest.model_validate(spec["manifest"]),
            spec["source"],
            spec.get("line"),
            ImportPolicy.from_dict(spec["policy"]),
        )
        if key:
            if len(_rebuilt) >= 512:
                _rebuilt.clear()
            _rebuilt[key] = agent
    return agent


# Per-process limits for resources.concurrency tags. Across processes, Prefect's tag
# concurrency limits apply (the tag is on the task run).
_tag_lock = threading.Lock()
_tag_semaphores: dict[tuple[str, int], threading.BoundedSemaphore] = {}


def _slot(tag: str | None, limits: dict[str, int]) -> threading.BoundedSemaphore | None:
    if not tag or tag not in limits:
        return None
    with _tag_lock:
        return _tag_semaphores.setdefault(
            (tag, limits[tag]), threading.BoundedSemaphore(limits[tag])
        )


def _call(
    fn: Callable[..., Any],
    args: tuple,
    timeout: float | None,
    name: str,
    cpu: list[float],
    watch: MemoryWatch | None = None,
) -> Any:
    """Call ``fn`` with a hard timeout: a hung agent is abandoned (daemon thread), not awaited.

    When it runs in a watchdog thread, that thread's CPU time is appended to ``cpu`` (the
    caller's own thread time already covers the plain call). The thread running ``fn`` is
    the one ``watch`` stops when the attempt passes its memory limit.
    """
    running = watch.running_agent if watch is not None else contextlib.nullcontext
    if timeout is None:
        with running():
            return fn(*args)
    box: dict[str, Any] = {}
    done = threading.Event()
    ctx = contextvars.copy_context()

    def target() -> None:
        t0 = time.thread_time()
        try:
            with running():
                box["value"] = ctx.run(fn, *args)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc
        finally:
            cpu.append(time.thread_time() - t0)
            done.set()

    threading.Thread(target=target, name=f"agentrt-{name}", daemon=True).start()
    if not done.wait(timeout):
        raise AgentTimeoutError(f"{name} did not finish within {timeout:g} s (timeout_seconds)")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _memory_error(watch: MemoryWatch) -> AgentMemoryError:
    watch.stop()  # the final sample: the peak in the message is the attempt's own
    return watch.error()


def _check_quality(manifest: AgentManifest, data: Any) -> None:
    for check in manifest.checks:
        value = lookup_field(data, check.field)
        if check.non_empty and not value:
            raise QualityCheckError(f"check failed: {check.field} is empty")
        size = len(value) if isinstance(value, list | dict | str) else None
        if check.min_items is not None and (size is None or size < check.min_items):
            raise QualityCheckError(
                f"check failed: {check.field} has {size} items < {check.min_items}"
            )
        if check.max_items is not None and size is not None and size > check.max_items:
            raise QualityCheckError(
                f"check failed: {check.field} has {size} items > {check.max_items}"
            )
    if manifest.min_confidence is not None:
        confidence = data.get("confidence") if isinstance(data, dict) else None
        if confidence is None:
            raise LowConfidenceError(
                f"min_confidence is {manifest.min_confidence} but the output has no confidence"
            )
        if float(confidence) < manifest.min_confidence:
            raise LowConfidenceError(
                f"confidence {float(confidence):.2f} < min_confidence {manifest.min_confidence}"
            )


def _check_budget(
    manifest: AgentManifest, data: Any, ctx: AgentContext, run: RunInfo
) -> int | None:
    """Tokens delivered ≤ tokens granted, counted by the runtime (see
    :func:`~agentrt.flows.allocation.counted_tokens`); the agent's own figure counts too
    when it admits more. Returns the tokens delivered; nothing to check (None) when the
    workflow sets no total budget."""
    limit = run.token_limit
    if limit is None:
        return None
    from agentrt.flows.allocation import counted_tokens

    counted, what = counted_tokens(manifest, data, ctx.prompt_parts)
    reported = ctx.tokens_delivered or 0
    delivered = max(counted, reported)
    if delivered > limit:
        from agentrt.context.budget import BudgetExceededError

        source = f"counted in {what}" if counted >= reported else "as it reported"
        raise BudgetExceededError(
            f"{manifest.key} delivered {delivered:,} tokens ({source}) but was granted "
            f"{limit:,} (step {run.step} of workflow {run.workflow})"
        )
    return delivered


def _task_run_info() -> tuple[str | None, str | None, int]:
    try:
        from prefect.context import TaskRunContext

        ctx = TaskRunContext.get()
    except Exception:
        ctx = None
    if ctx is None:
        return None, None, 1
    run = ctx.task_run
    return str(run.id), str(run.flow_run_id) if run.flow_run_id else None, max(run.run_count, 1)


def _scrub(exc: BaseException) -> None:
    """Remove secrets from an exception's message, and from those of its causes and
    contexts (Prefect logs the whole chain), before Prefect logs or stores it."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        text = str(current)
        clean = redact(text)
        if clean != text:
            with contextlib.suppress(Exception):
                current.args = (clean,)
        todo += [current.__cause__, current.__context__]


_logs_redacted: set[int] = set()


def _redact_logs_once() -> None:
    # In this process (Dask and process-pool workers configure their own logging), before
    # the agent can log: Prefect ships task-run log lines to the console and the API.
    if os.getpid() not in _logs_redacted:
        install_log_redaction()
        _logs_redacted.add(os.getpid())


@lru_cache(maxsize=1024)
def _wants_ctx(fn: Callable[..., Any]) -> bool:
    """Whether an agent function takes the run context (``ctx``) as well as its input."""
    return "ctx" in inspect.signature(fn).parameters


#: Spools held in memory: spool folder → (the holding process, its records). See hold_spool.
_held: dict[str, tuple[int, list[AttemptRecord]]] = {}


@contextlib.contextmanager
def hold_spool(spool_dir: str | None) -> Iterator[list[AttemptRecord]]:
    """Keep the attempt records of ``spool_dir`` made in this process in memory, for the run
    that holds it to hand them to ``finalize_run`` at its end: no file write per attempt and
    no reading back (~1 ms per agent). Attempts in other processes (process, Dask and Ray
    workers) still write files into the folder."""
    records: list[AttemptRecord] = []
    if spool_dir:
        _held[spool_dir] = (os.getpid(), records)
    try:
        yield records
    finally:
        if spool_dir:
            _held.pop(spool_dir, None)


def spool_record(record: AttemptRecord, spool_dir: str | None) -> None:
    """Add one attempt record to the run's metrics spool: in memory if this process holds
    the spool (:func:`hold_spool`), else as a file of its own (written atomically)."""
    if not spool_dir:
        return
    held = _held.get(spool_dir)
    if held is not None and held[0] == os.getpid():  # a forked child holds a stale copy
        held[1].append(record)
        return
    folder = Path(spool_dir)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{record.step}-{record.agent_id}-{record.attempt}-{uuid.uuid4().hex[:8]}.json"
    tmp = folder / f".{name}.tmp"
    tmp.write_text(record.model_dump_json())
    tmp.replace(folder / name)  # atomic: readers never see half a record


def _price(ctx: AgentContext) -> None:
    """``ctx.cost_usd`` from the model's price and the LLM tokens, unless the agent set it
    (agentrt.agents.prices). Never raises: metrics must not fail an attempt (a prices file
    that cannot be read is logged, and the cost left unknown)."""
    usage = ctx.usage
    if usage.cost_usd is not None or not usage.llm_model:
        return
    from agentrt.agents.prices import PricesError, cost_usd

    try:
        usage.cost_usd = cost_usd(usage.llm_model, usage.llm_input_tokens, usage.llm_output_tokens)
    except PricesError as exc:
        import logging

        logging.getLogger("agentrt.metrics").warning("cost not computed: %s", exc)


def run_agent(
    spec: dict[str, Any],
    inputs: dict[str, Any],
    budget_tokens: int | None,
    run: RunInfo,
) -> dict[str, Any]:
    """Run one attempt of an agent. Raises on failure so Prefect can retry it (the
    exception it raised, marked with the phase and attempt: :func:`mark_failure`)."""
    _redact_logs_once()
    agent = _rebuild(spec)
    manifest = agent.manifest
    task_run_id, flow_run_id, attempt = _task_run_info()
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    cpu0 = time.thread_time()
    agent_cpu: list[float] = []  # the agent's own thread, when it runs under a watchdog
    phases: dict[str, float] = {}
    phase = "initialise"
    mark = t0
    error: BaseException | None = None
    counted: int | None = None  # the context tokens delivered, as the runtime counted them
    slot = _slot(manifest.resources.concurrency, run.tag_limits)
    # The attempt's peak memory, on every runner; a hard limit where the driver asks for one
    # (the process runner: one attempt per worker process).
    watch = MemoryWatch(manifest.key, run.memory_limit_mb).start()
    ctx = AgentContext(
        agent_id=manifest.id,
        version=manifest.version,
        step=run.step,
        workflow=run.workflow,
        params=run.params,
        budget_tokens=budget_tokens,
        attempt=attempt,
        flow_run_id=flow_run_id,
        token_limit=run.token_limit,
    )

    log = agent_log()
    log_start(log, manifest, run, budget_tokens, attempt)

    def next_phase(name: str) -> None:
        nonlocal phase, mark
        now = time.perf_counter()
        phases[phase] = round(now - mark, 6)
        phase, mark = name, now

    try:
        if slot is not None:
            slot.acquire()
        fn = load_callable(manifest.entrypoint, agent.policy) if manifest.kind == "python" else None
        if run.upstream:
            ctx.upstream = upstream_view(run.upstream)
        try:
            value = validate_input(agent, inputs)
        except SchemaValidationError as exc:
            origin = run.provenance
            sources = sorted({origin.get(f.split(".")[0], "workflow params") for f in exc.fields})
            raise DataFlowError(
                f"input for {manifest.key} from {', '.join(sources)} does not match its input "
                f"schema: {exc}"
            ) from None
        next_phase("execute")
        if manifest.kind == "llm":
            from agentrt.agents.llm import run_llm_agent

            result = _call(
                run_llm_agent,
                (agent, value, ctx),
                manifest.timeout_seconds,
                manifest.id,
                agent_cpu,
                watch,
            )
        else:
            assert fn is not None
            args = (value, ctx) if _wants_ctx(fn) else (value,)
            result = _call(fn, args, manifest.timeout_seconds, manifest.id, agent_cpu, watch)
        if watch.exceeded:  # the agent caught the sampler's exception and went on
            raise _memory_error(watch)
        next_phase("validate")
        try:
            data = validate_output(agent, result)
        except SchemaValidationError as exc:
            raise OutputValidationError(f"{manifest.key} returned invalid output: {exc}") from None
        _check_quality(manifest, data)
        counted = _check_budget(manifest, data, ctx, run)
        next_phase("cleanup")
        return {
            "output": data,
            "agent": manifest.key,
            "attempt": attempt,
            "phases": dict(phases),
            "tokens_delivered": ctx.tokens_delivered,
        }
    except BaseException as exc:
        error = exc
        if watch.exceeded and not isinstance(exc, AgentMemoryError):
            # The sampler stopped the agent (or its allocations failed past the limit).
            error = _memory_error(watch)
        _scrub(error)
        mark_failure(error, phase, attempt)
        log_failure(log, manifest, run, error, phase, attempt)
        if error is not exc:
            raise error from None
        raise
    finally:
        watch.stop()
        if slot is not None:
            slot.release()
        now = time.perf_counter()
        phases[phase] = round(now - mark, 6)
        _price(ctx)
        cpu_seconds = time.thread_time() - cpu0 + sum(agent_cpu)
        if error is None:
            log_end(
                log, manifest, budget_tokens, ctx.usage, now - t0, cpu_seconds, counted, ctx.notes
            )
        record = AttemptRecord(
            workflow=run.workflow,
            flow_run_id=flow_run_id,
            task_run_id=task_run_id,
            step=run.step,
            agent_id=manifest.id,
            agent_version=manifest.version,
            attempt=attempt,
            state="failed" if error else "completed",
            error_type=type(error).__name__ if error else None,
            error_message=redact(str(error))[:2000] if error else None,
            phase=phase if error else None,
            phases=phases,
            started_at=started,
            ended_at=datetime.now(UTC),
            wall_seconds=round(now - t0, 6),
            cpu_seconds=round(cpu_seconds, 6),
            peak_memory_mb=watch.peak_mb,
            tokens_allocated=budget_tokens,
            **ctx.usage.model_dump(),
            budget_reason=run.budget_reason,
            fallback_for=run.fallback_for,
            chunk=run.chunk,
        )
        # Metrics must never turn a success into a failure.
        with contextlib.suppress(OSError):
            spool_record(record, run.spool_dir)
