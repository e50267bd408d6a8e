"""Test session set-up.

Prefect reads its settings at import time, so PREFECT_HOME and friends are pointed at a
temporary folder before anything imports prefect. The Prefect test harness (a server
subprocess on a temporary SQLite database) starts at most once per session, and only
when a test asks for the ``prefect_harness`` fixture.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="agentrt-tests-"))
os.environ["PREFECT_HOME"] = str(_SESSION_HOME / "prefect")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ["AGENTRT_HOME"] = str(_SESSION_HOME / "agentrt")
os.environ.pop("PREFECT_API_URL", None)
# Runs use Prefect's ephemeral server (or the harness): no managed local server outlives a
# test; tests/server starts its own, in homes of its own, and stops them.
os.environ["AGENTRT_SERVER"] = "ephemeral"
os.environ.pop("AGENTRT_AGENT_PATH", None)
os.environ.pop("AGENTRT_MODEL", None)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the session's home (Prefect databases, reports, stores) after the last test."""
    if not os.environ.get("AGENTRT_KEEP_TEST_HOME"):
        shutil.rmtree(_SESSION_HOME, ignore_errors=True)


@pytest.fixture(autouse=True)
def _prefect_console_logging() -> Iterator[None]:
    """``agentrt run`` sends Prefect's console logging to a file for the rest of its process
    (flows/settings.py route_prefect_logs); after a test that ran it in-process (CliRunner),
    the next test gets Prefect's console logging back."""
    yield
    if "agentrt.flows.settings" in sys.modules:
        from agentrt.flows.settings import unroute_prefect_logs

        unroute_prefect_logs()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect API server (temporary SQLite) for the whole test session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's sibling ``../shared`` data folder (real transcripts).

    A fresh clone has none: the tests that need it skip, saying so. CI sets
    ``AGENTRT_REQUIRE_SHARED=1`` (``.ci/run``), which turns that skip into a failure.
    """
    if not SHARED.is_dir():
        message = f"needs the shared data folder ../shared (not found at {SHARED})"
        if os.environ.get("AGENTRT_REQUIRE_SHARED", "") not in ("", "0"):
            pytest.fail(f"{message}; AGENTRT_REQUIRE_SHARED is set")
        pytest.skip(message)
    return SHARED
