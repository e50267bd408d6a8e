"""Each Prefect internal agentrt relies on (agentrt.flows.prefect_compat) is still there and
still behaves as assumed: these fail loudly when an upgrade of Prefect changes one.

No server is started: the checks read Prefect's objects and source, and call the compat
functions with the flow-run context faked where they need one.
"""

from __future__ import annotations

import asyncio
import inspect
import pickle
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from agentrt.flows import prefect_compat
from agentrt.flows.prefect_compat import PrefectCompatError


def _source(module_name: str) -> str:
    """The source file of a Prefect module as shipped (not as agentrt may have patched it)."""
    import importlib

    return inspect.getsource(importlib.import_module(module_name))


def _in_flow_run(monkeypatch: pytest.MonkeyPatch, **fields: Any) -> None:
    from prefect.context import FlowRunContext

    fake = SimpleNamespace(**fields)
    monkeypatch.setattr(FlowRunContext, "get", classmethod(lambda cls: fake))


# -- 1. SyncClientContext ---------------------------------------------------------------
def test_sync_client_context_is_what_the_task_engine_and_get_client_use() -> None:
    from prefect.context import SyncClientContext

    assert callable(SyncClientContext.get_or_create)
    assert "client" in SyncClientContext.model_fields
    # Task runs take their sync client from the context when there is one (3.8, 3.9).
    assert "SyncClientContext.get_or_create()" in _source("prefect.task_engine")
    assert "SyncClientContext.get()" in _source("prefect.client.orchestration")


def test_shared_sync_client_raises_when_the_context_is_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import prefect.context

    monkeypatch.delattr(prefect.context, "SyncClientContext")
    with (
        pytest.raises(PrefectCompatError, match="SyncClientContext"),
        prefect_compat.shared_sync_client(),
    ):
        pass


# -- 2. the "no tag concurrency limits" cache ------------------------------------------
def test_the_tag_limit_cache_is_keyed_and_read_as_assumed() -> None:
    from prefect.concurrency import services

    cache, lock = prefect_compat.tag_limit_cache()
    assert cache is services._no_limits_cache and lock is services._cache_lock
    assert hasattr(lock, "acquire") and hasattr(cache, "clear")
    # Entries expire after a TTL that keep_tag_limit_cache (every 4 s) re-primes within.
    assert 4.0 < cache.ttl <= 10.0
    source = _source("prefect.concurrency.services")
    assert "cache_key = frozenset(self.concurrency_limit_names)" in source
    assert "_no_limits_cache.get(cache_key, False)" in source
    assert 'names=[f"tag:{tag}" for tag in self.task_run.tags]' in _source("prefect.task_engine")
    assert prefect_compat.tag_limit_key(frozenset({"a", "b"})) == {"tag:a", "tag:b"}


def test_priming_fills_prefect_cache_for_tags_without_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import prefect.client.orchestration

    class Client:
        async def __aenter__(self) -> Client:
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

        async def read_global_concurrency_limits(self, limit: int, offset: int) -> list[Any]:
            return [SimpleNamespace(name="tag:limited")]

    monkeypatch.setattr(prefect.client.orchestration, "get_client", Client)
    cache, lock = prefect_compat.tag_limit_cache()
    free, limited = frozenset({"agent:x", "fs"}), frozenset({"agent:y", "limited"})
    with lock:
        for tags in (free, limited):
            cache.pop(prefect_compat.tag_limit_key(tags), None)
    asyncio.run(prefect_compat.prime_tag_limit_cache([free, limited]))
    assert cache.get(prefect_compat.tag_limit_key(free)) is True
    assert prefect_compat.tag_limit_key(limited) not in cache


def test_tag_limit_cache_raises_when_prefect_renames_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.concurrency import services

    monkeypatch.delattr(services, "_no_limits_cache")
    with pytest.raises(PrefectCompatError, match="_no_limits_cache"):
        prefect_compat.tag_limit_cache()
    with pytest.raises(PrefectCompatError):
        asyncio.run(prefect_compat.prime_tag_limit_cache([frozenset({"t"})]))


# -- 3. the process runner's message queue ---------------------------------------------
def test_the_process_runner_keeps_a_multiprocessing_queue() -> None:
    from prefect.task_runners import ProcessPoolTaskRunner

    runner = ProcessPoolTaskRunner(max_workers=1)
    assert hasattr(runner, "_subprocess_message_queue")
    source = inspect.getsource(ProcessPoolTaskRunner)
    assert "self._subprocess_message_queue = mp_context.Queue()" in source


def test_dont_wait_for_dead_workers_cancels_the_queue_join(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.task_runners import ProcessPoolTaskRunner

    runner = ProcessPoolTaskRunner(max_workers=1)
    cancelled = threading.Event()
    runner._subprocess_message_queue = SimpleNamespace(cancel_join_thread=cancelled.set)
    _in_flow_run(monkeypatch, task_runner=runner)
    prefect_compat.dont_wait_for_dead_workers()
    assert cancelled.is_set()

    del runner._subprocess_message_queue
    with pytest.raises(PrefectCompatError, match="_subprocess_message_queue"):
        prefect_compat.dont_wait_for_dead_workers()


def test_dont_wait_for_dead_workers_leaves_other_runners_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.task_runners import ThreadPoolTaskRunner

    _in_flow_run(monkeypatch, task_runner=ThreadPoolTaskRunner(max_workers=1))
    prefect_compat.dont_wait_for_dead_workers()  # no queue, nothing to do


# -- 4. opaque parameters on the thread runner -----------------------------------------
def test_the_task_engine_unwraps_opaque_without_walking_the_value() -> None:
    from prefect.utilities.annotations import opaque
    from prefect.utilities.collections import visit_collection

    value = {"items": [1, 2, 3]}
    seen: list[Any] = []

    def visit(expr: Any) -> Any:
        seen.append(expr)
        return expr

    out = visit_collection(
        opaque(value), visit_fn=visit, return_data=True, max_depth=-1, remove_annotations=True
    )
    assert out is value
    assert 1 not in seen and [1, 2, 3] not in seen
    # The task engine resolves parameters that way (3.8, 3.9).
    resolve = inspect.getsource(
        __import__("prefect.task_engine", fromlist=["x"]).BaseTaskRunEngine._resolve_parameters
    )
    assert "remove_annotations=True" in resolve


def test_parameter_wrapper_is_opaque_only_on_the_thread_runner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner
    from prefect.utilities.annotations import opaque

    _in_flow_run(monkeypatch, task_runner=ThreadPoolTaskRunner(max_workers=1))
    wrap = prefect_compat.parameter_wrapper()
    assert wrap is opaque and prefect_compat.passes_opaque(wrap)
    _in_flow_run(monkeypatch, task_runner=ProcessPoolTaskRunner(max_workers=1))
    wrap = prefect_compat.parameter_wrapper()
    value = {"a": 1}
    assert wrap(value) is value and not prefect_compat.passes_opaque(wrap)


# -- 5. worker processes use the embedded server's URL ---------------------------------
def test_flow_run_context_and_runners_offer_what_workers_share_server_uses() -> None:
    from prefect.client.orchestration import PrefectClient
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.task_runners import ProcessPoolTaskRunner

    assert {"task_runner", "client"} <= set(FlowRunContext.model_fields)
    assert isinstance(inspect.getattr_static(PrefectClient, "api_url"), property)
    assert callable(temporary_settings) and PREFECT_API_URL is not None
    # The process runner hands its workers the settings in effect when it submits.
    assert "to_environment_variables" in inspect.getsource(ProcessPoolTaskRunner)


def test_workers_share_embedded_server_sets_the_url_for_non_thread_runners(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings
    from prefect.task_runners import ProcessPoolTaskRunner

    client = SimpleNamespace(api_url="http://127.0.0.1:4321/api/")
    _in_flow_run(monkeypatch, task_runner=ProcessPoolTaskRunner(max_workers=1), client=client)
    # Embedded mode (no URL), also when the session's test harness server is up.
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        with prefect_compat.workers_share_embedded_server():
            assert get_current_settings().api.url == "http://127.0.0.1:4321/api"
        assert not get_current_settings().api.url


# -- 6. the embedded server's command ---------------------------------------------------
def test_prefect_starts_its_embedded_server_with_the_command_agentrt_copies() -> None:
    import prefect
    from prefect.server.api.server import SubprocessASGIServer

    assert callable(getattr(SubprocessASGIServer, "_run_uvicorn_command", None))
    assert prefect.__module_path__.is_dir()
    source = _source("prefect.server.api.server")
    start = source.index("def _run_uvicorn_command(self)")
    shipped = source[start : source.index("\n    def ", start + 1)]
    for arg in prefect_compat.uvicorn_args(4200):
        if arg not in {"4200", str(prefect.__module_path__.parent)}:
            assert f'"{arg}"' in shipped, arg
    assert "str(prefect.__module_path__.parent)" in shipped
    for key, value in prefect_compat.SERVER_ENV.items():
        assert f'"{key}": "{value}"' in shipped, key
    assert "to_environment_variables(exclude_unset=True)" in shipped


def test_guarding_the_server_raises_when_prefect_renames_the_method(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.server.api.server import SubprocessASGIServer

    monkeypatch.delattr(SubprocessASGIServer, "_run_uvicorn_command")
    monkeypatch.setattr(SubprocessASGIServer, "_agentrt_guarded", False, raising=False)
    with pytest.raises(PrefectCompatError, match="_run_uvicorn_command"):
        prefect_compat.guard_embedded_server_command(lambda args: args, {})


# -- 7. async_dispatch's _sync keyword --------------------------------------------------
def test_call_sync_gets_the_sync_implementation_inside_an_event_loop() -> None:
    from prefect.artifacts import TableArtifact, create_table_artifact

    assert hasattr(create_table_artifact, "aio")
    assert "_sync" in _source("prefect._internal.compatibility.async_dispatch")
    artifact = TableArtifact(table=[{"a": 1}])

    async def inside_a_flow() -> Any:
        return prefect_compat.call_sync(artifact.format)

    formatted = asyncio.run(inside_a_flow())
    assert isinstance(formatted, str) and '"a"' in formatted


def test_call_sync_raises_for_a_function_without_async_dispatch() -> None:
    with pytest.raises(PrefectCompatError, match="async_dispatch"):
        prefect_compat.call_sync(len, [])


# -- 8. the task-run log handler's payload ----------------------------------------------
def test_task_run_log_payload_is_what_prefects_handler_makes() -> None:
    import logging
    import uuid
    from datetime import datetime

    from prefect.logging.handlers import APILogHandler

    handler = prefect_compat.task_run_log_handler()
    assert isinstance(handler, APILogHandler)
    record = logging.getLogger("agentrt.task_runs").makeRecord(
        "agentrt.task_runs", logging.INFO, __file__, 1, "start %s", ("a@1.0.0",), None,
        extra={"flow_run_id": str(uuid.uuid4()), "task_run_id": str(uuid.uuid4())},
    )  # fmt: skip
    ours, prefects = handler.prepare(record), APILogHandler().prepare(record)
    assert set(ours) == set(prefects), (ours, prefects)
    stamp = ours.pop("timestamp"), prefects.pop("timestamp")
    assert ours == prefects
    parsed = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in stamp]
    assert parsed[0] == parsed[1]


# -- 9. giving up on a server that is gone ----------------------------------------------
def test_prefects_queue_services_have_what_abandoning_them_uses() -> None:
    from prefect._internal.concurrency.services import QueueService
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for cls in (EventsWorker, APILogWorker):
        assert issubclass(cls, QueueService) and isinstance(cls._instances, dict)
    assert callable(EventsWorker.set_client_override)
    assert "_client_override" in vars(EventsWorker)
    # Prefect's client reads its retries, and its log handler the API switch, when called.
    assert "PREFECT_CLIENT_MAX_RETRIES.value()" in _source("prefect.client.base")
    assert "settings.logging.to_api.enabled" in _source("prefect.logging.handlers")


def test_an_abandoned_service_drops_its_queue_and_stops_at_once() -> None:
    import time

    from prefect._internal.concurrency.services import QueueService

    handled: list[int] = []

    class Stuck(QueueService[int]):
        async def _handle(self, item: int) -> None:  # a call to a server that is gone
            handled.append(item)
            await asyncio.sleep(3600)

    service = Stuck.instance()
    for i in range(3):
        service.send(i)
    deadline = time.monotonic() + 30
    while not handled and time.monotonic() < deadline:
        time.sleep(0.01)
    prefect_compat._abandon(service)
    # Its work cancelled, it stopped: _drain waits for that (True), or finds it already
    # done (False) when the cancelled service ended before this line.
    service._drain().result(timeout=30)
    assert service._done_event is not None and service._done_event.is_set()
    assert handled == [0]  # items 1 and 2 were dropped: only the stop marker may be left
    assert list(service._queue.queue) in ([], [None])


def test_stop_and_resume_talking_to_the_server_restore_prefects_settings() -> None:
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    before = settings.client.max_retries, settings.logging.to_api.enabled
    try:
        prefect_compat.stop_talking_to_server()
        prefect_compat.stop_talking_to_server()  # idempotent
        assert (settings.client.max_retries, settings.logging.to_api.enabled) == (0, False)
    finally:
        prefect_compat.resume_talking_to_server()
    assert (settings.client.max_retries, settings.logging.to_api.enabled) == before


# -- what crosses the task boundary ----------------------------------------------------
def test_run_info_and_a_marked_failure_survive_pickling() -> None:
    from agentrt.flows.attempt import RunInfo, failure_of, mark_failure

    run = RunInfo(workflow="w", step="s", params={"repo": "."}, budget_reason="r")
    assert pickle.loads(pickle.dumps(run)).params == {"repo": "."}
    exc = ConnectionError("down")
    mark_failure(exc, "execute", 2)
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is ConnectionError
    failure = failure_of(back)
    assert failure is not None and (failure.phase, failure.attempt) == ("execute", 2)
    assert failure_of(ValueError("unmarked")) is None and failure_of(None) is None


# -- 10. a finished thread-runner future's in-memory result -----------------------------
def test_a_finished_futures_result_is_read_from_memory_without_a_round_trip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uuid
    from concurrent.futures import Future

    from prefect.client.schemas.objects import State
    from prefect.futures import PrefectConcurrentFuture
    from prefect.results import ResultStore
    from prefect.states import Completed

    # What the thread runner's wrapped future holds once the task run ended: its final state.
    done: Future[Any] = Future()
    done.set_result(Completed(data=ResultStore().create_result_record({"x": 1})))
    future = PrefectConcurrentFuture(uuid.uuid4(), done)

    def round_trip(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("State.result was called (run_coro_as_sync)")

    monkeypatch.setattr(State, "result", round_trip)
    assert prefect_compat.finished_result(future) == {"x": 1}
    assert future.state.is_completed()  # the final state is set: no API call to read it
    # Anything else goes through future.result, which here meets the patched State.result.
    with pytest.raises(AssertionError, match=r"State\.result"):
        done_other: Future[Any] = Future()
        done_other.set_result(Completed(data=None))
        prefect_compat.finished_result(PrefectConcurrentFuture(uuid.uuid4(), done_other))
