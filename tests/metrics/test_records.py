"""Records from real workflow runs: every state, retries, fallbacks, cache, efficiency,
storage layout, idempotent finalize and the Prefect artifact."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from agentrt.flows.metrics import MetricsError, finalize_run, load_records, publish_metrics_artifact
from tests.metrics.conftest import Recorded


@pytest.fixture(scope="module")
def records(recorded: Recorded) -> pd.DataFrame:
    return load_records(recorded.root)


def of(records: pd.DataFrame, run_id: str | None, step: str) -> pd.DataFrame:
    mine = records[(records["flow_run_id"] == run_id) & (records["step"] == step)]
    return mine.sort_values(["started_at", "attempt"]).reset_index(drop=True)


def test_every_step_of_every_run_has_a_record(recorded: Recorded, records: pd.DataFrame) -> None:
    runs = [recorded.mixed, recorded.failed, recorded.first, recorded.cached]
    assert records["flow_run_id"].nunique() == 4
    for result in runs:
        mine = records[records["flow_run_id"] == result.flow_run_id]
        assert set(mine["step"]) == set(result.steps)
        assert set(mine["workflow"]) == {result.workflow}
        # Exactly one record per step decides its outcome, and it carries the step's state.
        finals = mine[mine["final"]]
        assert sorted(finals["step"]) == sorted(result.steps)
        for sid, step in result.steps.items():
            assert set(mine.loc[mine["step"] == sid, "step_state"]) == {step.state}


def test_completed_and_retried_then_completed(recorded: Recorded, records: pd.DataFrame) -> None:
    alpha = of(records, recorded.mixed.flow_run_id, "alpha")
    assert alpha[["attempt", "state", "executed", "final"]].values.tolist() == [
        [1, "completed", True, True]
    ]
    flaky = of(records, recorded.mixed.flow_run_id, "flaky")
    assert flaky[["attempt", "state", "error_type", "final"]].astype(object).values.tolist() == [
        [1, "failed", "ConnectionError", False],
        [2, "completed", pd.NA, True],
    ]
    assert flaky["error_phase"].tolist()[0] == "execute"
    assert flaky["task_run_id"].nunique() == 1  # Prefect retries reuse the task run


def test_failed_after_retries_and_blocked_dependent(
    recorded: Recorded, records: pd.DataFrame
) -> None:
    dead = of(records, recorded.failed.flow_run_id, "flaky_dead")
    assert dead["attempt"].tolist() == [1, 2, 3, 4]  # retries.max 3
    assert set(dead["state"]) == {"failed"} and set(dead["error_type"]) == {"ConnectionError"}
    assert dead["final"].tolist() == [False, False, False, True]
    assert set(dead["step_state"]) == {"failed"}
    beta = of(records, recorded.failed.flow_run_id, "beta")
    assert beta[["state", "executed", "attempt", "cache_hit"]].values.tolist() == [
        ["skipped", False, 0, False]
    ]
    assert pd.isna(beta["wall_seconds"][0])


def test_fallback_attempts_are_marked(recorded: Recorded, records: pd.DataFrame) -> None:
    step = of(records, recorded.mixed.flow_run_id, "broken_with_fallback")
    assert step[["agent_id", "state", "fallback_used", "final"]].values.tolist() == [
        ["broken_with_fallback", "failed", False, False],
        ["alpha", "fallback", True, True],
    ]
    assert step["fallback_for"].tolist()[1] == "broken_with_fallback@1.0.0"
    assert step["error_type"].tolist()[0] == "ValueError"
    assert set(step["step_state"]) == {"fallback"}


def test_optional_failure_and_skipped_consumer(recorded: Recorded, records: pd.DataFrame) -> None:
    optional = of(records, recorded.mixed.flow_run_id, "optional_broken")
    assert optional[["state", "step_state", "executed"]].values.tolist() == [
        ["failed", "skipped", True]
    ]
    consumer = of(records, recorded.mixed.flow_run_id, "consumer")
    assert consumer[["state", "executed", "attempt"]].values.tolist() == [["skipped", False, 0]]


def test_cache_miss_then_hit(recorded: Recorded, records: pd.DataFrame) -> None:
    first = of(records, recorded.first.flow_run_id, "reader")
    assert first[["state", "executed", "cache_hit"]].values.tolist() == [["completed", True, False]]
    hit = of(records, recorded.cached.flow_run_id, "reader")
    assert hit[["state", "executed", "cache_hit", "attempt", "final"]].values.tolist() == [
        ["cached", False, True, 0, True]
    ]
    assert hit["agent_version"].tolist() == ["1.0.0"]


def test_tokens_budget_and_context_efficiency(recorded: Recorded, records: pd.DataFrame) -> None:
    deliver = of(records, recorded.mixed.flow_run_id, "deliver").iloc[0]
    # No workflow budget: the agent got its manifest's optimal_tokens, and says why.
    assert deliver["tokens_allocated"] == 4000
    assert "no workflow budget" in deliver["budget_reason"]
    assert deliver["tokens_delivered"] == 1000
    # `cite` (a later level) cites src/a.py only: 300 of the 1,000 delivered tokens.
    assert deliver["tokens_referenced"] == 300
    assert deliver["context_efficiency"] == pytest.approx(0.3)
    usage = of(records, recorded.mixed.flow_run_id, "usage").iloc[0]
    assert (usage["llm_input_tokens"], usage["llm_output_tokens"]) == (1200, 80)
    assert usage["agent_version"] == "2.1.0"
    assert usage["context_efficiency"] == pytest.approx(0.25)  # as the agent reported it
    # No context delivered: efficiency is unknown (null), not zero.
    for sid in ("cite", "alpha", "flaky"):
        assert of(records, recorded.mixed.flow_run_id, sid)["context_efficiency"].isna().all()


def test_timings_of_executed_records(records: pd.DataFrame) -> None:
    executed = records[records["executed"]]
    assert (executed["wall_seconds"] > 0).all()
    assert (executed["cpu_seconds"] >= 0).all()
    assert executed["phase_initialise_s"].notna().all()
    assert executed["phase_execute_s"].notna().all()
    assert (executed["ended_at"] >= executed["started_at"]).all()
    assert (executed["run_started_at"] <= executed["started_at"]).all()
    # The attempt's own peak: how far RSS rose above its start (0 for a trivial agent).
    assert (executed["peak_memory_mb"].dropna() >= 0).all()
    succeeded = executed[executed["state"].isin(["completed", "fallback"])]
    assert succeeded["phase_validate_s"].notna().all()
    assert succeeded["phase_integrate_s"].notna().all()  # from the flow, on the winner


def test_one_parquet_file_per_run_readable_with_pandas(recorded: Recorded) -> None:
    files = sorted((recorded.root / "runs").rglob("*"))
    parquet = [f for f in files if f.is_file()]
    assert sorted(parquet) == sorted(recorded.files.values())  # no temp files left
    for name, result in [("mixed", recorded.mixed), ("cached", recorded.cached)]:
        path = recorded.files[name]
        day = result.started_at.strftime("%Y-%m-%d")
        assert path == recorded.root / "runs" / day / f"{result.flow_run_id}.parquet"
    assert not (recorded.root / "spool").exists() or not any((recorded.root / "spool").iterdir())
    # The whole folder reads as one table with the record dtypes, no partition column.
    frame = pd.read_parquet(recorded.root)
    assert len(frame) == len(load_records(recorded.root))
    assert str(frame["attempt"].dtype) == "Int64"
    assert str(frame["executed"].dtype) == "boolean"
    assert str(frame["started_at"].dtype) == "datetime64[us, UTC]"
    assert "date" not in frame.columns


def test_finalize_is_idempotent(recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTRT_METRICS_DIR", str(recorded.root))
    path = recorded.files["mixed"]
    # The flow itself finalized the run (agentrt.flows.run_outputs.write_run_outputs); the
    # tests' call was a no-op.
    assert recorded.mixed.report_paths["metrics"] == str(path)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    spool = recorded.root / "spool" / str(recorded.mixed.flow_run_id)
    assert finalize_run(recorded.mixed, spool) == path
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_load_records_filters(recorded: Recorded) -> None:
    cache = load_records(recorded.root, workflow="metrics-cache")
    assert cache["state"].tolist() == ["completed", "cached"]
    assert len(load_records(recorded.root, since="1d")) == len(load_records(recorded.root))
    assert load_records(recorded.root, since="2999-01-01").empty
    assert load_records(recorded.files["failed"])["step"].nunique() == 2  # one file
    with pytest.raises(MetricsError, match="7d"):
        load_records(recorded.root, since="last tuesday")


def _artifact(artifact_id: Any) -> dict[str, Any]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.request("GET", f"/artifacts/{artifact_id}").json()


def test_publish_metrics_artifact_inside_an_async_flow(recorded: Recorded) -> None:
    """As the runtime does at the end of a run: inside the (async) workflow flow."""
    from prefect import flow

    from agentrt.flows.metrics import apublish_metrics_artifact

    @flow(name="metrics-artifact")
    async def publish() -> list[Any]:
        return [
            await apublish_metrics_artifact(recorded.files["failed"], "metrics-async"),
            # The sync variant must not hand back an un-awaited coroutine in an async flow.
            publish_metrics_artifact(load_records(recorded.files["failed"]), "metrics sync"),
        ]

    ids = asyncio.run(publish())
    for artifact_id, key in zip(ids, ("metrics-async", "metrics-sync"), strict=True):
        artifact = _artifact(artifact_id)
        assert artifact["key"] == f"{key}-agent-metrics"
        assert artifact["type"] == "table" and artifact["flow_run_id"]
        data = artifact["data"]
        rows = json.loads(data) if isinstance(data, str) else data
        assert sorted(r["state"] for r in rows) == ["failed"] * 4 + ["skipped"]
        assert {r["agent_id"] for r in rows} == {"flaky", "beta"}
        assert all(isinstance(r["attempt"], int) for r in rows)


def test_low_efficiency_is_a_warning_line_of_the_run_report(recorded: Recorded) -> None:
    # `deliver` had 300 of its 1,000 tokens cited (30 % < 50 %); `usage` reported 25 %.
    report = Path(recorded.mixed.report_paths["markdown"]).read_text()
    warnings = [line for line in report.splitlines() if line.startswith("- **warning**")]
    assert any("step deliver (deliver)" in w and "300 of 1,000" in w for w in warnings)
    assert any("step usage" in w for w in warnings)
    assert not any("step cite" in w for w in warnings)  # nothing delivered: no figure
