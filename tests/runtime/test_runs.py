"""Real Prefect runs of manifest-generated flows (one Prefect test server per session)."""

from __future__ import annotations

import itertools
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agentrt.agents.registry import Registry
from agentrt.flows.results import RunResult
from agentrt.flows.workflow import WorkflowManifest
from tests.runtime.helpers import FIXTURE_AGENTS

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    registry = Registry.discover([FIXTURE_AGENTS], builtin=False, entry_points=False)
    # The first tagged task run against a fresh Prefect server waits ~1-3 s while the server
    # lazily imports its concurrency endpoints; warm it so timing assertions measure
    # agentrt's scheduling, not Prefect's cold start.
    run(registry, tmp_path_factory.mktemp("warmup"), [step("delta")])
    return registry


def run(registry: Registry, workdir: Path, steps: list[dict[str, Any]], **extra: Any) -> RunResult:
    from agentrt.flows.run import run_workflow

    spec = {
        "name": extra.pop("name", "test-wf"),
        "params": {"workdir": {"type": "path", "default": str(workdir)}, **extra.pop("params", {})},
        "steps": steps,
        **extra,
    }
    return run_workflow(WorkflowManifest.model_validate(spec), registry=registry)


def events(workdir: Path) -> list[dict[str, Any]]:
    path = workdir / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def step(agent: str, name: str | None = None, **inputs: Any) -> dict[str, Any]:
    values = {"name": {"value": name or agent}, **{k: {"value": v} for k, v in inputs.items()}}
    return {"agent": agent, "id": name or agent, "inputs": values}


def test_levels_run_in_parallel_and_in_dependency_order(registry: Registry, tmp_path: Path) -> None:
    result = run(
        registry,
        tmp_path,
        [
            step("alpha", seconds=1.0),
            step("beta", seconds=1.0),
            step("gamma", seconds=1.0),
            {
                "agent": "consumer",
                "inputs": {"files": ["alpha.files", "beta.files", "gamma.files"]},
            },
        ],
        concurrency=4,
    )
    assert result.state == "completed", result.errors
    assert result.levels == [["alpha", "beta", "gamma"], ["consumer"]]
    out = {k: v.output for k, v in result.steps.items()}
    first_end = min(out[s]["ended"] for s in ("alpha", "beta", "gamma"))
    last_start = max(out[s]["started"] for s in ("alpha", "beta", "gamma"))
    starts = {s: out[s]["started"] for s in ("alpha", "beta", "gamma")}
    assert last_start < first_end, f"independent agents did not overlap: {starts}, {first_end}"
    assert out["consumer"]["received"] == ["alpha.py", "beta.py", "gamma.py"]
    consume = next(e for e in events(tmp_path) if e["name"] == "consume")
    assert consume["t"] >= max(out[s]["ended"] for s in ("alpha", "beta", "gamma"))
    for s in ("alpha", "beta", "gamma"):
        phases = result.steps[s].phases
        assert {"initialise", "execute", "validate", "integrate"} <= set(phases)
        assert phases["execute"] >= 0.9


def test_upstream_output_is_validated_against_downstream_input(
    registry: Registry, tmp_path: Path
) -> None:
    result = run(
        registry,
        tmp_path,
        [step("alpha"), {"agent": "consumer", "inputs": {"files": "alpha.name"}}],
    )
    assert result.state == "failed"
    consumer = result.steps["consumer"]
    assert consumer.state == "failed"
    report = consumer.error
    assert report is not None and report.error_type == "DataFlowError"
    assert report.phase == "initialise" and report.attempts == 1
    assert "alpha@1.0.0" in report.message and "consumer@1.0.0" in report.message
    assert "files" in report.message
    assert result.steps["alpha"].output["name"] == "alpha"  # finished outputs are kept


def test_retryable_errors_are_retried_then_succeed(registry: Registry, tmp_path: Path) -> None:
    result = run(registry, tmp_path, [step("flaky", fail_times=2)])
    assert result.state == "completed", result.errors
    assert result.steps["flaky"].attempts == 3
    calls = [e for e in events(tmp_path) if e["name"] == "flaky"]
    assert [c["call"] for c in calls] == [1, 2, 3]
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(calls)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2, gaps  # exponential backoff 0.1, 0.2


def test_non_retryable_error_is_not_retried(registry: Registry, tmp_path: Path) -> None:
    result = run(registry, tmp_path, [step("broken")])
    assert result.state == "failed"
    assert len([e for e in events(tmp_path) if e["name"] == "broken"]) == 1
    (report,) = result.errors
    assert report.error_type == "ValueError" and report.phase == "execute" and report.attempts == 1
    assert report.agent == "broken@1.0.0" and report.suggestion


def test_timeout_stops_a_hung_agent(registry: Registry, tmp_path: Path) -> None:
    t0 = time.perf_counter()
    result = run(registry, tmp_path, [step("hang")])
    assert time.perf_counter() - t0 < 30
    assert result.steps["hang"].state == "failed"
    # Prefect's own timeout or agentrt's hard watchdog, whichever fires first.
    assert result.errors[0].error_type in ("AgentTimeoutError", "TaskRunTimeoutError")
    assert "timeout_seconds" in result.errors[0].suggestion


def test_fallback_runs_when_the_agent_fails(registry: Registry, tmp_path: Path) -> None:
    result = run(registry, tmp_path, [step("broken_with_fallback")])
    assert result.state == "completed"
    s = result.steps["broken_with_fallback"]
    assert s.state == "fallback" and s.used_agent == "alpha@1.0.0"
    assert len(s.task_run_ids) == 2  # the fallback is a task run of its own


def test_low_confidence_uses_fallback(registry: Registry, tmp_path: Path) -> None:
    result = run(registry, tmp_path, [step("confident", confidence=0.5)])
    s = result.steps["confident"]
    assert s.state == "fallback" and s.used_agent == "beta@1.0.0"


def test_optional_failure_is_skipped_and_dependents_continue(
    registry: Registry, tmp_path: Path
) -> None:
    result = run(
        registry,
        tmp_path,
        [
            step("optional_broken"),
            {**step("alpha"), "after": ["optional_broken"]},
            {"agent": "consumer", "inputs": {"files": "optional_broken.files"}},
        ],
    )
    assert result.state == "completed", result.errors
    assert result.steps["optional_broken"].state == "skipped"
    assert "optional agent failed: ValueError" in result.steps["optional_broken"].reason
    assert result.steps["alpha"].state == "completed"
    consumer = result.steps["consumer"]
    assert consumer.state == "skipped"
    assert "input files needs optional_broken" in consumer.reason


def test_required_failure_fails_fast_and_keeps_finished_outputs(
    registry: Registry, tmp_path: Path
) -> None:
    result = run(
        registry,
        tmp_path,
        [step("alpha"), step("broken"), {**step("beta"), "after": ["broken", "alpha"]}],
    )
    assert result.state == "failed"
    assert result.steps["alpha"].state == "completed" and result.steps["alpha"].output
    assert result.steps["beta"].state == "skipped"
    assert "broken" in result.steps["beta"].reason
    saved = json.loads(Path(result.report_paths["result"]).read_text())
    assert saved["steps"]["alpha"]["output"]["name"] == "alpha"


def test_cache_hit_on_rerun_and_miss_when_input_file_changes(
    registry: Registry, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "input.txt").write_text("hello")
    work = tmp_path / "work"
    work.mkdir()
    steps = [{"agent": "reader", "inputs": {"path": {"value": str(data / "input.txt")}}}]
    first = run(registry, work, steps)
    second = run(registry, work, steps)
    assert first.steps["reader"].state == "completed"
    assert second.steps["reader"].state == "cached"
    assert second.steps["reader"].output == {"length": 5}
    (data / "input.txt").write_text("hello, world")
    third = run(registry, work, steps)
    assert third.steps["reader"].state == "completed"
    assert third.steps["reader"].output == {"length": 12}
    assert (data / "input.txt.calls").read_text().count("call") == 2


def test_every_attempt_leaves_a_record(registry: Registry, tmp_path: Path) -> None:
    import pandas as pd

    result = run(registry, tmp_path, [step("flaky", fail_times=1)])
    records = pd.read_parquet(result.report_paths["metrics"]).sort_values("attempt")
    assert list(records["attempt"]) == [1, 2]
    assert list(records["state"]) == ["failed", "completed"]
    failed = records.iloc[0]
    assert failed["error_type"] == "ConnectionError" and failed["error_phase"] == "execute"


def _artifacts_of(result: RunResult) -> dict[str, dict[str, Any]]:
    """The flow run's artifacts by key (the progress artifact, which has none, as "progress")."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    response = httpx.post(
        f"{PREFECT_API_URL.value()}/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [result.flow_run_id]}}},
    )
    return {a["key"] or a["type"]: a for a in response.raise_for_status().json()}


ARTIFACT_KEYS = {"test-wf-report", "test-wf-agents", "test-wf-agent-metrics", "progress"}


def _ended(result: RunResult) -> datetime:
    """When the server recorded the flow run's end (its clock, as artifacts' ``created``)."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    response = httpx.get(f"{PREFECT_API_URL.value()}/flow_runs/{result.flow_run_id}")
    return datetime.fromisoformat(response.raise_for_status().json()["end_time"])


def _created(artifact: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(artifact["created"])


def test_report_files_and_prefect_artifacts(registry: Registry, tmp_path: Path) -> None:
    from agentrt.flows import drain_artifacts
    from agentrt.flows.artifacts import _publisher

    handed_over = _publisher.submitted
    result = run(registry, tmp_path, [step("alpha"), step("broken_with_fallback")])
    markdown = Path(result.report_paths["markdown"]).read_text()
    assert (
        "# test-wf: completed" in markdown and "## broken_with_fallback (alpha@1.0.0)" in markdown
    )
    assert json.loads(Path(result.report_paths["json"]).read_text())["state"] == "completed"
    # By default the artifacts are published in the background, after the run returned.
    assert _publisher.submitted == handed_over + 1
    assert drain_artifacts() == []
    artifacts = _artifacts_of(result)
    assert set(artifacts) == ARTIFACT_KEYS
    assert artifacts["progress"]["data"] == 100.0
    assert "broken_with_fallback" in artifacts["test-wf-report"]["data"]
    metrics = json.loads(artifacts["test-wf-agent-metrics"]["data"])
    assert len(metrics) == 3  # alpha, broken_with_fallback, its fallback
    # Sent once the flow run's end was recorded (the progress artifact at its start).
    assert _created(artifacts["progress"]) < _ended(result)
    assert all(_created(artifacts[k]) >= _ended(result) for k in ARTIFACT_KEYS - {"progress"})


def test_artifacts_inline_are_on_the_flow_run_when_it_ends(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentrt.flows.artifacts import _publisher

    monkeypatch.setenv("AGENTRT_ARTIFACTS", "inline")
    handed_over = _publisher.submitted
    result = run(registry, tmp_path, [step("alpha")])
    assert _publisher.submitted == handed_over  # nothing left to publish after the run
    artifacts = _artifacts_of(result)
    assert set(artifacts) == ARTIFACT_KEYS
    assert artifacts["progress"]["data"] == 100.0
    assert all(_created(a) <= _ended(result) for a in artifacts.values())


def test_artifacts_off_publishes_none_but_writes_the_report(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentrt.flows import drain_artifacts

    monkeypatch.setenv("AGENTRT_ARTIFACTS", "off")
    result = run(registry, tmp_path, [step("alpha")])
    assert drain_artifacts() == []
    assert _artifacts_of(result) == {}
    assert {"markdown", "json", "metrics"} <= set(result.report_paths)
    assert "error" not in result.report_paths


def test_artifact_problems_are_reported_once() -> None:
    from agentrt.flows import drain_artifacts
    from agentrt.flows.artifacts import RunArtifacts

    def broken() -> list[Any]:
        raise ValueError("no rows")

    def unused() -> list[Any]:
        return []

    artifacts = RunArtifacts("wf", 1)  # outside a flow run: artifacts of no flow run
    assert artifacts.finish([broken, unused]).result(timeout=60) == ["ValueError: no rows"]
    assert drain_artifacts() == ["ValueError: no rows"]
    assert drain_artifacts() == []  # reported: not again, nor at exit
    # Inline (not collected): the problems are the future's result only.
    inline = RunArtifacts("wf", 1).finish([broken], collect=False)
    assert inline.result(timeout=60) == ["ValueError: no rows"]
    assert drain_artifacts() == []


def test_an_unknown_artifacts_mode_is_refused_before_the_run(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTRT_ARTIFACTS", "later")
    with pytest.raises(ValueError, match=r"AGENTRT_ARTIFACTS='later'.*background.*inline.*off"):
        run(registry, tmp_path, [step("alpha")])
    assert not (tmp_path / "events.jsonl").exists()


def test_concurrency_tag_limit_is_respected(registry: Registry, tmp_path: Path) -> None:
    steps = [
        {
            "agent": "limited",
            "id": f"l{i}",
            "inputs": {"name": {"value": f"l{i}"}, "seconds": {"value": 0.4}},
        }
        for i in range(5)
    ]
    result = run(registry, tmp_path, steps, concurrency={"max_workers": 8, "tags": {"slow": 2}})
    assert result.state == "completed", result.errors
    spans = [(s.output["started"], s.output["ended"]) for s in result.steps.values()]
    overlap = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
    assert overlap == 2, spans


def test_secrets_never_reach_results_reports_or_records(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-test-" + "Zq8" * 12
    monkeypatch.setenv("AGENTRT_TEST_API_KEY", secret)
    result = run(registry, tmp_path, [step("leaky")])
    assert result.steps["leaky"].state == "skipped"
    assert "[REDACTED]" in result.steps["leaky"].reason
    written = [Path(p) for k, p in result.report_paths.items() if k != "error"]
    assert {"markdown", "json", "metrics", "result"} <= set(result.report_paths)
    for path in written:
        assert secret.encode() not in path.read_bytes(), path
    assert secret not in result.model_dump_json()
