"""The run's watch on its Prefect server (flows/server_watch.py), against real sockets: a port
nobody listens on, and a small HTTP server that answers its health checks (or fails them)."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator

import pytest

from agentrt.flows import prefect_compat
from agentrt.flows.server_watch import ServerWatch
from tests.deploy.servers import free_port


@pytest.fixture
def resume() -> Iterator[None]:
    """Undo stop_talking_to_server for the rest of the session (it changes the process)."""
    yield
    prefect_compat.resume_talking_to_server()


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"true")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[str, type[_Health]]]:
    handler = type("Health", (_Health,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api", handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_answers_is_not_lost_one_that_5xxs_only_after_a_while(
    health_server: tuple[str, type[_Health]],
) -> None:
    url, handler = health_server

    async def probes() -> list[str | None]:
        patient = ServerWatch(url, unanswered=3600)
        impatient = ServerWatch(url, unanswered=0)
        try:
            found = [await patient.probe()]
            handler.status = 503
            found += [await patient.probe(), await impatient.probe()]
            return found
        finally:
            await patient.close()
            await impatient.close()

    healthy, slow, gone = asyncio.run(probes())
    assert healthy is None and slow is None
    assert gone is not None and "HTTP 503" in gone


def test_a_refused_connection_is_a_lost_server_found_by_the_step(resume: None) -> None:
    from prefect.events.clients import NullEventsClient
    from prefect.events.worker import EventsWorker
    from prefect.settings import get_current_settings

    url = f"http://127.0.0.1:{free_port()}/api"
    found: list[object] = []
    watch = ServerWatch(url, on_lost=found.append)
    watch.running = lambda: ["s2", "s3"]

    async def confirm() -> bool:
        try:
            return await watch.confirm("s3", ConnectionRefusedError("slot request failed"))
        finally:
            await watch.close()

    assert asyncio.run(confirm()) is True
    loss = watch.lost
    assert loss is not None and found == [loss]
    assert loss.step == "s3" and loss.running == ["s2", "s3"]
    line = loss.line(2, 4)
    assert line.startswith(f"the Prefect server at {url} stopped answering (found by step s3: ")
    assert "2 of 4 steps completed and were kept" in line
    assert "re-run the same command to resume" in line
    # Prefect gives up on the server at once, for this process, until resumed.
    settings = get_current_settings()
    assert settings.client.max_retries == 0 and not settings.logging.to_api.enabled
    assert EventsWorker._client_override[0] is NullEventsClient
    prefect_compat.resume_talking_to_server()
    assert settings.client.max_retries > 0 and settings.logging.to_api.enabled
    assert EventsWorker._client_override is None


def test_a_health_check_names_the_steps_that_were_running(resume: None) -> None:
    watch = ServerWatch(f"http://127.0.0.1:{free_port()}/api", every=0.01)
    watch.running = lambda: ["s2"]
    asyncio.run(asyncio.wait_for(watch.run(), 30))
    assert watch.lost is not None and watch.lost.step is None
    assert watch.lost.where().startswith("found by a health check while step s2 was running: ")
