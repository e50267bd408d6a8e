"""Notice when the Prefect server stops answering during a run, so the run ends plainly.

Agents already running keep running when the server goes (their results go to local result
storage, their states to Prefect's event queue), but every new task run needs the server,
and Prefect's client and background workers retry a dead server for minutes. So while a
run's agents run, :class:`ServerWatch` asks the server's ``/health`` every second, and the
driver asks it again at once when a step fails with an error of the server's (a refused
connection, a 5xx, Prefect's ``ConcurrencySlotAcquisitionError``). Once the server is gone:

* no new agent starts; the running ones finish and their results are kept;
* Prefect stops talking to the server (``prefect_compat.stop_talking_to_server``): no retries
  of its client calls, no more events or logs queued for it, the backlog dropped;
* the run ends failed, with one :class:`ServerLoss` saying where, when and what was kept.

A refused connection counts at once; a server that accepts connections but does not answer
(timeouts, 5xx) counts after :data:`UNANSWERED_SECONDS` of silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentrt.errors import AgentrtError

__all__ = [
    "PROBE_EVERY",
    "UNANSWERED_SECONDS",
    "PrefectServerUnavailable",
    "ServerLoss",
    "ServerWatch",
    "describe",
]

#: Seconds between health checks while agents run (``AGENTRT_SERVER_CHECK_EVERY``; 0: no
#: periodic checks, only when a step fails with an error of the server's).
PROBE_EVERY = 1.0
#: How long one health check waits for an answer.
PROBE_TIMEOUT = 2.0
#: A server that takes connections but answers nothing (or 5xx) for this long is gone.
UNANSWERED_SECONDS = 15.0


class PrefectServerUnavailable(AgentrtError, ConnectionError):
    """The Prefect server (``PREFECT_API_URL``) does not answer when a run starts."""

    retryable = False
    hint = "start the Prefect server, or unset PREFECT_API_URL to run without one"


@dataclass
class ServerLoss:
    """The Prefect server stopped answering during a run."""

    #: The API address that stopped answering.
    address: str
    #: What noticed: ``step <id>`` (a step failed on it) or ``a health check``.
    found_by: str
    #: The error that showed it, ``Type: message``.
    error: str
    #: The steps that were running when it was noticed.
    running: list[str] = field(default_factory=list)
    #: When it was noticed (``time.monotonic()``).
    at: float = field(default_factory=time.monotonic)

    @property
    def step(self) -> str | None:
        """The step that found the server gone (None: a health check did)."""
        return self.found_by.removeprefix("step ") if self.found_by.startswith("step ") else None

    def where(self) -> str:
        """``found by step s3: ConnectError: …`` or ``found by a health check while step s2
        was running: …``."""
        text = f"found by {self.found_by}"
        if self.step is None and self.running:
            steps = ", ".join(self.running)
            text += f" while step{'s' if len(self.running) > 1 else ''} {steps} "
            text += "were running" if len(self.running) > 1 else "was running"
        return f"{text}: {self.error}"

    def line(self, completed: int, total: int) -> str:
        """The one line ``agentrt run`` ends a run with."""
        kept = "was" if completed == 1 else "were"
        return (
            f"the Prefect server at {self.address} stopped answering ({self.where()}); "
            f"{completed} of {total} steps completed and {kept} kept (result storage and the "
            "local run record); start the server and re-run the same command to resume: "
            "completed steps are reused"
        )


def describe(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters of it)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


class ServerWatch:
    """Health checks of one run's Prefect server (see the module's docstring)."""

    def __init__(
        self,
        api_url: str,
        *,
        on_lost: Callable[[ServerLoss], Any] | None = None,
        every: float = PROBE_EVERY,
        timeout: float = PROBE_TIMEOUT,
        unanswered: float = UNANSWERED_SECONDS,
    ) -> None:
        self.address = api_url.rstrip("/")
        self.on_lost = on_lost
        self.every, self.timeout, self.unanswered = every, timeout, unanswered
        self.lost: ServerLoss | None = None
        #: The steps running now (set by the driver), named in the loss.
        self.running: Callable[[], list[str]] = list
        self._silent_since: float | None = None
        self._client: Any = None

    @classmethod
    def for_flow_run(cls, **kwargs: Any) -> ServerWatch | None:
        """A watch of the running flow run's server (None outside a flow run, or when the
        client does not talk HTTP to a server)."""
        from prefect.context import FlowRunContext

        ctx = FlowRunContext.get()
        client = getattr(ctx, "client", None)
        url = str(getattr(client, "api_url", "") or "")
        if not url.startswith(("http://", "https://")):
            return None
        every = os.environ.get("AGENTRT_SERVER_CHECK_EVERY", "").strip()
        if every:
            try:
                kwargs.setdefault("every", max(float(every), 0.0))
            except ValueError:
                raise ValueError(
                    f"AGENTRT_SERVER_CHECK_EVERY={every!r} is not a number of seconds"
                ) from None
        return cls(url, **kwargs)

    async def _get(self) -> Any:
        import httpx

        if self._client is None:
            # No TLS to set up for a plain-HTTP server (a local one): that costs ~10 ms.
            verify = self.address.startswith("https://")
            self._client = httpx.AsyncClient(timeout=self.timeout, verify=verify)
        return await self._client.get(f"{self.address}/health")

    async def probe(self) -> str | None:
        """Ask the server once; None if it answers, else why it counts as gone (it may not
        count yet: a server that is only slow gets :attr:`unanswered` seconds)."""
        import httpx

        now = time.monotonic()
        try:
            response = await self._get()
        except httpx.ConnectError as exc:  # refused, unreachable: nobody is there
            return describe(exc)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            problem = describe(exc)
        else:
            if response.status_code < 500:
                self._silent_since = None
                return None
            problem = f"HTTP {response.status_code} from {self.address}/health"
        self._silent_since = self._silent_since or now
        if now - self._silent_since >= self.unanswered:
            return f"{problem} (no answer for {now - self._silent_since:.0f} s)"
        return None

    def declare_lost(self, found_by: str, error: str) -> ServerLoss:
        """Record the loss (once) and stop Prefect talking to the server."""
        if self.lost is None:
            self.lost = ServerLoss(self.address, found_by, error, sorted(self.running()))
            from agentrt.flows.prefect_compat import stop_talking_to_server

            stop_talking_to_server()
            if self.on_lost is not None:
                self.on_lost(self.lost)
        return self.lost

    async def confirm(self, step: str, exc: BaseException) -> bool:
        """A step failed with an error of the server's: is the server gone? (Asked now.)"""
        if self.lost is not None:
            return True
        problem = await self.probe()
        if problem is None:
            return False
        self.declare_lost(f"step {step}", describe(exc))
        return True

    async def run(self) -> None:
        """Check every :attr:`every` seconds until cancelled or the server is gone."""
        try:
            while self.lost is None and self.every > 0:
                await asyncio.sleep(self.every)
                problem = await self.probe()
                if problem is not None and self.lost is None:
                    self.declare_lost("a health check", problem)
        finally:
            await self.close()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()
