"""Each agent's Prefect log, read back from the server's API: agentrt's own lines (start with
the budget, retries with the reason and delay, the fallback taken, the end with tokens and
time), and no Prefect warning about a timeout it cannot enforce in a worker thread."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from agentrt.agents.registry import Registry
from agentrt.flows.compiler import PREFECT_TIMEOUT_GRACE, make_task
from agentrt.flows.results import RunResult
from agentrt.flows.workflow import WorkflowManifest
from tests.reliability.conftest import FAULT_AGENTS

pytestmark = pytest.mark.usefixtures("prefect_harness")

BUDGET_AGENTS = Path(__file__).resolve().parent / "budget_agents"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover(
        [FAULT_AGENTS, BUDGET_AGENTS], builtin=False, env=False, entry_points=False
    )


def _logs_by_task_run(result: RunResult, expect: dict[str, str]) -> dict[str, list[str]]:
    """The log messages of each task run of ``result``, once each task run named in
    ``expect`` (task run name → a line it must have) has that line (logs reach the server in
    batches, after the run)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    from agentrt.flows.history import wait_until_recorded

    wait_until_recorded(result)
    flow_run = UUID(result.flow_run_id)
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run])), limit=50
        )
        names = {r.id: r.name for r in runs}
        while True:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run])), limit=200
            )
            by_run: dict[str, list[str]] = defaultdict(list)
            for log in logs:
                by_run[names.get(log.task_run_id, "flow")].append(log.message)
            if all(any(want in m for m in by_run[n]) for n, want in expect.items()):
                return by_run
            if time.monotonic() > deadline:
                return by_run
            time.sleep(0.5)


def _run(registry: Registry, steps: list[dict[str, Any]], **extra: Any) -> RunResult:
    from agentrt.flows.run import run_workflow

    spec = {"name": "agent-logs", "steps": steps, **extra}
    return run_workflow(WorkflowManifest.model_validate(spec), registry=registry)


def test_each_agent_log_has_agentrts_lines_and_no_timeout_warning(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTRT_FAULT_LOG", str(tmp_path / "fault-log"))

    def values(**inputs: Any) -> dict[str, Any]:
        return {k: {"value": v} for k, v in inputs.items()}

    result = _run(
        registry,
        [
            {"agent": "give", "id": "ctx", "inputs": values(workdir=str(tmp_path), name="ctx")},
            {
                "agent": "fault_retry",
                "id": "flaky",
                "inputs": values(name="flaky", fault="raise", exception="ConnectionError"),
            },
            {"agent": "fault_timeout", "id": "timed", "inputs": values(name="timed")},
            {
                "agent": "fault_fallback",
                "id": "fb",
                "inputs": values(name="fb", fault="raise", message="broken on purpose"),
            },
        ],
        budget={"total_tokens": 1500},
    )
    # flaky fails on every call: 4 attempts; fb's agent and first fallback fail, the last
    # resort (which never sees the fault) succeeds.
    assert result.steps["ctx"].state == "completed", result.steps["ctx"]
    assert result.steps["fb"].state == "fallback", result.steps["fb"]
    assert result.steps["flaky"].state == "failed"
    logs = _logs_by_task_run(
        result,
        {
            "give@1.0.0": "done give@1.0.0",
            "fault_timeout@1.0.0": "done fault_timeout@1.0.0",
            "fault_retry@1.0.0": "attempt 4 of 4 failed",
            "fault_last_resort@1.0.0": "done fault_last_resort@1.0.0",
            "fault_backup@1.0.0": "failed in execute",
        },
    )
    every = [m for lines in logs.values() for m in lines]
    assert not [m for m in every if "Timeout of" in m or "worker thread" in m], every

    give = "\n".join(logs["give@1.0.0"])
    assert "start give@1.0.0 (step ctx, attempt 1 of 3): budget 1,500 tokens" in give, give
    assert "1,500 context tokens delivered of 1,500 granted" in give, give
    assert "no timeout" in give
    # The one agent with a timeout_seconds: enforced by agentrt's watchdog, so Prefect (on
    # the thread runner) has none to warn about.
    timed = "\n".join(logs["fault_timeout@1.0.0"])
    assert "start fault_timeout@1.0.0 (step timed, attempt 1 of 2): no token budget" in timed
    assert "timeout 1 s" in timed and "done fault_timeout@1.0.0 in" in timed, timed

    flaky = "\n".join(logs["fault_retry@1.0.0"])
    for n, delay in ((1, "0.2"), (2, "0.4"), (3, "0.8")):
        assert (
            f"attempt {n} of 4 failed in execute: ConnectionError: flaky: injected fault "
            f"(call {n}); retrying in {delay} s (ConnectionError matches retries.retry_on)"
        ) in flaky, flaky
    assert "attempt 4 of 4 failed in execute: ConnectionError" in flaky
    assert "not retried: no retries left (retries.max 3)" in flaky, flaky
    assert flaky.count("start fault_retry@1.0.0") == 4

    primary = "\n".join(logs["fault_fallback@1.0.0"])
    assert (
        "attempt 1 of 1 failed in execute: RuntimeError: fb: broken on purpose (call 1); "
        "not retried: RuntimeError is not in retries.retry_on; "
        "fallbacks fault_backup, fault_last_resort take over"
    ) in primary, primary
    backup = "\n".join(logs["fault_backup@1.0.0"])
    assert "start fault_backup@1.0.0 as fallback for fault_fallback@1.0.0 (step fb" in backup
    last = "\n".join(logs["fault_last_resort@1.0.0"])
    assert "start fault_last_resort@1.0.0 as fallback for fault_fallback@1.0.0" in last, last
    assert "done fault_last_resort@1.0.0 in" in last and "no context tokens" in last, last


def test_prefect_timeout_is_set_only_where_it_can_interrupt(registry: Registry) -> None:
    """Prefect's task timeout acts only in a process's main thread: set on the process runner
    (a backstop behind agentrt's watchdog), left off for worker threads, where Prefect
    would only warn that it cannot act."""
    agent = registry.get("fault_timeout")
    assert make_task(agent, "src").timeout_seconds is None
    backstop = make_task(agent, "src", prefect_timeout=True).timeout_seconds
    assert backstop == agent.manifest.timeout_seconds + PREFECT_TIMEOUT_GRACE


def test_on_the_process_runner_prefects_timeout_stays_and_does_not_warn(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """There the task runs in the worker process's main thread, where Prefect's timer can
    interrupt it: the backstop is kept, and Prefect has nothing to warn about."""
    from agentrt.flows.run import run_workflow

    monkeypatch.setenv("AGENTRT_FAULT_LOG", str(tmp_path / "fault-log"))
    spec = {
        "name": "agent-logs-process",
        "task_runner": {"type": "process", "workers": 1},
        "steps": [{"agent": "fault_timeout", "id": "timed", "inputs": {"name": {"value": "t"}}}],
    }
    result = run_workflow(WorkflowManifest.model_validate(spec), registry=registry)
    assert result.steps["timed"].state == "completed", result.errors
    logs = _logs_by_task_run(result, {"fault_timeout@1.0.0": "done fault_timeout@1.0.0"})
    timed = "\n".join(logs["fault_timeout@1.0.0"])
    assert "start fault_timeout@1.0.0 (step timed, attempt 1 of 2)" in timed, timed
    assert "done fault_timeout@1.0.0 in" in timed, timed
    every = [m for lines in logs.values() for m in lines]
    assert not [m for m in every if "Timeout of" in m or "worker thread" in m], every


def test_the_end_line_says_what_an_llm_prompt_shrank(caplog: pytest.LogCaptureFixture) -> None:

    from agentrt.agents.agent_context import TokenUsage
    from agentrt.flows.run_log import log_end

    manifest = Registry.discover([FAULT_AGENTS], builtin=False).get("steady").manifest
    log = logging.LoggerAdapter(logging.getLogger("test.run_log"), {})
    usage = TokenUsage(tokens_delivered=900)
    with caplog.at_level(logging.INFO, logger="test.run_log"):
        log_end(log, manifest, 1000, usage, 1.0, 0.5, notes={"prompt_shrunk": ["findings"]})
        log_end(log, manifest, 1000, usage, 1.0, 0.5, notes={})
    shrunk, plain = (r.getMessage() for r in caplog.records)
    assert shrunk.endswith(
        "900 context tokens delivered of 1,000 granted; prompt shrunk to fit the grant: findings"
    )
    assert "shrunk" not in plain


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _attempt_log(name: str) -> tuple[Any, _Records]:
    from agentrt.flows.run_log import AttemptLog

    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    records = _Records()
    logger.addHandler(records)
    return AttemptLog(logger, {"task_run_id": "t1", "flow_run_id": "f1"}), records


def test_a_quick_attempts_start_and_end_lines_share_one_record() -> None:
    log, records = _attempt_log("test.run_log.quick")
    before = time.time()
    log.hold("start %s (step %s)", "a@1.0.0", "s1")
    assert records.records == []  # held for the next line
    log.info("done %s in %.2f s", "a@1.0.0", 0.01)
    log.info("a line after the end")
    first, second = records.records
    assert first.getMessage() == "start a@1.0.0 (step s1)\ndone a@1.0.0 in 0.01 s"
    assert first.task_run_id == "t1" and first.flow_run_id == "f1"
    # stamped with the start's time: the Prefect log shows when the attempt began
    assert before <= first.agentrt_created <= first.created
    assert second.getMessage() == "a line after the end"
    assert not hasattr(second, "agentrt_created")


def test_a_failed_attempts_warning_carries_its_start_line() -> None:
    log, records = _attempt_log("test.run_log.failed")
    log.hold("start b@1.0.0")
    log.warning("attempt %d of %d failed", 1, 2)
    (record,) = records.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "start b@1.0.0\nattempt 1 of 2 failed"


def test_a_running_attempts_start_line_is_sent_alone_after_the_delay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agentrt.flows import run_log

    monkeypatch.setattr(run_log, "START_LINE_DELAY", 0.05)
    log, records = _attempt_log("test.run_log.slow")
    log.hold("start c@1.0.0")
    deadline = time.monotonic() + 10
    while not records.records and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [r.getMessage() for r in records.records] == ["start c@1.0.0"]
    log.info("done c@1.0.0")  # the end line then goes on its own
    assert [r.getMessage() for r in records.records] == ["start c@1.0.0", "done c@1.0.0"]


def test_buffered_lines_are_handed_over_in_bursts_and_all_at_the_end() -> None:
    from agentrt.flows.run_log import _Buffered, buffer_lines

    records = _Records()
    logger = logging.getLogger("test.run_log.buffered")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(_Buffered(records))
    with buffer_lines():
        logger.info("one")
        deadline = time.monotonic() + 10
        while not records.records and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [r.getMessage() for r in records.records] == ["one"]  # by the lines' thread
        logger.info("two")
        logger.info("three")
    # on exit, whatever was still buffered is handed over
    assert [r.getMessage() for r in records.records] == ["one", "two", "three"]
    logger.info("four")  # no buffer_lines block open: at once
    assert records.records[-1].getMessage() == "four"
