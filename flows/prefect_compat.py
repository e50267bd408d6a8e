"""Every place agentrt reaches into Prefect beyond its public API, in one module.

Checked on Prefect 3.8 (when each touch was written) and 3.9.1 (pyproject allows
``prefect>=3.8,<4``). ``tests/runtime/test_prefect_compat.py`` has a test per touch that
fails when Prefect changes under it; at run time each function raises
:class:`PrefectCompatError` (it does not quietly fall back) when what it relies on is gone.
Importing this module does not import Prefect.

The touches:

1. :func:`shared_sync_client` enters ``prefect.context.SyncClientContext`` (an internal
   context class) around the flow call. Why: an async flow has no sync client in its
   context, so Prefect's task engine builds one (a new httpx client and SSL context) in
   every task run (`python -m bench.orchestration`: plain tasks in an async flow ~30 ms
   per agent, in a sync flow ~5 ms); task runs on threads inherit this context and share
   one client, as in Prefect's own sync flows. Relies on ``get_client(sync_client=
   True)`` and the task engine using ``SyncClientContext.get_or_create()``.
2. :func:`prime_tag_limit_cache` / :func:`keep_tag_limit_cache` / :func:`tag_limit_cache`
   fill ``prefect.concurrency.services._no_limits_cache`` (a ``cachetools.TTLCache``, TTL
   5 s, keyed by ``frozenset({"tag:<tag>", ...})``) under ``_cache_lock``. Why: every
   tagged task run asks the server for tag concurrency slots; the first asks of a run
   arrive at once and on SQLite collide (SQLITE_BUSY → 503, a ~2 s client retry). One read
   of the existing limits before the run answers them. ``bench/orchestration.py`` uses
   :func:`tag_limit_cache` to give plain Prefect flows the same answer.
3. :func:`dont_wait_for_dead_workers` calls ``cancel_join_thread()`` on
   ``ProcessPoolTaskRunner._subprocess_message_queue`` (a private attribute, a
   ``multiprocessing.Queue``). Why: a process-pool worker killed while writing to that
   queue dies holding its lock, and at exit Python would wait forever to flush the
   runner's own shutdown message: ``agentrt run`` would never return.
4. :func:`parameter_wrapper` wraps the agents' task parameters in
   ``prefect.utilities.annotations.opaque`` on the thread runner. Public API, but it relies
   on behaviour: the thread runner's task engine unwraps ``opaque`` without walking the
   value (~1 ms per agent saved), while Dask and Ray runners hand annotations to the task
   as they are (so there the values go plain).
5. :func:`workers_share_embedded_server` sets ``PREFECT_API_URL`` to the embedded server's
   URL (``FlowRunContext.client.api_url``) while the agents run on a non-thread runner.
   Public settings API, but it relies on the runner handing its workers the settings in
   effect when it first submits. Why: with no URL, each worker process would start an
   embedded server of its own on the same SQLite database.
6. :func:`guard_embedded_server_command` replaces the private method
   ``prefect.server.api.server.SubprocessASGIServer._run_uvicorn_command`` with a copy that
   runs the same uvicorn command (also copied: ``prefect.__module_path__``, the private
   ``PREFECT__SERVER_EPHEMERAL`` / ``PREFECT__SERVER_FINAL`` variables) through
   :mod:`agentrt.flows.server_guard`. Why: Prefect stops its embedded server in an
   ``atexit`` hook, which a killed ``agentrt run`` never runs.
7. :func:`call_sync` passes the private ``_sync=True`` keyword of Prefect's
   ``async_dispatch`` decorator (``Artifact.format``, ``create_table_artifact``). Why:
   inside an async flow the dispatcher would return an un-awaited coroutine instead.
8. :func:`task_run_log_handler` subclasses ``prefect.logging.handlers.APILogHandler``
   (public) and overrides its ``prepare`` to build the log's payload itself: the JSON of
   ``prefect.client.schemas.actions.LogCreate`` (name, level, message, timestamp, flow and
   task run ids) plus the ``__payload_size__`` key the handler adds. Why: Prefect builds and
   dumps a pydantic model per line (~0.15 ms); agentrt logs two lines per agent attempt
   (:mod:`agentrt.flows.run_log`), which would add that to every agent's overhead. It also
   overrides ``logging.Handler.handle`` to emit without the handler's lock: ``emit`` only
   hands the payload to ``APILogWorker.send`` (thread-safe), and agents that start together
   in worker threads would otherwise queue on that lock behind a thread waiting for the GIL.
9. :func:`stop_talking_to_server` (and :func:`resume_talking_to_server`), once the Prefect
   server is gone (:mod:`agentrt.flows.server_watch`): sets ``client.max_retries`` to 0 and
   ``logging.to_api.enabled`` to false on the settings objects in use (the current one and
   ``prefect.context.GLOBAL_SETTINGS_CONTEXT``'s: pydantic models, changed in place), points
   new events at ``NullEventsClient`` (``EventsWorker.set_client_override``, public), and
   empties and stops the running ``EventsWorker`` and ``APILogWorker`` instances through
   their private ``_instances``, ``_queue``, ``_lock``, ``_task``, ``_loop`` and ``_stop``.
   Why: otherwise the flow engine's last state call retries the dead server for ~60 s
   (``_send_with_retry``: 5 retries, 2^n s apart), and at exit Prefect drains every queued
   event and log line against it, each failing after seconds of reconnecting, with a
   traceback each on the console: minutes of output after the run has ended.
10. :func:`finished_result` reads a finished thread-runner future's result from the
    ``prefect.results.ResultRecord`` its final state holds in memory (``state.data.result``)
    when the future's ``wrapped_future`` (a ``concurrent.futures.Future``) returned a
    Completed ``State``; otherwise it calls ``future.result``. Why: ``future.result`` goes
    through ``State.result`` → ``run_coro_as_sync``, a blocking round trip to Prefect's
    event-loop thread, which on the driver's loop waits for the GIL behind the running
    agents' threads once per step (`python -m bench.orchestration`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from agentrt.errors import AgentrtError

if TYPE_CHECKING:
    from threading import Lock

__all__ = [
    "CHECKED_ON",
    "PrefectCompatError",
    "call_sync",
    "dont_wait_for_dead_workers",
    "finished_result",
    "guard_embedded_server_command",
    "keep_tag_limit_cache",
    "parameter_wrapper",
    "passes_opaque",
    "prime_tag_limit_cache",
    "resume_talking_to_server",
    "shared_sync_client",
    "stop_talking_to_server",
    "tag_limit_cache",
    "tag_limit_key",
    "task_run_log_handler",
    "workers_share_embedded_server",
]

#: The Prefect versions these touches were checked on.
CHECKED_ON = ("3.8", "3.9.1")

T = TypeVar("T")


class PrefectCompatError(AgentrtError, RuntimeError):
    """The installed Prefect lacks an internal agentrt relies on (it changed under us)."""

    retryable = False
    hint = (
        "the installed Prefect changed an internal agentrt relies on: install a Prefect "
        "version agentrt was checked on (see agentrt.flows.prefect_compat.CHECKED_ON), or "
        "update agentrt/flows/prefect_compat.py and run tests/runtime/test_prefect_compat.py"
    )


def _missing(what: str, exc: BaseException | None = None) -> PrefectCompatError:
    import prefect

    return PrefectCompatError(
        f"Prefect {prefect.__version__} has no {what} (agentrt was checked on Prefect "
        f"{', '.join(CHECKED_ON)}; see agentrt.flows.prefect_compat)"
        + (f": {type(exc).__name__}: {exc}" if exc else "")
    )


# -- 1. one sync client for the task runs ---------------------------------------------
@contextlib.contextmanager
def shared_sync_client() -> Iterator[None]:
    """One Prefect sync client for all the agents' task runs on the thread runner.

    Entered around the flow call (:func:`agentrt.flows.run.arun_workflow`) it also serves
    the flow engine's own sync requests (the result-storage lookup); entered again inside
    the flow, it reuses the same client. Dask/Ray/process workers build their own.
    """
    try:
        from prefect.context import SyncClientContext

        get_or_create = SyncClientContext.get_or_create
    except (ImportError, AttributeError) as exc:
        raise _missing("prefect.context.SyncClientContext.get_or_create", exc) from exc
    with get_or_create():
        yield


# -- 2. Prefect's "no tag concurrency limits" cache -----------------------------------
def tag_limit_cache() -> tuple[Any, Lock]:
    """Prefect's per-process cache of tag sets with no concurrency limits, and its lock.

    Keys are ``frozenset({"tag:<tag>", ...})``; a true value means "no limits"."""
    try:
        from prefect.concurrency import services

        return services._no_limits_cache, services._cache_lock
    except (ImportError, AttributeError) as exc:
        raise _missing("prefect.concurrency.services._no_limits_cache / _cache_lock", exc) from exc


def tag_limit_key(tags: frozenset[str]) -> frozenset[str]:
    """The cache key Prefect's task engine uses for a task run's tags."""
    return frozenset(f"tag:{t}" for t in tags)


async def prime_tag_limit_cache(tag_sets: list[frozenset[str]]) -> None:
    """Tell Prefect up front which agents' tags have no concurrency limits.

    Prefect caches "no limits for these tags" per tag set, but the first asks of a run all
    arrive at once and collide on the SQLite server; one read of the existing limits before
    the run fills the same cache. A server error only skips the priming (Prefect then asks
    per task run); a Prefect without the cache raises :class:`PrefectCompatError`.
    """
    cache, lock = tag_limit_cache()
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
            key = tag_limit_key(tags)
            if key and not key & names:
                cache[key] = True


async def keep_tag_limit_cache(tag_sets: list[frozenset[str]], every: float = 4.0) -> None:
    """Re-prime before Prefect's cache entries expire (5 s), for as long as the run lasts:
    otherwise every parallel agent of a long run asks the server again at once. A limit
    created during the run is seen within ``every`` seconds, as with Prefect's own TTL."""
    while True:
        await asyncio.sleep(every)
        await prime_tag_limit_cache(tag_sets)


# -- 3. a dead process-pool worker must not hang the exit -----------------------------
def dont_wait_for_dead_workers() -> None:
    """Let the process exit even if a dead worker left the runner's message queue locked.

    A process-pool worker killed while sending a log line or event to the parent (the OOM
    killer strikes anywhere) dies holding the lock of Prefect's message queue, which it
    shares with the parent. Prefect's runner then cannot hand its own shutdown message to
    the queue, and at exit Python waits forever to flush it. Nothing worth keeping is in
    that queue after a worker died (the run's records are on disk). Other runners have no
    such queue: for them this does nothing.
    """
    from prefect.context import FlowRunContext
    from prefect.task_runners import ProcessPoolTaskRunner

    ctx = FlowRunContext.get()
    runner = ctx.task_runner if ctx is not None else None
    if not isinstance(runner, ProcessPoolTaskRunner):
        return
    if not hasattr(runner, "_subprocess_message_queue"):
        raise _missing("ProcessPoolTaskRunner._subprocess_message_queue")
    queue = runner._subprocess_message_queue
    if queue is not None:
        with contextlib.suppress(Exception):
            queue.cancel_join_thread()


# -- 4. opaque task parameters on the thread runner -----------------------------------
def parameter_wrapper() -> Callable[[Any], Any]:
    """How the running flow's agents get their task parameters: ``opaque`` on the thread
    runner (the values hold no futures, the driver resolves the data flow itself, so
    Prefect need not walk every item of the manifest, inputs and params), plain elsewhere
    (Dask and Ray runners hand annotations to the task as they are)."""
    from prefect.context import FlowRunContext
    from prefect.task_runners import ThreadPoolTaskRunner

    try:
        from prefect.utilities.annotations import opaque
    except ImportError as exc:
        raise _missing("prefect.utilities.annotations.opaque", exc) from exc
    ctx = FlowRunContext.get()
    if ctx is not None and isinstance(ctx.task_runner, ThreadPoolTaskRunner):
        return opaque
    return _plain


def _plain(value: T) -> T:
    return value


def passes_opaque(wrap: Callable[[Any], Any]) -> bool:
    """Whether ``wrap`` (from :func:`parameter_wrapper`) is the thread runner's ``opaque``."""
    return wrap is not _plain


# -- 5. worker processes use this process's embedded server ---------------------------
@contextlib.contextmanager
def workers_share_embedded_server() -> Iterator[None]:
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


# -- 6. the embedded server stops with its parent -------------------------------------
#: The environment Prefect's ``_run_uvicorn_command`` gives the embedded server (3.8, 3.9).
SERVER_ENV = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
}


def uvicorn_args(port: int) -> list[str]:
    """The uvicorn arguments of Prefect's ``_run_uvicorn_command`` (3.8, 3.9)."""
    import prefect

    return [
        "--app-dir",
        str(prefect.__module_path__.parent),
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]


def guard_embedded_server_command(
    wrap_command: Callable[[list[str]], list[str]], env_defaults: dict[str, str]
) -> None:
    """Start Prefect's embedded server as ``wrap_command(uvicorn_args)``, with
    ``env_defaults`` under the environment (whose values win). Idempotent."""
    import os
    import subprocess

    from prefect.settings import get_current_settings

    try:
        from prefect.server.api.server import SubprocessASGIServer
    except ImportError as exc:
        raise _missing("prefect.server.api.server.SubprocessASGIServer", exc) from exc
    cls = SubprocessASGIServer
    if getattr(cls, "_agentrt_guarded", False):
        return
    if not callable(getattr(cls, "_run_uvicorn_command", None)):
        raise _missing("SubprocessASGIServer._run_uvicorn_command")

    def _run_uvicorn_command(self: Any) -> subprocess.Popen[Any]:
        env = {
            **env_defaults,
            **os.environ,
            **SERVER_ENV,
            **get_current_settings().to_environment_variables(exclude_unset=True),
        }
        return subprocess.Popen(args=wrap_command(uvicorn_args(self.port)), env=env)

    cls._run_uvicorn_command = _run_uvicorn_command  # type: ignore[method-assign]
    cls._agentrt_guarded = True  # type: ignore[attr-defined]


# -- 7. the sync implementation of Prefect's dual sync/async functions ----------------
def call_sync(fn: Callable[..., T | Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Call a Prefect function decorated with ``async_dispatch`` through its sync
    implementation, also inside a running event loop (an async flow)."""
    if not hasattr(fn, "aio"):  # async_dispatch marks its wrappers with .aio
        name = getattr(fn, "__qualname__", repr(fn))
        raise _missing(f"async_dispatch wrapper on {name} (the _sync keyword)")
    return fn(*args, _sync=True, **kwargs)  # type: ignore[return-value]


# -- 8. agentrt's task-run log lines, without a pydantic model per line ---------------
_log_handler_class: type[logging.Handler] | None = None


def _iso(created: float) -> str:
    """A log record's time as Prefect's ``LogCreate`` serialises it (UTC, ``Z``)."""
    from datetime import UTC, datetime

    stamp = datetime.fromtimestamp(created, UTC).replace(tzinfo=None).isoformat()
    return stamp + "Z"


def task_run_log_handler() -> logging.Handler:
    """A handler that sends records to the Prefect API as Prefect's ``APILogHandler`` does
    (the same settings, worker and batching), building each log's payload directly rather
    than through a pydantic model. Records that name no flow run, or are too large, go
    through Prefect's own ``prepare``."""
    global _log_handler_class
    if _log_handler_class is None:
        try:
            from prefect.logging.handlers import APILogHandler
            from prefect.settings import PREFECT_LOGGING_TO_API_MAX_LOG_SIZE
        except ImportError as exc:
            raise _missing("prefect.logging.handlers.APILogHandler", exc) from exc
        if not callable(getattr(APILogHandler, "prepare", None)):
            raise _missing("APILogHandler.prepare")
        import orjson

        class TaskRunLogHandler(APILogHandler):
            #: Prefect's size limit of one log, read once (a settings lookup costs ~10 µs).
            max_size = PREFECT_LOGGING_TO_API_MAX_LOG_SIZE.value()

            def handle(self, record: logging.LogRecord) -> bool | logging.LogRecord:
                # logging.Handler.handle without the handler's lock: emit only hands a
                # payload to Prefect's log worker, whose send is thread-safe. With the lock,
                # agents logging together in worker threads queue behind whichever thread
                # holds it when the GIL switches.
                rv = self.filter(record)
                if isinstance(rv, logging.LogRecord):
                    record = rv
                if rv:
                    self.emit(record)
                return rv

            def prepare(self, record: logging.LogRecord) -> dict[str, Any]:
                flow_run_id = getattr(record, "flow_run_id", None)
                task_run_id = getattr(record, "task_run_id", None)
                if not flow_run_id or getattr(record, "worker_id", None):
                    return super().prepare(record)
                log: dict[str, Any] = {
                    "name": record.name,
                    "level": record.levelno,
                    "message": self.format(record),
                    "timestamp": _iso(getattr(record, "agentrt_created", record.created)),
                    "flow_run_id": str(flow_run_id),
                    "task_run_id": str(task_run_id) if task_run_id else None,
                }
                size = len(orjson.dumps(log))
                if size > self.max_size:
                    return super().prepare(record)  # Prefect truncates it
                log["__payload_size__"] = size
                return log

        _log_handler_class = TaskRunLogHandler
    return _log_handler_class()


# -- 9. a Prefect server that is gone: stop retrying it, drop what is queued for it ----
_talking: dict[str, Any] | None = None  # what stop_talking_to_server changed, to restore


def _settings_in_use() -> list[Any]:
    from prefect.context import GLOBAL_SETTINGS_CONTEXT
    from prefect.settings import get_current_settings

    found = [get_current_settings(), GLOBAL_SETTINGS_CONTEXT.settings]
    return [s for i, s in enumerate(found) if all(s is not t for t in found[:i])]


def _abandon(service: Any) -> None:
    """Empty a running Prefect queue service, stop it and cancel what it is doing."""
    import queue

    while True:
        try:
            service._queue.get_nowait()
        except queue.Empty:
            break
        service._queue.task_done()
    task, loop = service._task, service._loop
    service._stop()  # takes service._lock; marks it stopped, ends its queue
    if task is not None and loop is not None and not loop.is_closed():
        loop.call_soon_threadsafe(task.cancel)


def stop_talking_to_server() -> None:
    """Make Prefect give up on its server at once in this process: client calls fail on
    the first error, no logs go to the API, events go nowhere, and what its background
    workers still hold for the server is dropped. Undone by :func:`resume_talking_to_server`."""
    global _talking
    try:
        from prefect.events.clients import NullEventsClient
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker
    except ImportError as exc:
        raise _missing("EventsWorker / NullEventsClient / APILogWorker", exc) from exc
    services = [EventsWorker, APILogWorker]
    if not all(hasattr(c, "_instances") and hasattr(c, "_stop") for c in services):
        raise _missing("the _instances and _stop of Prefect's queue services")
    if _talking is None:
        settings = _settings_in_use()
        _talking = {
            "settings": [(s, s.client.max_retries, s.logging.to_api.enabled) for s in settings],
            "override": getattr(EventsWorker, "_client_override", None),
        }
        for s in settings:
            s.client.max_retries = 0
            s.logging.to_api.enabled = False
        EventsWorker.set_client_override(NullEventsClient)
    for cls in services:
        with cls._instance_lock:
            instances = list(cls._instances.values())
        for service in instances:
            if not isinstance(service, EventsWorker) or service.client_type is not NullEventsClient:
                with contextlib.suppress(Exception):
                    _abandon(service)


def resume_talking_to_server() -> None:
    """Undo :func:`stop_talking_to_server` (for the next run in this process)."""
    global _talking
    if _talking is None:
        return
    from prefect.events.worker import EventsWorker

    for settings, retries, to_api in _talking["settings"]:
        settings.client.max_retries = retries
        settings.logging.to_api.enabled = to_api
    override = _talking["override"]
    if override is None:
        EventsWorker.set_client_override(None)
    else:
        EventsWorker.set_client_override(override[0], **dict(override[1]))
    _talking = None


# -- 10. a finished thread-runner future's in-memory result ------------------------------
def finished_result(future: Any) -> Any:
    """The result of a finished ``PrefectConcurrentFuture`` (``raise_on_failure=False``),
    read from memory when its state holds it; any other future or state goes through
    ``future.result``."""
    from prefect.client.schemas.objects import State
    from prefect.results import ResultRecord

    wrapped = getattr(future, "wrapped_future", None)
    if wrapped is not None and wrapped.done() and wrapped.exception() is None:
        state = wrapped.result()
        if isinstance(state, State) and state.is_completed():
            future.wait(0)  # sets the future's final state (no API call, it is done)
            if isinstance(state.data, ResultRecord):
                return state.data.result
    return future.result(raise_on_failure=False)
