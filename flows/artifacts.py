"""A run's Prefect artifacts (report, agents table, metrics table, progress), published off
the run's critical path.

Each artifact is an API call that waits on the server, and at the end of a run Prefect's
embedded (SQLite) server is still ingesting the agents' task-run events: the calls queue
behind that backlog (see docs/runtime.md). ``AGENTRT_ARTIFACTS`` chooses:

* ``background`` (default for ``agentrt run`` and :func:`flows.run_workflow`): the run hands
  its artifacts to a background thread and returns; they land a moment after the flow run
  is Completed, as Prefect's own task-run states and logs do. The thread is drained before
  the process exits, and ``agentrt run`` drains it while it waits for the run's history;
  call :func:`drain_artifacts` to wait for them yourself.
* ``inline`` (default for deployments): published before the flow run ends, so automations
  that read a run's artifacts when it completes find them.
* ``off``: no artifacts (report files and metrics are written as always).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast, get_args
from uuid import UUID

if TYPE_CHECKING:
    from prefect.artifacts import Artifact
    from prefect.client.schemas.actions import ArtifactCreate
    from prefect.context import SettingsContext

__all__ = [
    "ArtifactBatch",
    "ArtifactMaker",
    "ArtifactsMode",
    "artifacts_mode",
    "drain_artifacts",
]

ArtifactsMode = Literal["background", "inline", "off"]

#: How long the interpreter waits at exit for artifacts still being published.
EXIT_TIMEOUT = 30.0

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


#: Makes a run's artifacts; called where the batch is published, so that building them
#: (JSON of a few hundred table rows, pandas) costs the run nothing in background mode.
ArtifactMaker = Callable[[], "Sequence[Artifact]"]


@dataclass(slots=True)
class ArtifactBatch:
    """The artifacts of one flow run, with the Prefect settings and API URL of the run that
    made them, so another thread can publish them after the run's context is gone."""

    makers: list[ArtifactMaker]
    flow_run_id: UUID | None
    #: The progress artifact's final value: (artifact id, percent).
    progress: tuple[UUID, float] | None
    settings: SettingsContext
    api_url: str | None

    @classmethod
    def of_current_run(
        cls, makers: Sequence[ArtifactMaker], progress: tuple[UUID, float] | None = None
    ) -> ArtifactBatch:
        """Call inside the flow run the artifacts belong to (cheap: nothing is built yet)."""
        from prefect.context import FlowRunContext, get_settings_context

        run = FlowRunContext.get()
        flow_run = run.flow_run if run is not None else None
        # The server this run talks to, also when it is the embedded one (no URL set): a
        # thread with no URL would start an embedded server of its own.
        url = str(run.client.api_url).rstrip("/") if run is not None else None
        return cls(
            list(makers), flow_run.id if flow_run else None, progress, get_settings_context(), url
        )

    def build(self) -> tuple[list[ArtifactCreate], list[str]]:
        """The API requests, and what could not be built."""
        from prefect.client.schemas.actions import ArtifactCreate

        requests, problems = [], []
        for make in self.makers:
            try:
                requests.extend(
                    ArtifactCreate(
                        type=a.type,
                        key=a.key,
                        description=a.description,
                        flow_run_id=self.flow_run_id,
                        data=a.format(_sync=True),  # type: ignore[call-arg]
                    )
                    for a in make()
                )
            except Exception as exc:
                problems.append(f"{type(exc).__name__}: {exc}")
        return requests, problems

    async def apublish(self, requests: Sequence[ArtifactCreate]) -> list[str]:
        """Send the requests and the progress update concurrently; return what failed."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import ArtifactUpdate

        problems: list[str] = []
        try:
            async with get_client() as client:
                calls: list[Any] = [client.create_artifact(r) for r in requests]
                if self.progress is not None:
                    artifact_id, percent = self.progress
                    calls.append(client.update_artifact(artifact_id, ArtifactUpdate(data=percent)))
                for outcome in await asyncio.gather(*calls, return_exceptions=True):
                    if isinstance(outcome, BaseException):
                        problems.append(f"{type(outcome).__name__}: {outcome}")
        except Exception as exc:
            problems.append(f"{type(exc).__name__}: {exc}")
        return problems

    async def apublish_inline(self) -> list[str]:
        """Build (in a worker thread) and publish from the flow run itself."""
        requests, problems = await asyncio.to_thread(self.build)
        return problems + await self.apublish(requests)

    def publish(self) -> list[str]:
        """Build and publish from a thread with no event loop, under the run's settings."""
        from prefect.context import SettingsContext
        from prefect.settings import PREFECT_API_URL

        requests, problems = self.build()
        settings = self.settings.settings
        if self.api_url:
            settings = settings.copy_with_update(updates={PREFECT_API_URL: self.api_url})
        with SettingsContext(profile=self.settings.profile, settings=settings):
            return problems + asyncio.run(self.apublish(requests))


class _Publisher:
    """One daemon thread publishing batches in order; drained at interpreter exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: list[ArtifactBatch] = []
        self._unfinished = 0
        self._problems: list[str] = []
        self._thread: threading.Thread | None = None
        self._exit_hook = False
        #: Batches handed over so far (for tests and diagnostics).
        self.submitted = 0

    def submit(self, batch: ArtifactBatch) -> None:
        with self._lock:
            self._queue.append(batch)
            self._unfinished += 1
            self.submitted += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._work, name="agentrt-artifacts", daemon=True
                )
                self._thread.start()
            if not self._exit_hook:
                # Registered after Prefect's embedded server registered its own stop (the
                # server is up before any run ends), so at exit this drain runs first.
                atexit.register(self._drain_at_exit)
                self._exit_hook = True
            self._idle.notify_all()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle.wait_for(lambda: bool(self._queue))
                batch = self._queue.pop(0)
            try:
                problems = batch.publish()
            except BaseException as exc:  # the thread must outlive any one batch
                problems = [f"{type(exc).__name__}: {exc}"]
            for problem in problems:
                log.warning("artifacts not published: %s", problem)
            with self._lock:
                self._problems.extend(problems)
                self._unfinished -= 1
                self._idle.notify_all()

    def drain(self, timeout: float) -> list[str]:
        with self._lock:
            done = self._idle.wait_for(lambda: self._unfinished == 0, timeout)
            problems, self._problems = self._problems, []
            if not done:
                problems.append(
                    f"{self._unfinished} run(s) still publishing artifacts after {timeout:g} s"
                )
        return problems

    def _drain_at_exit(self) -> None:
        for problem in self.drain(EXIT_TIMEOUT):
            log.warning("artifacts not published: %s", problem)


_publisher = _Publisher()


def publish_in_background(batch: ArtifactBatch) -> None:
    """Hand ``batch`` to the background thread (see the module's docstring)."""
    _publisher.submit(batch)


def drain_artifacts(timeout: float = EXIT_TIMEOUT) -> list[str]:
    """Wait until every run's background artifacts are published (at most ``timeout``
    seconds); return what could not be published since the last drain (empty: all done)."""
    return _publisher.drain(timeout)
