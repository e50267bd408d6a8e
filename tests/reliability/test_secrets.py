"""Secrets planted in the environment and thrown in agent errors (plain, chained, retried,
logged) never appear in any output: run results, reports, metrics, Prefect artifacts, the
Prefect server's logs and run states, the console, Prefect's result storage.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentrt.agents.registry import Registry
from agentrt.flows.results import RunResult
from agentrt.flows.settings import agentrt_home
from agentrt.flows.workflow import WorkflowManifest
from tests.reliability.conftest import step

pytestmark = pytest.mark.usefixtures("prefect_harness")

LEAK = ["OPENAI_API_KEY", "AGENTRT_TEST_TOKEN", "GITHUB_TOKEN"]


def _random(n: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


def _plant() -> dict[str, str]:
    """Three secrets: two with well-known shapes, one known only by its variable's name."""
    return {
        "OPENAI_API_KEY": "sk-proj-" + _random(40),
        "AGENTRT_TEST_TOKEN": _random(32),
        "GITHUB_TOKEN": "ghp_" + _random(36),
    }


def _api() -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


def _post(path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(f"{_api()}{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def _server_logs(flow_run_id: str, at_least: int = 1) -> list[dict[str, Any]]:
    """The flow run's logs on the server, once the batched log shipping has caught up."""
    body = {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}
    logs: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        previous, logs = len(logs), _post("/logs/filter", body)
        if len(logs) >= at_least and len(logs) == previous:
            break
        time.sleep(1)
    return logs


def _files(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (p for p in root.rglob("*") if p.is_file())


def _leaky_run(registry: Registry) -> RunResult:
    from agentrt.flows.run import run_workflow

    leak = {"fault": "raise", "leak_env": LEAK}
    steps = [
        step("fault_optional", "plain", **leak),
        step("fault_optional", "chained", chained=True, **leak),
        step("fault_retry", "retried", exception="ConnectionError", fail_times=1, **leak),
        step("fault", "logged", log="calling the provider with", leak_env=LEAK),
        {**step("fault", "fatal", **leak), "after": ["plain", "chained", "retried", "logged"]},
    ]
    workflow = WorkflowManifest.model_validate({"name": "rel-secrets", "steps": steps})
    return run_workflow(workflow, registry=registry)


@pytest.fixture(scope="module")
def leaky_run(
    fault_registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunResult, dict[str, str]]]:
    planted = _plant()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in planted.items():
            patch.setenv(name, value)
        patch.setenv("AGENTRT_FAULT_LOG", str(tmp_path_factory.mktemp("secrets-log")))
        yield _leaky_run(fault_registry), planted


def test_secrets_reach_no_file(leaky_run: tuple[RunResult, dict[str, str]]) -> None:
    result, planted = leaky_run
    assert result.state == "failed" and result.steps["retried"].state == "completed"
    assert "[REDACTED]" in result.steps["plain"].reason
    written = [Path(p) for k, p in result.report_paths.items() if k != "error"]
    assert {"markdown", "json", "metrics", "result"} <= set(result.report_paths)
    home = agentrt_home()
    prefect_home = Path(os.environ["PREFECT_HOME"])
    files = list(_files(*written, home / "reports" / "rel-secrets", home / "metrics", prefect_home))
    assert files
    for path in files:
        data = path.read_bytes()
        for name, value in planted.items():
            assert value.encode() not in data, f"{name} found in {path}"
    assert not any(v in result.model_dump_json() for v in planted.values())


def test_secrets_reach_no_prefect_state_or_artifact(
    leaky_run: tuple[RunResult, dict[str, str]],
) -> None:
    from agentrt.flows import drain_artifacts
    from agentrt.flows.history import wait_until_recorded

    result, planted = leaky_run
    wait_until_recorded(result)  # task runs reach the server as events, after the run
    assert drain_artifacts() == []  # and artifacts from the background, after the run
    flow_run_id = str(result.flow_run_id)
    flow_run = httpx.get(f"{_api()}/flow_runs/{flow_run_id}", timeout=30).json()
    task_runs = _post("/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})
    artifacts = _post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})
    assert len(task_runs) == 5 and artifacts  # a retry is the same task run
    blob = json.dumps([flow_run, task_runs, artifacts])
    assert "[REDACTED]" in blob
    for name, value in planted.items():
        assert value not in blob, f"{name} is in a Prefect run state or artifact"


def _logged(
    registry: Registry, steps: list[dict[str, Any]], capfd: pytest.CaptureFixture[str]
) -> tuple[str, str]:
    """Run ``steps``; return the server's logs of the run and the console output, as text."""
    from agentrt.flows.run import run_workflow

    workflow = WorkflowManifest.model_validate({"name": "rel-secret-logs", "steps": steps})
    result = run_workflow(workflow, registry=registry)
    logs = _server_logs(str(result.flow_run_id))
    assert logs, "no logs reached the server"
    console = capfd.readouterr()
    return json.dumps(logs), console.out + console.err


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = _plant()
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def test_a_failing_agent_leaks_nothing_into_logs(
    capfd: pytest.CaptureFixture[str],
    fault_registry: Registry,
    fault_log: Path,
    planted: dict[str, str],
) -> None:
    steps = [
        step("fault_optional", "plain", fault="raise", leak_env=LEAK),
        step("fault_retry", "retried", fault="raise", exception="ConnectionError", fail_times=1,
             leak_env=LEAK),
    ]  # fmt: skip
    server, console = _logged(fault_registry, steps, capfd)
    assert "[REDACTED]" in server
    for name, value in planted.items():
        assert value not in server, f"{name} in the server's logs"
        assert value not in console, f"{name} on the console"


def test_a_chained_cause_leaks_nothing_into_logs(
    capfd: pytest.CaptureFixture[str],
    fault_registry: Registry,
    fault_log: Path,
    planted: dict[str, str],
) -> None:
    steps = [step("fault_optional", "chained", fault="raise", chained=True, leak_env=LEAK)]
    server, console = _logged(fault_registry, steps, capfd)
    leaked = sorted(n for n, v in planted.items() if v in server + console)
    assert leaked == [], f"{leaked} in the logs"


def test_a_secret_logged_by_an_agent_is_redacted(
    capfd: pytest.CaptureFixture[str],
    fault_registry: Registry,
    fault_log: Path,
    planted: dict[str, str],
) -> None:
    steps = [step("fault", "logged", log="calling the provider with", leak_env=LEAK)]
    server, console = _logged(fault_registry, steps, capfd)
    leaked = sorted(n for n, v in planted.items() if v in server + console)
    assert leaked == [], f"{leaked} in the logs"
