"""Memory and cores as resources: what a run may hold at once, what each step asks for, and
the memory limit of one attempt in a worker process.

- **Totals.** A workflow's ``resources: {memory_mb, cpus}``; each left out is the machine's
  available memory (``psutil``) or its cores when the run is planned (:func:`resource_totals`).
- **Declarations.** An agent's ``resources.memory_mb`` / ``resources.cpus``. A step reserves
  the largest declaration among its agent and its fallbacks (they run in its place), so a
  fallback never starts beyond the totals (:func:`step_demand`). An agent that declares
  nothing reserves nothing.
- **Plan check.** A declaration larger than the total can never start: a plan problem
  (:func:`oversized`, called by :func:`~agentrt.flows.plan.build_plan`).
- **Admission.** The driver starts a ready step only when its reservation fits beside the
  running steps' (:class:`Admission`), in :func:`~agentrt.flows.driver.step_order`.
- **Limit.** On the process runner ``memory_mb`` is a hard limit on what the attempt adds to
  its worker's memory (:class:`MemoryWatch`); every attempt records its peak.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from agentrt.agents.registry import RegisteredAgent
from agentrt.errors import AgentrtError
from agentrt.flows.workflow import WorkflowManifest

__all__ = [
    "Admission",
    "AgentMemoryError",
    "Demand",
    "MemoryWatch",
    "ResourceTotals",
    "oversized",
    "resource_totals",
    "step_demand",
]

MB = 1 << 20
#: How often the memory sampler reads the process's RSS while attempts run (seconds).
SAMPLE_SECONDS = 0.01
#: … while none of the running attempts has a memory limit (the peak_mb metric only).
UNLIMITED_SAMPLE_SECONDS = 0.05
#: How long the sampler keeps its pace after the last attempt ended before it sleeps until
#: the next one (sequential attempts then do not wake it one by one).
LINGER_SECONDS = 1.0


class AgentMemoryError(MemoryError, AgentrtError):
    """The attempt used more memory than its manifest's ``resources.memory_mb`` (a hard
    limit on the process task runner). Retried only when ``retries.retry_on`` names it (or
    ``MemoryError``): the same input usually needs the same memory.

    MemoryError comes first among the bases: whatever copies an exception through
    ``MemoryError.__new__(cls)`` (as the process runner's result path does) refuses a
    class whose first base is another."""

    hint = "raise resources.memory_mb in {agent}'s manifest, or give it a smaller input"


@dataclass(frozen=True)
class ResourceTotals:
    """What the agents of one run may hold at once."""

    memory_mb: int
    cpus: float
    #: Where each total comes from, for messages: the workflow's field or the machine.
    memory_from: str = "the workflow's resources.memory_mb"
    cpus_from: str = "the workflow's resources.cpus"


def resource_totals(workflow: WorkflowManifest) -> ResourceTotals:
    """The workflow's totals; the machine's available memory and cores where it sets none."""
    spec = workflow.resources
    memory, memory_from = spec.memory_mb, "the workflow's resources.memory_mb"
    if memory is None:
        import psutil

        memory = max(1, psutil.virtual_memory().available // MB)
        memory_from = "the machine's available memory"
    cpus, cpus_from = spec.cpus, "the workflow's resources.cpus"
    if cpus is None:
        cpus, cpus_from = float(os.cpu_count() or 1), "the machine's cores"
    return ResourceTotals(int(memory), float(cpus), memory_from, cpus_from)


@dataclass(frozen=True)
class Demand:
    """What one step reserves while it runs."""

    memory_mb: int = 0
    cpus: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.memory_mb or self.cpus)


def step_demand(agents: Iterable[RegisteredAgent]) -> Demand:
    """The largest declarations among a step's agent and its fallbacks."""
    memory, cpus = 0, 0.0
    for agent in agents:
        r = agent.manifest.resources
        memory = max(memory, r.memory_mb or 0)
        cpus = max(cpus, r.cpus or 0.0)
    return Demand(memory, cpus)


def oversized(agent: RegisteredAgent, totals: ResourceTotals) -> list[str]:
    """Why ``agent`` could never start within ``totals`` (one message per resource)."""
    r, key = agent.manifest.resources, agent.manifest.key
    problems = []
    if r.memory_mb is not None and r.memory_mb > totals.memory_mb:
        problems.append(
            f"{key} declares resources.memory_mb: {r.memory_mb} but the run has "
            f"{totals.memory_mb} MB in all ({totals.memory_from}); lower the agent's "
            "resources.memory_mb or raise the workflow's"
        )
    if r.cpus is not None and r.cpus > totals.cpus:
        problems.append(
            f"{key} declares resources.cpus: {r.cpus:g} but the run has {totals.cpus:g} in "
            f"all ({totals.cpus_from}); lower the agent's resources.cpus or raise the workflow's"
        )
    return problems


@dataclass
class Admission:
    """The reservations of the running steps against the run's totals (used by the driver,
    in its own event loop: no locking)."""

    totals: ResourceTotals
    memory_mb: int = 0
    cpus: float = 0.0
    #: The most held at once (for benchmarks and tests).
    peak_memory_mb: int = 0
    peak_cpus: float = 0.0

    def fits(self, demand: Demand) -> bool:
        return (
            self.memory_mb + demand.memory_mb <= self.totals.memory_mb
            and self.cpus + demand.cpus <= self.totals.cpus + 1e-9
        )

    def take(self, demand: Demand) -> None:
        self.memory_mb += demand.memory_mb
        self.cpus += demand.cpus
        self.peak_memory_mb = max(self.peak_memory_mb, self.memory_mb)
        self.peak_cpus = max(self.peak_cpus, self.cpus)

    def release(self, demand: Demand) -> None:
        self.memory_mb -= demand.memory_mb
        self.cpus -= demand.cpus


# -- the memory of one attempt -------------------------------------------------------------
#
# Why a sampling thread and not resource.setrlimit(RLIMIT_AS): the address-space limit is the
# process's, not the attempt's, and address space is not memory. A process-pool worker runs
# Prefect's own threads beside the agent (its event loop, the API client, the log shipper);
# every thread reserves an 8 MB stack, and glibc reserves up to 64 MB of address space per
# malloc arena (one per thread that allocates, up to 8 per core), numpy and BLAS reserve
# more. A worker's virtual size moves by hundreds of MB with no memory used, and when the
# limit is hit, any of those threads fails its allocation, not only the agent. So the limit
# is on resident memory: one thread per process reads the process's RSS every 10 ms while
# attempts run, and when an attempt's growth passes its limit it raises an exception in the
# agent's thread (PyThreadState_SetAsyncExc, delivered at the next bytecode), which the
# lifecycle turns into AgentMemoryError. What it cannot catch: an allocation made inside one
# C call holding the GIL (the sampler needs the GIL too) is seen only when that call returns;
# one that exhausts the machine first meets the OOM killer, which kills the worker
# (BrokenProcessPool, reported as such).

_lock = threading.Lock()
_active: set[MemoryWatch] = set()
_wake = threading.Event()
_idle = True  # the sampler waits for _wake (no attempt ran for LINGER_SECONDS)
_sampler_pid: int | None = None
_process = None  # psutil.Process of this process (made once per process)
_statm: tuple[int, int] | None = None  # (pid, fd of /proc/self/statm) where Linux has it
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss() -> int:
    # Read twice per attempt and every SAMPLE_SECONDS while attempts run: one pread of an
    # open /proc/self/statm, where psutil opens, reads and parses the file in Python each time
    # (holding the GIL the agents' threads wait for).
    global _process, _statm
    pid = os.getpid()
    if _statm is None or _statm[0] != pid:
        try:
            _statm = (pid, os.open("/proc/self/statm", os.O_RDONLY))
        except OSError:
            _statm = (pid, -1)
    if _statm[1] >= 0:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(os.pread(_statm[1], 128, 0).split()[1]) * _PAGE
    if _process is None or _process.pid != pid:
        import psutil

        _process = psutil.Process()
    return int(_process.memory_info().rss)


def _trim() -> None:
    """Give memory earlier attempts freed back to the system (glibc keeps up to ~64 MB of
    freed heap resident, which the next attempt would reuse without its RSS growing). Only
    before a limited attempt: one attempt per worker process, and ~1 ms."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):  # not glibc
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None


class _OverMemoryLimit(BaseException):
    """Raised in the agent's thread by the sampler (a BaseException, so an agent's own
    ``except Exception`` does not swallow it); turned into :class:`AgentMemoryError`."""


def _interrupt(ident: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(exc) if exc is not None else None
    )


def _sample_forever() -> None:
    global _idle
    last_busy = time.monotonic()
    while True:
        _wake.clear()
        with _lock:
            watches = list(_active)
            if watches:
                last_busy = time.monotonic()
            elif time.monotonic() - last_busy > LINGER_SECONDS:
                _idle = True
        if _idle:
            _wake.wait()
            with _lock:
                _idle = False
            continue
        if watches:
            try:
                rss = _rss()
            except Exception:  # a sampler must never die
                rss = None
            if rss is not None:
                for watch in watches:
                    watch._sample(rss)
        # Only a limit needs a sample every 10 ms; without one, a sample is for the peak_mb
        # metric, and a slower rate leaves the GIL to the agents' threads. A limited attempt
        # that starts meanwhile wakes the sampler at once (MemoryWatch.start).
        limited = any(watch.limit_mb is not None for watch in watches)
        _wake.wait(SAMPLE_SECONDS if limited else UNLIMITED_SAMPLE_SECONDS)


def _ensure_sampler() -> None:
    global _sampler_pid
    if _sampler_pid == os.getpid():
        return
    with _lock:
        if _sampler_pid != os.getpid():  # a forked child has no sampler thread
            threading.Thread(target=_sample_forever, name="agentrt-memory", daemon=True).start()
            _sampler_pid = os.getpid()


@dataclass(eq=False)
class MemoryWatch:
    """One attempt's memory: its peak (the most the process's RSS rose above its value when
    the attempt started) and, with ``limit_mb``, the hard limit on that rise."""

    agent: str
    limit_mb: int | None = None
    base: int = 0
    peak: int = 0
    exceeded: bool = False
    _threads: set[int] = field(default_factory=set)
    _guard: threading.Lock = field(default_factory=threading.Lock)
    _last_interrupt: float = 0.0

    def start(self) -> MemoryWatch:
        if self.limit_mb is not None:
            _trim()
        self.base = self.peak = _rss()
        _ensure_sampler()
        with _lock:
            _active.add(self)
            # Waking the sampler costs a thread switch per attempt: only when it sleeps for
            # good (no attempt for LINGER_SECONDS) or this attempt has a limit to enforce.
            if _idle or self.limit_mb is not None:
                _wake.set()
        return self

    def stop(self) -> None:
        with _lock:
            _active.discard(self)
        with contextlib.suppress(Exception):
            self._sample(_rss(), interrupt=False)
        with self._guard:
            for ident in self._threads:
                _interrupt(ident, None)  # drop an exception not delivered yet
            self._threads.clear()

    @property
    def peak_mb(self) -> float:
        return round(max(self.peak - self.base, 0) / MB, 1)

    @contextlib.contextmanager
    def running_agent(self) -> Iterator[None]:
        """Mark the current thread as the agent's while the block runs: the one to stop."""
        ident = threading.get_ident()
        with self._guard:
            self._threads.add(ident)
        try:
            yield
        finally:
            with self._guard:
                self._threads.discard(ident)
                _interrupt(ident, None)

    def _sample(self, rss: int, interrupt: bool = True) -> None:
        self.peak = max(self.peak, rss)
        if self.limit_mb is None or rss - self.base <= self.limit_mb * MB:
            return
        self.exceeded = True
        if not interrupt:
            return

        now = time.monotonic()
        with self._guard:
            # Again while it stays over the limit (an agent may catch BaseException), but at
            # most every 0.25 s, so its own cleanup can run.
            if now - self._last_interrupt < 0.25:
                return
            self._last_interrupt = now
            for ident in self._threads:
                _interrupt(ident, _OverMemoryLimit)

    def error(self) -> AgentMemoryError:
        return AgentMemoryError(
            f"{self.agent} used {self.peak_mb:,.1f} MB at its peak, above its limit of "
            f"{self.limit_mb:,} MB (resources.memory_mb): the attempt was stopped"
        )
