"""Test session set-up.

Prefect reads its settings at import time, so PREFECT_HOME and friends are pointed at a
temporary folder before anything imports prefect. The Prefect test harness (a server
subprocess on a temporary SQLite database) starts at most once per session, and only
when a test asks for the ``prefect_harness`` fixture.
"""

from __future__ import annotations

import os
import shutil
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


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect API server (temporary SQLite) for the whole test session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"../shared not found at {SHARED}; tests need the shared data folder")
    return SHARED
