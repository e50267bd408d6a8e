"""Building records, context efficiency, finalize, retention and loading (no Prefect)."""

from __future__ import annotations

import io
import logging
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import BaseModel

from agentrt.flows.metrics import (
    COLUMNS,
    MetricsError,
    build_records,
    cited_paths,
    data_consumers,
    export_records,
    finalize_run,
    finalize_run_records,
    load_records,
    metrics_artifact_args,
    parse_since,
    prune,
    records_frame,
    referenced_tokens,
    retention_days,
)
from agentrt.flows.results import RunResult
from tests.metrics.builders import attempt, frame, record, run_result, spool, step_result

ITEMS = [
    {"path": "src/a.py", "tokens": 300},
    {"path": "src/b.py", "tokens": 100},
    {"path": "docs/c.md", "tokens": 600},
]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AGENTRT_METRICS_DIR", str(tmp_path / "metrics"))
    monkeypatch.delenv("AGENTRT_METRICS_RETENTION_DAYS", raising=False)
    return tmp_path / "metrics"


# -- referenced tokens ---------------------------------------------------------------
def test_referenced_tokens_counts_items_whose_path_is_cited() -> None:
    output = {"findings": [{"path": "src/a.py", "line": 3}, {"path": "src/a.py", "line": 9}]}
    assert referenced_tokens(ITEMS, output) == 300  # each item counted once
    assert referenced_tokens(ITEMS, {"files": ["src/b.py", "docs/c.md"]}) == 700
    assert referenced_tokens(ITEMS, {"items": [{"path": "./src/b.py"}]}) == 100
    assert referenced_tokens(ITEMS, {"summary": "mentions src/a.py in prose only"}) == 0
    assert referenced_tokens([], {"files": ["src/a.py"]}) == 0


def test_referenced_tokens_matches_absolute_and_relative_paths() -> None:
    assert referenced_tokens(ITEMS, {"file": "/home/me/repo/src/a.py"}) == 300
    assert referenced_tokens(ITEMS, {"path": "src\\b.py"}) == 100
    # A suffix must end at a folder boundary: "xsrc/a.py" is another file.
    assert referenced_tokens(ITEMS, {"path": "xsrc/a.py"}) == 0


def test_referenced_tokens_accepts_objects_and_lists_of_outputs() -> None:
    class Item(BaseModel):
        path: str
        tokens: int

    class Finding(BaseModel):
        path: str

    class Out(BaseModel):
        findings: list[Finding]

    items = [Item(**i) for i in ITEMS]
    outputs = [Out(findings=[Finding(path="docs/c.md")]), {"files": ["src/b.py"]}]
    assert referenced_tokens(items, outputs) == 700
    assert cited_paths(Out(findings=[Finding(path="a/./b.py")])) == {"a/b.py"}


# -- building records ----------------------------------------------------------------
def test_efficiency_is_null_without_delivered_context_or_consumers() -> None:
    deliver = {"files": ["src/a.py"], "items": ITEMS}
    alone = run_result([step_result("ctx", "completed", output=deliver)])
    (rec,) = build_records(alone, [attempt("ctx", tokens_delivered=1000)])
    assert rec.tokens_delivered == 1000 and rec.tokens_referenced is None
    assert rec.context_efficiency is None  # nobody could have used it: unknown, not 0
    nothing = run_result([step_result("x", "completed", output={"n": 1})])
    (rec,) = build_records(nothing, [attempt("x")])
    assert rec.tokens_delivered is None and rec.context_efficiency is None


def test_efficiency_counts_citations_of_later_levels_only() -> None:
    result = run_result(
        [
            step_result("ctx", "completed", output={"files": ["src/a.py"], "items": ITEMS}),
            step_result("peer", "completed", output={"path": "docs/c.md"}),
            step_result("review", "completed", output={"findings": [{"path": "src/b.py"}]}),
        ],
        levels=[["ctx", "peer"], ["review"]],
    )
    records = build_records(result, [attempt("ctx"), attempt("peer"), attempt("review")])
    ctx = next(r for r in records if r.step == "ctx")
    # Delivered is the items' total when the agent did not report it; `peer` runs in the
    # same level (it cannot have seen the context), so only src/b.py counts.
    assert (ctx.tokens_delivered, ctx.tokens_referenced) == (1000, 100)
    assert ctx.context_efficiency == pytest.approx(0.1)


def test_cached_fallback_and_lost_attempts_still_get_records() -> None:
    result = run_result(
        [
            step_result(
                "fb",
                "fallback",
                agent="main@1.0.0",
                used_agent="spare@2.0.0",
                output={"ok": True},
            ),
            step_result("lost", "completed", output={"ok": True}, attempts=1),
            step_result("dead", "failed"),
        ]
    )
    failed = attempt("fb", agent="main", state="failed", error_type="ValueError")
    records = {(r.step, r.agent_id): r for r in build_records(result, [failed])}
    assert records["fb", "main"].state == "failed" and not records["fb", "main"].final
    fb = records["fb", "spare"]  # served from the cache: no attempt record of its own
    assert (fb.state, fb.cache_hit, fb.executed, fb.fallback_for) == (
        "fallback",
        True,
        False,
        "main@1.0.0",
    )
    assert (fb.agent_version, fb.final, fb.step_state) == ("2.0.0", True, "fallback")
    assert (records["lost", "alpha"].state, records["lost", "alpha"].executed) == (
        "completed",
        True,
    )
    assert (records["dead", "alpha"].state, records["dead", "alpha"].executed) == (
        "failed",
        False,
    )


# -- finalize ------------------------------------------------------------------------
def _retried_run(root: Path) -> tuple[RunResult, Path]:
    """A one-step run and its spool: a failed attempt, then a successful retry."""
    result = run_result([step_result("a", "completed", output={"x": 1})])
    folder = root / "spool" / "flow-1"
    spool(
        folder,
        [attempt("a", state="failed", error_type="ConnectionError"), attempt("a", attempt=2)],
    )
    return result, folder


def test_finalize_writes_one_file_and_removes_the_spool(root: Path) -> None:
    result, folder = _retried_run(root)
    (folder / "garbage.json").write_text("{not json")
    path = finalize_run(result, folder)
    assert path == root / "runs" / "2026-11-02" / "flow-1.parquet"
    assert not folder.exists()
    rows = pd.read_parquet(path)
    assert rows["attempt"].tolist() == [1, 2] and rows["final"].tolist() == [False, True]
    assert rows["peak_memory_mb"].tolist() == [120.0, 120.0]
    assert rows["phase_execute_s"].tolist() == [0.5, 0.5]
    assert list(rows.columns) == COLUMNS


def test_a_held_spool_keeps_this_process_records_in_memory(root: Path) -> None:
    from agentrt.flows.lifecycle import hold_spool, spool_record

    result = run_result([step_result("a", "completed", output={"x": 1})])
    folder = root / "spool" / "flow-1"
    spool(folder, [attempt("a", state="failed", error_type="ConnectionError")])  # a worker's
    with hold_spool(str(folder)) as held:
        spool_record(attempt("a", attempt=2), str(folder))
        assert [r.attempt for r in held] == [2]
        assert len(list(folder.glob("*.json"))) == 1  # nothing written for the held record
        path = finalize_run(result, folder, attempts=held)
    spool_record(attempt("a", attempt=3), str(root / "spool" / "flow-2"))  # not held: a file
    assert len(list((root / "spool" / "flow-2").glob("*.json"))) == 1
    assert path is not None and not folder.exists()
    rows = pd.read_parquet(path)
    assert rows["attempt"].tolist() == [1, 2] and rows["final"].tolist() == [False, True]


def test_the_metrics_artifact_is_built_from_the_records_written(root: Path) -> None:
    result, folder = _retried_run(root)
    path, written = finalize_run_records(result, folder)
    assert path is not None and written is not None
    pd.testing.assert_frame_equal(records_frame(written), load_records(path))
    from_records = metrics_artifact_args(written, "wf")
    assert from_records["table"] == metrics_artifact_args(path, "wf")["table"]
    assert [row["attempt"] for row in from_records["table"]] == [1, 2]
    assert from_records["key"] == "wf-agent-metrics"
    # The file exists already: its path, and no records (the artifact then reads the file).
    assert finalize_run_records(result, folder) == (path, None)


def test_finalize_is_idempotent_and_clears_a_leftover_spool(root: Path) -> None:
    result = run_result([step_result("a", "completed", output={"x": 1})])
    folder = root / "spool" / "flow-1"
    spool(folder, [attempt("a")])
    first = finalize_run(result, folder)
    assert first is not None
    content = first.read_bytes()
    spool(folder, [attempt("a", attempt=9)])  # e.g. the first finalize died before cleaning up
    assert finalize_run(result, folder) == first
    assert first.read_bytes() == content and not folder.exists()


def test_finalize_without_flow_run_id_or_spool(root: Path) -> None:
    result = run_result([step_result("s", "skipped")], flow_run_id=None)
    path = finalize_run(result, None)
    assert path is not None and path.name.startswith("local-20261102T090000")
    assert load_records(root)["state"].tolist() == ["skipped"]


def test_finalize_never_raises(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    root.parent.mkdir(parents=True, exist_ok=True)
    root.write_text("a file where the metrics folder should be")
    result = run_result([step_result("a", "completed", output={"x": 1})])
    with caplog.at_level(logging.WARNING, logger="agentrt.metrics"):
        assert finalize_run(result, None) is None
    assert "not written" in caplog.text


def test_retention_prunes_old_day_folders_at_finalize(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    today = datetime.now(UTC)
    old = root / "runs" / (today - timedelta(days=91)).strftime("%Y-%m-%d")
    recent = root / "runs" / (today - timedelta(days=89)).strftime("%Y-%m-%d")
    other = root / "runs" / "imported"
    for folder in (old, recent, other):
        folder.mkdir(parents=True)
        export_records(frame([record()]), "parquet", folder / "x.parquet")
    orphan, live = root / "spool" / "crashed-run", root / "spool" / "running"
    spool(orphan, [attempt("a")])
    spool(live, [attempt("a")])
    stale = (today - timedelta(days=95)).timestamp()
    os.utime(orphan, (stale, stale))
    result = run_result([step_result("a", "skipped")], started_at=today)
    assert finalize_run(result, None) is not None
    assert not orphan.exists() and live.exists()  # a crashed run's spool goes too
    assert not old.exists() and (recent / "x.parquet").exists() and (other / "x.parquet").exists()
    assert prune(root, days=1, today=today.date() + timedelta(days=120)) == 2  # recent + today's
    monkeypatch.setenv("AGENTRT_METRICS_RETENTION_DAYS", "0")
    assert retention_days() is None and prune(root) == 0


def test_retention_setting(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("AGENTRT_METRICS_RETENTION_DAYS", raising=False)
    assert retention_days() == 90
    monkeypatch.setenv("AGENTRT_METRICS_RETENTION_DAYS", "30")
    assert retention_days() == 30
    monkeypatch.setenv("AGENTRT_METRICS_RETENTION_DAYS", "a month")
    with caplog.at_level(logging.WARNING, logger="agentrt.metrics"):
        assert retention_days() == 90
    assert "not a whole number" in caplog.text


# -- loading and export --------------------------------------------------------------
def test_load_records_of_a_missing_or_empty_folder(tmp_path: Path) -> None:
    for path in (tmp_path / "nowhere", tmp_path):
        empty = load_records(path)
        assert empty.empty and list(empty.columns) == COLUMNS


def test_load_records_skips_corrupt_files_and_reads_older_schemas(tmp_path: Path) -> None:
    day = tmp_path / "runs" / "2026-11-02"
    day.mkdir(parents=True)
    export_records(frame([record(run=2)]), "parquet", day / "good.parquet")
    (day / "broken.parquet").write_bytes(b"PAR1 not really")
    # A file from an older version without some of today's columns.
    old = pa.table({"workflow": ["wf"], "step": ["s"], "agent_id": ["a"], "state": ["failed"]})
    pq.write_table(old, day / "old.parquet")
    (tmp_path / "_spool" / "x").mkdir(parents=True)
    (tmp_path / "_spool" / "x" / "a.json").write_text("{}")
    with pytest.warns(UserWarning, match="broken.parquet"):
        rows = load_records(tmp_path)
    assert sorted(rows["state"]) == ["completed", "failed"]
    assert rows["tokens_delivered"].isna().all() and str(rows["attempt"].dtype) == "Int64"


def test_parse_since() -> None:
    now = datetime(2026, 11, 10, 12, tzinfo=UTC)
    assert parse_since("7d", now=now) == now - timedelta(days=7)
    assert parse_since("12h", now=now) == now - timedelta(hours=12)
    assert parse_since(" 2W ", now=now) == now - timedelta(weeks=2)
    assert parse_since("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since("2026-11-01T08:30:00+01:00") == datetime(2026, 11, 1, 7, 30, tzinfo=UTC)
    assert parse_since(date(2026, 11, 1)) == datetime(2026, 11, 1, tzinfo=UTC)
    for bad in ("yesterday", "7 days", "-3d", ""):
        with pytest.raises(MetricsError):
            parse_since(bad)


def test_export_round_trips(tmp_path: Path) -> None:
    rows = frame([record(), record("beta", state="cached", run=2)])
    export_records(rows, "parquet", tmp_path / "out.parquet")
    back = load_records(tmp_path / "out.parquet")
    pd.testing.assert_frame_equal(back, rows.sort_values("run_started_at").reset_index(drop=True))
    csv = export_records(rows, "csv")
    assert csv is not None and csv.splitlines()[0].split(",") == COLUMNS
    assert pd.read_csv(io.StringIO(csv)).shape == (2, len(COLUMNS))
    text = export_records(rows, "json")
    assert text is not None and '"attempt": 0' in text and "NaN" not in text
    for bad in ("xlsx", "CSV"):
        with pytest.raises(MetricsError, match="csv, parquet or json"):
            export_records(rows, bad)
    with pytest.raises(MetricsError, match="--output"):
        export_records(rows, "parquet")


def test_with_the_plan_only_readers_of_the_context_count(root: Path) -> None:
    from agentrt.agents.registry import Registry
    from agentrt.flows.run import prepare
    from agentrt.flows.workflow import WorkflowManifest
    from tests.metrics.conftest import METRICS_AGENTS
    from tests.runtime.helpers import FIXTURE_AGENTS

    registry = Registry.discover(
        [FIXTURE_AGENTS, METRICS_AGENTS], builtin=False, entry_points=False
    )
    workflow = WorkflowManifest.model_validate(
        {
            "name": "wf",
            "steps": [
                {"agent": "deliver", "inputs": {"items": {"value": ITEMS}}},
                {"agent": "cite", "inputs": {"files": "deliver.files"}},
                # Runs after the context but does not read it: its citations do not count.
                {"agent": "alpha", "after": ["deliver"], "inputs": {"workdir": {"value": "."}}},
            ],
        }
    )
    plan, _ = prepare(workflow, registry=registry)
    assert data_consumers(plan) == {"deliver": {"cite"}}
    delivered = {"files": [i["path"] for i in ITEMS], "items": ITEMS}
    result = run_result(
        [
            step_result("deliver", "completed", agent="deliver@1.0.0", output=delivered),
            step_result("cite", "completed", agent="cite@1.0.0", output={"path": "src/a.py"}),
            step_result("alpha", "completed", output={"files": ["docs/c.md"]}),
        ],
        levels=plan.levels,
    )
    attempts = [attempt("deliver", "deliver"), attempt("cite", "cite"), attempt("alpha")]
    spool(root / "spool" / "flow-1", attempts)
    path = finalize_run(result, root / "spool" / "flow-1", plan)
    assert path is not None
    rows = load_records(path).set_index("step")
    assert rows.loc["deliver", "tokens_referenced"] == 300
    assert rows.loc["deliver", "context_efficiency"] == pytest.approx(0.3)
    # Without the plan every later step counts: alpha's docs/c.md too.
    without = {r.step: r for r in build_records(result, attempts)}
    assert without["deliver"].tokens_referenced == 900
