"""Fault injection: every failure mode gets the outcome its manifest promises, finished
outputs are kept, and every attempt leaves a metrics record.

The agent under test is ``fault_agents/rel_faults.py`` (configured through its input); its own
call log is the ground truth for what Prefect executed and when.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from rel_faults import calls

from agentrt.agents.registry import Registry
from agentrt.flows.results import RunResult
from agentrt.flows.settings import metrics_dir
from agentrt.flows.workflow import WorkflowManifest
from tests.reliability.conftest import FAULT_AGENTS, cli_env, step

pytestmark = pytest.mark.usefixtures("prefect_harness")


def run(registry: Registry, steps: list[dict[str, Any]], **extra: Any) -> RunResult:
    from agentrt.flows.run import run_workflow

    spec = {"name": extra.pop("name", "rel-faults"), "steps": steps, **extra}
    return run_workflow(
        WorkflowManifest.model_validate(spec), registry=registry, **extra.pop("run_kwargs", {})
    )


def records(result: RunResult) -> pd.DataFrame:
    """The run's metrics records (Parquet, written by agentrt.flows.metrics.finalize_run)."""
    assert "metrics" in result.report_paths, result.report_paths
    return pd.read_parquet(result.report_paths["metrics"])


def starts(log: Path, name: str | None = None) -> list[dict[str, Any]]:
    return [c for c in calls(log) if c["event"] == "start" and name in (None, c["name"])]


def assert_accounted(result: RunResult, log: Path) -> pd.DataFrame:
    """Every attempt the agent saw has exactly one record; the spool was turned into Parquet;
    every finished output is in the result, the saved run file and the report."""
    frame = records(result)
    executed = frame[frame["executed"]]
    seen = Counter(str(c["name"]) for c in starts(log))
    assert Counter(executed["step"]) == seen, (executed[["step", "attempt", "state"]], seen)
    assert not (metrics_dir() / "spool" / str(result.flow_run_id)).exists()
    saved = json.loads(Path(result.report_paths["result"]).read_text())
    report = json.loads(Path(result.report_paths["json"]).read_text())
    for sid, s in result.steps.items():
        if s.state in ("completed", "cached", "fallback"):
            assert s.output is not None, sid
            assert saved["steps"][sid]["output"] == s.output, sid
            assert report["steps"][sid]["output"] == s.output, sid
    return executed


# -- retries -------------------------------------------------------------------------
@pytest.mark.parametrize("exception", ["ConnectionError", "TransientError", "FlakyServiceError"])
def test_retryable_fault_is_retried_with_backoff(
    fault_registry: Registry, fault_log: Path, exception: str
) -> None:
    # ConnectionError by name, TransientError as a subclass of it, FlakyServiceError (a class
    # the runtime has never seen) by its name alone.
    result = run(
        fault_registry,
        [step("fault_retry", "flaky", fault="raise", exception=exception, fail_times=2)],
    )
    assert result.state == "completed", result.errors
    assert result.steps["flaky"].attempts == 3
    log = starts(fault_log, "flaky")
    assert [c["call"] for c in log] == [1, 2, 3]
    # exponential_backoff(0.2): 0.2 s, then 0.4 s, measured between the agent's own calls.
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(log)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4, gaps
    executed = assert_accounted(result, fault_log).sort_values("attempt")
    assert list(executed["attempt"]) == [1, 2, 3]
    assert list(executed["state"]) == ["failed", "failed", "completed"]
    assert set(executed["error_type"].dropna()) == {exception}


def test_exhausted_retries_fail_with_a_structured_report(
    fault_registry: Registry, fault_log: Path
) -> None:
    result = run(
        fault_registry,
        [
            step("fault", "ok"),
            step("fault_retry", "down", fault="raise", exception="ConnectionError"),
        ],
    )
    assert result.state == "failed"
    (report,) = result.errors
    assert (report.step, report.agent, report.phase) == ("down", "fault_retry@1.0.0", "execute")
    assert report.error_type == "ConnectionError" and report.attempts == 4  # 1 + retries.max 3
    assert report.suggestion and "down: injected fault (call 4)" in report.message
    assert len(starts(fault_log, "down")) == 4
    assert result.steps["ok"].state == "completed"
    executed = assert_accounted(result, fault_log)
    assert sorted(executed[executed["step"] == "down"]["attempt"]) == [1, 2, 3, 4]


@pytest.mark.parametrize("exception", ["ValueError", "KeyError", "rel_faults.FaultIn"])
def test_non_retryable_fault_fails_at_once(
    fault_registry: Registry, fault_log: Path, exception: str
) -> None:
    # rel_faults.FaultIn is not an exception class: the agent raises a new class of that name.
    result = run(fault_registry, [step("fault_retry", "bug", fault="raise", exception=exception)])
    assert result.state == "failed"
    assert len(starts(fault_log, "bug")) == 1
    (report,) = result.errors
    assert report.attempts == 1 and report.phase == "execute"
    assert_accounted(result, fault_log)


# -- timeouts ------------------------------------------------------------------------
# A sleeping agent can hang long (it costs nothing); a spinning one burns a core in this
# process after it is abandoned, so it spins just past its 1 s timeout.
HANG_SECONDS = {"hang": 20.0, "busy_hang": 3.0}


@pytest.mark.parametrize("fault", ["hang", "busy_hang"])
def test_hung_agent_times_out_and_is_retried_on_timeout(
    fault_registry: Registry, fault_log: Path, fault: str
) -> None:
    # "hang" sleeps in a C call (only a watchdog gets past it); "busy_hang" spins in Python.
    t0 = time.perf_counter()
    result = run(
        fault_registry, [step("fault_timeout", "stuck", fault=fault, seconds=HANG_SECONDS[fault])]
    )
    elapsed = time.perf_counter() - t0
    assert result.state == "failed"
    (report,) = result.errors
    assert report.error_type in ("AgentTimeoutError", "TaskRunTimeoutError"), report
    assert "timeout_seconds" in report.suggestion
    # retry_on [TimeoutError]: one retry, then the run gives up without waiting for the agent.
    assert len(starts(fault_log, "stuck")) == 2
    assert elapsed < 15, f"the run waited for the hung agent ({elapsed:.1f} s)"
    assert result.steps["stuck"].output is None


@pytest.mark.parametrize("fault", ["hang", "busy_hang"])
def test_timeout_report_and_records_count_every_attempt(
    fault_registry: Registry, fault_log: Path, fault: str
) -> None:
    result = run(
        fault_registry, [step("fault_timeout", "stuck", fault=fault, seconds=HANG_SECONDS[fault])]
    )
    (report,) = result.errors
    assert report.attempts == 2, report
    executed = assert_accounted(result, fault_log)
    assert set(executed["error_type"]) <= {"AgentTimeoutError", "TaskRunTimeoutError"}, executed


def test_timeout_then_success(fault_registry: Registry, fault_log: Path) -> None:
    result = run(
        fault_registry, [step("fault_timeout", "slow", fault="hang", seconds=5, fail_times=1)]
    )
    assert result.state == "completed", result.errors
    assert result.steps["slow"].attempts == 2
    assert result.steps["slow"].output["call"] == 2
    assert_accounted(result, fault_log)


# -- memory --------------------------------------------------------------------------
def test_memory_error_is_reported_and_retried_when_asked(
    fault_registry: Registry, fault_log: Path
) -> None:
    result = run(
        fault_registry,
        [
            step("fault", "hog", fault="memory", memory_mb=64),
            step("fault_retry", "hog_retry", fault="memory", memory_mb=64, fail_times=1),
        ],
        concurrency=1,
    )
    assert result.steps["hog_retry"].state == "completed"
    assert result.steps["hog_retry"].attempts == 2
    hog = result.steps["hog"]
    assert hog.state == "failed" and hog.error is not None
    assert hog.error.error_type == "MemoryError" and hog.error.attempts == 1
    allocated = [c for c in calls(fault_log) if c["event"] == "allocated"]
    assert {c["mb"] for c in allocated} == {64}
    executed = assert_accounted(result, fault_log)
    assert executed["peak_memory_mb"].notna().all()


# -- output faults -------------------------------------------------------------------
def test_invalid_output_fails_validation_and_is_not_retried(
    fault_registry: Registry, fault_log: Path
) -> None:
    result = run(fault_registry, [step("fault_retry", "garbage", fault="invalid_output")])
    assert result.state == "failed"
    (report,) = result.errors
    assert report.error_type == "OutputValidationError" and report.phase == "validate"
    assert report.attempts == 1 and "value" in report.message and "files" in report.message
    executed = assert_accounted(result, fault_log)
    assert executed.iloc[0]["error_phase"] == "validate"


def test_low_confidence_uses_the_fallback(fault_registry: Registry, fault_log: Path) -> None:
    result = run(
        fault_registry, [step("fault_fallback", "unsure", fault="low_confidence", confidence=0.3)]
    )
    assert result.state == "completed", result.errors
    s = result.steps["unsure"]
    assert s.state == "fallback" and s.used_agent == "fault_backup@1.0.0"
    assert s.output["confidence"] == 0.3  # the fallback has no min_confidence
    executed = assert_accounted(result, fault_log)
    assert list(executed.sort_values("started_at")["error_type"].fillna("")) == [
        "LowConfidenceError",
        "",
    ]
    assert executed["fallback_used"].sum() == 1


def test_fallbacks_are_tried_in_order(fault_registry: Registry, fault_log: Path) -> None:
    # fault_backup gets the same input (and fails the same way); fault_last_resort accepts
    # only name and workdir, so the fault setting is dropped and it succeeds.
    result = run(fault_registry, [step("fault_fallback", "chain", fault="raise")])
    assert result.state == "completed", result.errors
    s = result.steps["chain"]
    assert s.state == "fallback" and s.used_agent == "fault_last_resort@1.0.0"
    assert len(s.task_run_ids) == 3 and s.output["call"] == 3
    executed = assert_accounted(result, fault_log).sort_values("started_at")
    assert list(executed["agent_id"]) == ["fault_fallback", "fault_backup", "fault_last_resort"]
    assert list(executed["state"]) == ["failed", "failed", "fallback"]


# -- optional and required failures -------------------------------------------------
def test_optional_failure_is_skipped_and_dependents_continue(
    fault_registry: Registry, fault_log: Path
) -> None:
    result = run(
        fault_registry,
        [
            step("fault_optional", "extra", fault="raise", exception="ConnectionError"),
            {**step("fault", "after_extra"), "after": ["extra"]},
            {
                **step("fault", "reader"),
                "inputs": {"name": {"value": "reader"}, "files": "extra.files"},
            },
        ],
    )
    assert result.state == "completed", result.errors
    assert result.steps["extra"].state == "skipped"
    assert result.steps["extra"].reason.startswith("optional agent failed: ConnectionError")
    assert result.steps["after_extra"].state == "completed"
    # The reader's files input came from the skipped step: it runs with what is available.
    assert result.steps["reader"].state == "completed"
    assert result.steps["reader"].output["files"] == ["reader.out"]
    assert_accounted(result, fault_log)


def test_required_failure_keeps_every_finished_output(
    fault_registry: Registry, fault_log: Path
) -> None:
    result = run(
        fault_registry,
        [
            step("fault", "first"),
            {**step("fault", "sibling", seconds=1.0), "after": ["first"]},
            {**step("fault", "boom", fault="raise", exception="ValueError"), "after": ["first"]},
            {**step("fault", "later"), "after": ["boom"]},
            {**step("fault", "last"), "after": ["sibling"]},
        ],
    )
    assert result.state == "failed"
    states = {sid: s.state for sid, s in result.steps.items()}
    # sibling was running when boom failed: it finishes and its output is kept; nothing new
    # starts after the failure.
    assert states == {
        "first": "completed",
        "sibling": "completed",
        "boom": "failed",
        "later": "skipped",
        "last": "skipped",
    }
    # The reason names the failed agent (not the step: several steps may share an agent).
    assert "after fault@1.0.0 failed" in result.steps["later"].reason
    assert {c["name"] for c in starts(fault_log)} == {"first", "sibling", "boom"}
    (report,) = result.errors
    assert report.step == "boom" and report.error_type == "ValueError"
    frame = records(result)
    assert set(frame[~frame["executed"]]["step"]) == {"later", "last"}
    assert_accounted(result, fault_log)


# -- a worker process killed (SIGKILL, the OOM killer) ---------------------------------
_PROCESS = {"type": "process", "workers": 2}


def _killer_steps() -> list[dict[str, Any]]:
    return [
        step("fault", "ok"),
        {**step("fault", "killer", fault="kill_worker"), "after": ["ok"]},
        {**step("fault", "after"), "after": ["killer"]},
    ]


def test_killed_worker_does_not_hang_the_run(fault_registry: Registry, fault_log: Path) -> None:
    t0 = time.perf_counter()
    run(fault_registry, _killer_steps(), task_runner=_PROCESS)
    assert time.perf_counter() - t0 < 90
    assert [c["event"] for c in calls(fault_log) if c["name"] == "killer"] == ["start", "killing"]
    assert not starts(fault_log, "after")


def test_worker_killed_mid_message_does_not_hang_the_process_at_exit(
    tmp_path: Path,
) -> None:
    """A worker killed while it holds the lock of the runner's message queue (sending a log
    line when the OOM killer strikes): the run fails with its report, and ``agentrt run``
    then exits instead of waiting forever to flush that queue."""
    workflow = tmp_path / "killed.yaml"
    workflow.write_text(
        yaml.safe_dump(
            {
                "name": "rel-killed-mid-message",
                "task_runner": _PROCESS,
                "steps": [
                    step("fault", "ok"),
                    {**step("fault", "killer", fault="kill_worker_mid_message"), "after": ["ok"]},
                ],
            }
        )
    )
    env = cli_env(tmp_path / "home", AGENTRT_FAULT_LOG=str(tmp_path / "log"))
    command = [sys.executable, "-m", "agentrt.cli", "run", str(workflow), "-A", str(FAULT_AGENTS)]
    out = tmp_path / "out.txt"
    # Output to a file, not a pipe: reading a pipe would also wait for any grandchild.
    with out.open("w") as sink:
        try:
            code = subprocess.run(
                command, env=env, cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT, timeout=90
            ).returncode
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"agentrt run hung after its worker was killed: {exc}") from None
    assert code == 1, out.read_text()[-2000:]
    assert "BrokenProcessPool" in out.read_text()
    assert _servers_of(tmp_path / "home", wait=10) == [], "the embedded server outlived the run"


def _servers_of(home: Path, wait: float) -> list[int]:
    """Processes (other than this one) still using files under ``home`` after ``wait`` s."""
    import psutil

    deadline = time.monotonic() + wait
    while True:
        users = []
        for proc in psutil.process_iter(["pid"]):
            with contextlib.suppress(psutil.Error):
                if proc.pid != os.getpid() and any(
                    f.path.startswith(str(home)) for f in proc.open_files()
                ):
                    users.append(proc.pid)
        if not users or time.monotonic() > deadline:
            return users
        time.sleep(0.5)


def test_killed_worker_fails_its_step_with_a_report(
    fault_registry: Registry, fault_log: Path
) -> None:
    result = run(fault_registry, _killer_steps(), task_runner=_PROCESS)
    assert result.state == "failed"
    assert result.steps["ok"].state == "completed" and result.steps["ok"].output
    killer = result.steps["killer"]
    assert killer.state == "failed" and killer.error is not None
    assert killer.error.error_type == "BrokenProcessPool", killer.error
    assert "worker process" in killer.error.suggestion
    assert result.steps["after"].state == "skipped"
    frame = records(result)
    assert {"ok", "killer"} <= set(frame[frame["executed"]]["step"])
    lost = frame[frame["step"] == "killer"]
    assert list(lost["error_type"]) == ["BrokenProcessPool"], lost
