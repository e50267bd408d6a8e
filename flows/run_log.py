"""agentrt's own lines in each agent's Prefect log: what the attempt was given, how it ended.

Every attempt of an agent is a Prefect task run, and the Prefect UI shows that task run's log.
These lines make that log say what agentrt did (Prefect's own INFO lines are off: agentrt runs
Prefect at ``WARNING``, :func:`agentrt.flows.settings.configure_prefect`):

* the start, with the token budget and the timeout (and which agent a fallback stands in for),
* a failed attempt, with its error and whether Prefect retries it: with the reason and the
  delay, or why not (and which fallback takes over),
* the end, with the tokens delivered and the time taken.

They are logged at INFO on the logger ``agentrt.task_runs``, which sends them to the Prefect
API as Prefect sends task-run logs (``prefect_compat.task_run_log_handler``) and not to the
console. The error message of a failed attempt is redacted before it is logged.

An attempt's start line is held for up to :data:`START_LINE_DELAY` seconds: an attempt that
logs again sooner (it ended, or failed) sends both lines in one log record, stamped with the
start's time; one still running then has its start line sent alone by a background thread.
The Prefect server stores each record at a cost in its own CPU, which on a small machine is
taken from the agents (``python -m bench.orchestration`` measures the whole: agentrt's runs
against plain Prefect tasks that log nothing).
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from agentrt.agents.redact import redact

if TYPE_CHECKING:
    from agentrt.agents.agent_context import TokenUsage
    from agentrt.agents.manifest import AgentManifest
    from agentrt.flows.attempt import RunInfo

__all__ = [
    "FLUSH_EVERY",
    "LOGGER",
    "START_LINE_DELAY",
    "AttemptLog",
    "agent_log",
    "buffer_lines",
    "log_end",
    "log_failure",
    "log_start",
    "retry_delay",
]

#: The logger of agentrt's task-run lines.
LOGGER = "agentrt.task_runs"
#: Seconds an attempt's start line waits for the attempt's next line, to share its record.
START_LINE_DELAY = 1.0
#: Seconds between hand-overs of buffered lines to Prefect's log worker (buffer_lines).
FLUSH_EVERY = 0.5


def _logger() -> logging.Logger:
    """``agentrt.task_runs``: INFO and up to the Prefect API, not to the console (which shows
    the live table); set up on first use in each process."""
    logger = logging.getLogger(LOGGER)
    if not logger.handlers:
        from agentrt.flows.prefect_compat import task_run_log_handler

        # No RedactingFilter (it reads the whole environment per record, ~0.3 ms): these
        # lines hold manifest fields and numbers, and the one text from an agent, a failed
        # attempt's error message, is redacted before it is logged (log_failure).
        logger.addHandler(_Buffered(task_run_log_handler()))
        logger.propagate = False
        logger.setLevel(logging.INFO)
    return logger


class _Buffered(logging.Handler):
    """Hands records to ``target``, or, while :func:`buffer_lines` is on in this process, to
    the buffer that the lines' thread hands over every FLUSH_EVERY seconds."""

    def __init__(self, target: logging.Handler) -> None:
        super().__init__()
        self.target = target

    def handle(self, record: logging.LogRecord) -> bool:
        lines = _held_lines()
        if lines.buffering:
            lines.buffer(self.target, record)
        else:
            self.target.handle(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.target.handle(record)


class AttemptLog(logging.LoggerAdapter[logging.Logger]):
    """The logger of one attempt's lines in its task run's log. :meth:`hold` keeps a line
    back (the start) until the next line, which then carries it in the same record, or until
    :data:`START_LINE_DELAY` has passed (see the module's docstring)."""

    def __init__(self, logger: logging.Logger, extra: Mapping[str, object]) -> None:
        super().__init__(logger, extra)
        self._held: int | None = None

    def hold(self, msg: str, *args: object) -> None:
        """Log ``msg % args`` (INFO) with the next line, or alone after START_LINE_DELAY."""
        self._held = _held_lines().add(self, msg % args if args else msg, time.time())

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        held = _held_lines().take(self._held) if self._held is not None else None
        self._held = None
        if held is None or not self.isEnabledFor(level):
            if held is not None:
                held.send()
            super().log(level, msg, *args, **kwargs)
            return
        text = str(msg) % args if args else str(msg)
        held.send(f"{held.text}\n{text}", level)

    def send_held(self, text: str, created: float, level: int = logging.INFO) -> None:
        """Send ``text`` as one record stamped ``created`` (``time.time()``)."""
        extra = {**(self.extra or {}), "agentrt_created": created}
        self.logger.log(level, "%s", text, extra=extra)


class _Held:
    __slots__ = ("created", "log", "text")

    def __init__(self, log: AttemptLog, text: str, created: float) -> None:
        self.log, self.text, self.created = log, text, created

    def send(self, text: str | None = None, level: int = logging.INFO) -> None:
        self.log.send_held(self.text if text is None else text, self.created, level)


class _HeldLines:
    """Start lines held back, lines buffered (:func:`buffer_lines`), and the daemon thread
    that sends the held lines whose attempt logged nothing else within START_LINE_DELAY and
    hands the buffered ones over every FLUSH_EVERY seconds. Whoever takes a held line from
    ``held`` first (the attempt's next line, or the thread) sends it: ``dict.pop`` is
    atomic, as are a deque's append and popleft."""

    _FLUSH = -1  # the key of a hand-over in the heap of what is due

    def __init__(self) -> None:
        self.held: dict[int, _Held] = {}
        self.records: collections.deque[tuple[logging.Handler, logging.LogRecord]] = (
            collections.deque()
        )
        self.runs = 0  # buffer_lines blocks open in this process
        self.owner: int | None = None  # the process that opened them
        self._flush_due = False
        self._due: list[tuple[float, int]] = []
        self._keys = itertools.count()
        self._wake = threading.Condition()
        self._pid: int | None = None

    @property
    def buffering(self) -> bool:
        # Not in a forked child of a buffering process: nothing there would flush at its end.
        return self.runs > 0 and self.owner == os.getpid()

    def add(self, log: AttemptLog, text: str, created: float) -> int:
        key = next(self._keys)
        self.held[key] = _Held(log, text, created)
        self._schedule(START_LINE_DELAY, key)
        return key

    def take(self, key: int) -> _Held | None:
        return self.held.pop(key, None)

    def buffer(self, handler: logging.Handler, record: logging.LogRecord) -> None:
        self.records.append((handler, record))
        if not self._flush_due:
            self._flush_due = True
            self._schedule(FLUSH_EVERY, self._FLUSH)

    def _schedule(self, delay: float, key: int) -> None:
        with self._wake:
            if self._pid != os.getpid():  # a forked child has no thread of its parent's
                threading.Thread(target=self._run, name="agentrt-log", daemon=True).start()
                self._pid = os.getpid()
            heapq.heappush(self._due, (time.monotonic() + delay, key))
            if self._due[0][1] == key:  # due before what the thread waits for
                self._wake.notify()

    def flush(self) -> None:
        """Send every held line and hand every buffered one over, now."""
        for key in list(self.held):
            self._send(key)
        self._hand_over()

    def _send(self, key: int) -> None:
        held = self.held.pop(key, None)
        if held is not None:
            with contextlib.suppress(Exception):  # a log line must not stop the thread
                held.send()

    def _hand_over(self) -> None:
        self._flush_due = False
        while self.records:
            handler, record = self.records.popleft()
            with contextlib.suppress(Exception):
                handler.handle(record)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._due:
                    self._wake.wait()
                wait = self._due[0][0] - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                # What is due within the next 0.1 s goes now too: one wake-up for a burst.
                soon = time.monotonic() + 0.1
                keys = []
                while self._due and self._due[0][0] <= soon:
                    keys.append(heapq.heappop(self._due)[1])
            for key in keys:
                if key != self._FLUSH:
                    self._send(key)
            if self._FLUSH in keys:
                self._hand_over()


_lines: _HeldLines | None = None
_lines_lock = threading.Lock()


def _held_lines() -> _HeldLines:
    global _lines
    if _lines is None:
        with _lines_lock:
            if _lines is None:
                _lines = _HeldLines()
    return _lines


@contextlib.contextmanager
def buffer_lines() -> Iterator[None]:
    """While open, this process's task-run lines are buffered and handed to Prefect's log
    worker every FLUSH_EVERY seconds, in bursts, rather than one by one from each agent's
    thread (each hand-over wakes the worker's threads); on exit, everything held or buffered
    is handed over. For the flow's own process, whose agents run on the thread runner: a
    worker process (process, Dask, Ray runners) hands its lines over at once, as it may end
    before a later hand-over."""
    lines = _held_lines()
    lines.runs += 1
    lines.owner = os.getpid()
    try:
        yield
    finally:
        lines.runs -= 1
        lines.flush()


def agent_log() -> AttemptLog | None:
    """The logger for the current Prefect task run's log (None outside a task run)."""
    try:
        from prefect.context import TaskRunContext

        ctx = TaskRunContext.get()
    except Exception:
        return None
    if ctx is None:
        return None
    run = ctx.task_run
    return AttemptLog(
        _logger(),
        {
            "task_run_id": str(run.id),
            "flow_run_id": str(run.flow_run_id) if run.flow_run_id else None,
            "task_run_name": run.name,
            "task_name": ctx.task.name,
        },
    )


def _tokens(n: int | None) -> str:
    return f"{n:,}" if n is not None else "?"


def log_start(
    log: logging.LoggerAdapter[logging.Logger] | None,
    manifest: AgentManifest,
    run: RunInfo,
    budget_tokens: int | None,
    attempt: int,
) -> None:
    """The attempt's first line: agent, step, attempt, token budget, timeout."""
    if log is None:
        return
    role = f" as fallback for {run.fallback_for}" if run.fallback_for else ""
    chunk = f", chunk {run.chunk}" if run.chunk else ""
    if budget_tokens is None:
        budget = "no token budget"
    else:
        budget = f"budget {budget_tokens:,} tokens"
        if run.budget_reason:
            budget += f" ({run.budget_reason})"
    seconds = manifest.timeout_seconds
    timeout = f"timeout {seconds:g} s" if seconds else "no timeout"
    emit = log.hold if isinstance(log, AttemptLog) else log.info
    emit(
        "start %s%s (step %s%s, attempt %d of %d): %s, %s",
        manifest.key,
        role,
        run.step,
        chunk,
        attempt,
        manifest.retries.max + 1,
        budget,
        timeout,
    )


def retry_delay(manifest: AgentManifest, attempt: int) -> float:
    """The delay Prefect waits before retrying after failed attempt ``attempt`` (before
    jitter): ``exponential_backoff(base)``, as :func:`agentrt.flows.compiler.make_task` sets."""
    return manifest.retries.backoff.base * 2 ** (attempt - 1)


def log_failure(
    log: logging.LoggerAdapter[logging.Logger] | None,
    manifest: AgentManifest,
    run: RunInfo,
    exc: BaseException,
    phase: str,
    attempt: int,
) -> None:
    """A failed attempt: the error, and whether Prefect retries it (when, and why) or not."""
    if log is None:
        return
    from agentrt.errors import AgentrtError
    from agentrt.flows.retry_policy import retry_matches

    name = type(exc).__name__
    message = redact(str(exc) or name)[:500]
    retries = manifest.retries
    if isinstance(exc, AgentrtError) and not exc.retryable:
        outcome = f"not retried: {name} is never retried"
    elif not retry_matches(exc, frozenset(retries.retry_on)):
        outcome = f"not retried: {name} is not in retries.retry_on"
    elif attempt > retries.max:
        outcome = f"not retried: no retries left (retries.max {retries.max})"
    else:
        delay = retry_delay(manifest, attempt)
        jitter = f" ± {retries.backoff.jitter:g}×" if retries.backoff.jitter else ""
        log.warning(
            "attempt %d of %d failed in %s: %s: %s; retrying in %g s%s (%s matches "
            "retries.retry_on)",
            attempt,
            retries.max + 1,
            phase,
            name,
            message,
            delay,
            jitter,
            name,
        )
        return
    if manifest.fallbacks and not run.fallback_for:
        names = ", ".join(manifest.fallbacks)
        many = len(manifest.fallbacks) > 1
        outcome += f"; fallback{'s' if many else ''} {names} take{'' if many else 's'} over"
    log.warning(
        "attempt %d of %d failed in %s: %s: %s; %s",
        attempt,
        retries.max + 1,
        phase,
        name,
        message,
        outcome,
    )


def log_end(
    log: logging.LoggerAdapter[logging.Logger] | None,
    manifest: AgentManifest,
    budget_tokens: int | None,
    usage: TokenUsage,
    wall: float,
    cpu: float,
    counted: int | None = None,
    notes: Mapping[str, Any] | None = None,
) -> None:
    """A completed attempt's last line: tokens delivered (of the budget) and time taken.
    ``counted``: the delivered tokens as the runtime counted them (with a total budget);
    ``notes``: the agent's ``ctx.notes`` (an LLM prompt's ``prompt_shrunk`` is said here)."""
    if log is None:
        return
    delivered = max(counted or 0, usage.tokens_delivered or 0)
    if counted is None and usage.tokens_delivered is None:
        tokens = "no context tokens" if budget_tokens is None else "context tokens not counted"
    else:
        tokens = f"{delivered:,} context tokens delivered"
        if budget_tokens is not None:
            tokens += f" of {budget_tokens:,} granted"
    if usage.llm_input_tokens is not None or usage.llm_output_tokens is not None:
        tokens += (
            f", LLM {_tokens(usage.llm_input_tokens)} in / {_tokens(usage.llm_output_tokens)} out"
        )
    shrunk = (notes or {}).get("prompt_shrunk")
    if shrunk:
        tokens += "; prompt shrunk to fit the grant: " + ", ".join(map(str, shrunk))
    log.info("done %s in %.2f s (CPU %.2f s): %s", manifest.key, wall, cpu, tokens)
