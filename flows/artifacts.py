"""A run's Prefect artifacts (progress, report, agents table, metrics table), published off
the run's critical path.

Each artifact is an API call that waits on the server, and during and after a run Prefect's
embedded (SQLite) server is busy ingesting the agents' task-run events: the calls queue
behind that backlog (see docs/runtime.md). So every artifact call of a run is made by one
background thread (its own event loop and API client, calls of a run in order), never by the
flow. ``AGENTRT_ARTIFACTS`` chooses when the run's end waits for them:

* ``background`` (default for ``agentrt run`` and :func:`flows.run_workflow`): not at all;
  the report and tables are sent once the flow run's end is recorded and land a moment
  after it is Completed, as Prefect's own task-run states and logs do. The thread is
  drained before the process exits, and ``agentrt run`` drains it while it waits for the
  run's history; call :func:`drain_artifacts` to wait for them yourself.
* ``inline`` (default for deployments): the flow run ends once they are published, so
  automations that read a run's artifacts when it completes find them.
* ``off``: no artifacts (report files and metrics are written as always).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from agentrt.flows.prefect_compat import call_sync

if TYPE_CHECKING:
    from prefect.artifacts import Artifact
    from prefect.client.orchestration import PrefectClient
    from prefect.context import SettingsContext
    from prefect.settings import Settings

__all__ = [
    "ArtifactMaker",
    "ArtifactsMode",
    "RunArtifacts",
    "abandon_artifacts",
    "artifacts_mode",
    "drain_artifacts",
]

ArtifactsMode = Literal["background", "inline", "off"]

#: Makes some of a run's artifacts; called in the publishing thread, so that building them
#: (JSON of a few hundred table rows, pandas) costs the run nothing.
ArtifactMaker = Callable[[], "Sequence[Artifact]"]

#: How long the interpreter waits at exit for artifacts still being published.
EXIT_TIMEOUT = 30.0
#: The progress artifact is updated at most this often while agents finish.
PROGRESS_EVERY = 2.0

log = logging.getLogger("agentrt.artifacts")


def artifacts_mode(default: ArtifactsMode = "background") -> ArtifactsMode:
    """The mode set by ``AGENTRT_ARTIFACTS`` (background, inline or off), else ``default``."""
    value = os.environ.get("AGENTRT_ARTIFACTS", "").strip().lower() or default
    if value not in get_args(ArtifactsMode):
        raise ValueError(
            f"AGENTRT_ARTIFACTS={value!r} is not a mode: use background (publish after the "
            "run returns), inline (before the flow run ends) or off"
        )
    return cast(ArtifactsMode, value)


def _problem(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class _Publisher:
    """A daemon thread running an event loop for artifact calls; drained at interpreter exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[concurrent.futures.Future[list[str]]] = set()
        self._problems: list[str] = []
        self._exit_hook = False
        #: One API client per server, kept for the thread's life (each costs an SSL context),
        #: with the settings to call it under.
        self._clients: dict[str, tuple[PrefectClient, Settings]] = {}
        self._client_lock: asyncio.Lock | None = None
        #: Jobs whose problems are left for drain: runs published in the background (tests).
        self.submitted = 0

    def submit(
        self, job: Awaitable[list[str]], *, collect: bool = True
    ) -> concurrent.futures.Future[list[str]]:
        """Run ``job`` on the thread; with ``collect`` its problems are reported by the next
        :meth:`drain` (or logged at exit), else only through the returned future."""
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(
                    target=self._loop.run_forever, name="agentrt-artifacts", daemon=True
                ).start()
            if not self._exit_hook:
                # Registered after Prefect's embedded server registered its own stop (the
                # server is up before a run makes artifacts), so at exit this drain runs first.
                atexit.register(self._drain_at_exit)
                self._exit_hook = True
            future = asyncio.run_coroutine_threadsafe(job, self._loop)  # type: ignore[arg-type]
            self._pending.add(future)
            self.submitted += 1 if collect else 0
        future.add_done_callback(lambda done: self._finished(done, collect))
        return future

    def _finished(self, future: concurrent.futures.Future[list[str]], collect: bool) -> None:
        try:
            problems = future.result()
        except BaseException as exc:  # a job never raises; a cancelled one does
            problems = [_problem(exc)]
        with self._lock:
            if collect:
                self._problems.extend(problems)
            self._pending.discard(future)
            self._idle.notify_all()

    async def client(
        self, api_url: str | None, settings: SettingsContext
    ) -> tuple[PrefectClient, Settings]:
        """The thread's client for the run's server, and the settings to call it under."""
        from prefect.client.orchestration import get_client
        from prefect.context import SettingsContext
        from prefect.settings import PREFECT_API_URL

        key = api_url or ""
        self._client_lock = self._client_lock or asyncio.Lock()
        async with self._client_lock:
            if key not in self._clients:
                values = settings.settings
                if api_url:
                    # The run's server, also when it is the embedded one (no URL set): a
                    # thread with no URL would start an embedded server of its own.
                    values = values.copy_with_update(updates={PREFECT_API_URL: api_url})
                with SettingsContext(profile=settings.profile, settings=values):
                    client = await get_client().__aenter__()
                self._clients[key] = (client, values)
        return self._clients[key]

    def drain(self, timeout: float) -> list[str]:
        """Wait for every call (at most ``timeout`` s); the problems not reported before."""
        with self._lock:
            done = self._idle.wait_for(lambda: not self._pending, timeout)
            problems, self._problems = self._problems, []
            if not done:
                problems.append(
                    f"{len(self._pending)} artifact call(s) still pending after {timeout:g} s"
                )
        return problems

    def abandon(self) -> None:
        """Cancel every call not done yet and forget their problems (their server is gone)."""
        with self._lock:
            pending = list(self._pending)
            self._problems = []
            self.submitted = 0
        for future in pending:
            future.cancel()
        with self._lock:
            self._problems = []

    def _drain_at_exit(self) -> None:
        # Each problem is reported once: to whoever drained before, else here.
        for problem in self.drain(EXIT_TIMEOUT):
            log.warning("artifacts not published: %s", problem)


_publisher = _Publisher()


class RunArtifacts:
    """The artifacts of one flow run: a progress artifact (agents finished / total) updated
    as the run goes, then the report and metrics artifacts. Create it inside the flow run;
    its calls run on the publishing thread, in the order they were made."""

    def __init__(self, workflow: str, total: int) -> None:
        from prefect.context import FlowRunContext, get_settings_context

        run = FlowRunContext.get()
        self.flow_run_id = run.flow_run.id if run is not None and run.flow_run else None
        self._api_url = str(run.client.api_url).rstrip("/") if run is not None else None
        self._settings = get_settings_context()
        self.workflow, self.total = workflow, max(total, 1)
        self.progress_id: Any = None
        self.problems: list[str] = []
        self._last = 0.0
        self._chain: asyncio.Future[Any] | None = None  # the run's last call (thread's loop)

    def _submit(
        self,
        work: Callable[[PrefectClient], Awaitable[None]],
        *,
        final: bool = False,
        collect: bool = False,
    ) -> concurrent.futures.Future[list[str]]:
        """Queue ``work`` after the run's earlier calls; its failure joins ``problems``, which
        the run's ``final`` call returns."""
        from prefect.context import SettingsContext

        async def job() -> list[str]:
            previous, self._chain = self._chain, asyncio.current_task()
            if previous is not None:
                await asyncio.wait([previous])
            try:
                client, values = await _publisher.client(self._api_url, self._settings)
                # Prefect reads some settings when called (e.g. where update_artifact's
                # event goes); a context of the job's own (contexts are not reentrant).
                with SettingsContext(profile=self._settings.profile, settings=values):
                    await work(client)
            except Exception as exc:
                self.problems.append(_problem(exc))
            return self.problems if final else []

        return _publisher.submit(job(), collect=collect)

    def start(self) -> None:
        """Create the progress artifact at 0 %."""
        from prefect.client.schemas.actions import ArtifactCreate

        async def create(client: PrefectClient) -> None:
            created = await client.create_artifact(
                ArtifactCreate(
                    type="progress",
                    data=0.0,
                    description=f"{self.workflow}: agents finished",
                    flow_run_id=self.flow_run_id,
                )
            )
            self.progress_id = created.id

        self._last = time.monotonic()
        self._submit(create)

    def progress(self, finished: int) -> None:
        """Update the progress artifact, at most every PROGRESS_EVERY seconds."""
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY:
            self._last = now
            self._submit(self._update(100.0 * finished / self.total))

    def _update(self, percent: float) -> Callable[[PrefectClient], Awaitable[None]]:
        from prefect.client.schemas.actions import ArtifactUpdate

        async def update(client: PrefectClient) -> None:
            if self.progress_id is not None:
                await client.update_artifact(self.progress_id, ArtifactUpdate(data=percent))

        return update

    def finish(
        self, makers: Sequence[ArtifactMaker], *, collect: bool = True
    ) -> concurrent.futures.Future[list[str]]:
        """Publish what ``makers`` make and the progress at 100 %; the future's result is
        what failed in this run's artifact calls (with ``collect``, :func:`drain_artifacts`
        reports it too)."""
        from prefect.client.schemas.actions import ArtifactCreate

        final = self._update(100.0)

        async def publish(client: PrefectClient) -> None:
            requests = []
            for make in makers:
                try:
                    requests.extend(
                        ArtifactCreate(
                            type=a.type,
                            key=a.key,
                            description=a.description,
                            flow_run_id=self.flow_run_id,
                            data=call_sync(a.format),
                        )
                        for a in make()
                    )
                except Exception as exc:
                    self.problems.append(_problem(exc))
            calls = [client.create_artifact(r) for r in requests]
            outcomes = await asyncio.gather(final(client), *calls, return_exceptions=True)
            self.problems.extend(_problem(o) for o in outcomes if isinstance(o, BaseException))

        return self._submit(publish, final=True, collect=collect)


def abandon_artifacts() -> None:
    """Give up the artifact calls still pending (the Prefect server stopped answering)."""
    _publisher.abandon()


def drain_artifacts(timeout: float = EXIT_TIMEOUT) -> list[str]:
    """Wait until every run's background artifacts are published (at most ``timeout``
    seconds); return what could not be published since the last drain (empty: all done)."""
    return _publisher.drain(timeout)
