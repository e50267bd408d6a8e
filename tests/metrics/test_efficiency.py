"""Context efficiency (referenced / delivered): the citation rule, ``ctx.mark_referenced``,
the audience of a deliverer nobody reads, and the warnings below 50 % (run report, log,
``metrics summary``, ``metrics recommend``)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentrt.agents.agent_context import AgentContext
from agentrt.agents.citations import citations, cited_items, defined_identifiers
from agentrt.cli.metrics import app
from agentrt.flows.metrics import (
    LOW_EFFICIENCY,
    build_records,
    export_records,
    log_low_efficiency,
    low_efficiency,
    recommend,
    referenced_tokens,
)
from tests.metrics.builders import attempt, frame, record, run_result, step_result

SPANS = [
    {"path": "pkg/a.py", "start_line": 1, "end_line": 10, "tokens": 100, "text": "def helper(x):"},
    {"path": "pkg/a.py", "start_line": 11, "end_line": 30, "tokens": 200, "text": "x = 1"},
    {"path": "pkg/b.py", "start_line": 1, "end_line": 40, "tokens": 300, "text": "class Parser:"},
    {"path": "docs/c.md", "start_line": 1, "end_line": 9, "tokens": 400, "text": "# Docs"},
]


def tokens(items: list[dict]) -> int:
    return sum(i["tokens"] for i in items)


# -- the citation rule ---------------------------------------------------------------
def test_a_citation_with_a_line_counts_only_the_span_that_holds_it() -> None:
    assert tokens(cited_items(SPANS, {"path": "pkg/a.py", "line": 12})) == 200
    assert tokens(cited_items(SPANS, {"path": "pkg/a.py", "line": 99})) == 0  # outside both
    # Without a line the citation is of the file: every span of it.
    assert tokens(cited_items(SPANS, {"path": "pkg/a.py"})) == 300
    # A range overlapping both spans counts both; each item counts once.
    cited = {"findings": [{"path": "pkg/a.py", "line": 9, "end_line": 12}] * 2}
    assert tokens(cited_items(SPANS, cited)) == 300


def test_citations_in_text_and_inherited_paths() -> None:
    answer = "The bug is in ./pkg/b.py:20-22; see also pkg/a.py#L3 and README."
    assert tokens(cited_items(SPANS, {"summary": answer})) == 400
    assert Path("pkg/b.py").as_posix() in {c.path for c in citations(answer)}
    # An object with a line but no path is located in its enclosing path (ApiObject).
    module = {"path": "pkg/a.py", "objects": [{"name": "helper", "line": 5}]}
    assert tokens(cited_items(SPANS, module, file_level=False)) == 100
    # Prose is not read when text is off (the runtime's rule for structured outputs).
    assert tokens(cited_items(SPANS, {"summary": answer}, text=False, identifiers=False)) == 0


def test_a_named_identifier_cites_the_item_that_defines_it() -> None:
    assert defined_identifiers("def helper(x):\n    pass\nclass Parser:\nMAX = 3\nfor x:") == {
        "helper",
        "Parser",
    }  # MAX: shorter than 4 characters
    assert tokens(cited_items(SPANS, {"summary": "Parser.parse drops rows"})) == 300
    assert tokens(cited_items(SPANS, {"summary": "a parser drops rows"})) == 0  # whole word
    assert tokens(cited_items(SPANS, {"summary": "Parser"}, identifiers=False)) == 0


def test_runtime_referenced_tokens_located_only() -> None:
    findings = {"findings": [{"path": "pkg/b.py", "line": 3}], "files": ["docs/c.md"]}
    assert referenced_tokens(SPANS, findings) == 700
    assert referenced_tokens(SPANS, findings, located=True) == 300  # the file list: no


# -- what deterministic agents report ------------------------------------------------
def test_mark_referenced_adds_tokens_and_counts_each_item_once() -> None:
    ctx = AgentContext("a", "1", "s", "wf", {}, None, 1)
    assert ctx.tokens_referenced is None
    assert ctx.mark_referenced(SPANS[:2]) == 300
    assert ctx.mark_referenced([SPANS[0], SPANS[2]]) == 600  # SPANS[0] already counted
    assert ctx.mark_referenced(50) == 650
    assert ctx.usage.tokens_referenced == 650


# -- a deliverer that nobody reads ---------------------------------------------------
def test_steps_ordered_after_a_deliverer_count_with_located_citations_only() -> None:
    result = run_result(
        [
            step_result("ctx", "completed", output={"files": ["pkg/a.py"], "items": SPANS}),
            step_result(
                "review",
                "completed",
                output={"findings": [{"path": "pkg/a.py", "line": 4}], "files": ["pkg/b.py"]},
            ),
        ],
        levels=[["ctx"], ["review"]],
    )
    attempts = [attempt("ctx", tokens_delivered=1000), attempt("review")]
    # No step reads ctx's output; review runs after it: its finding at pkg/a.py:4 counts
    # (100 tokens), its list of files does not.
    records = build_records(result, attempts, consumers={}, after={"ctx": {"review"}})
    ctx = next(r for r in records if r.step == "ctx")
    assert (ctx.tokens_referenced, ctx.context_efficiency) == (100, pytest.approx(0.1))
    # Without anyone ordered after it, use cannot be told: null, not 0.
    alone = build_records(result, attempts, consumers={}, after={})
    assert next(r for r in alone if r.step == "ctx").context_efficiency is None


# -- warnings below 50 % -------------------------------------------------------------
def low_history(runs: int = 3) -> list[dict]:
    rows = []
    for run in range(1, runs + 1):
        rows.append(
            record(
                "ctx",
                run=run,
                tokens_allocated=8000,
                tokens_delivered=8000,
                tokens_referenced=1000 + 100 * run,
                context_efficiency=(1000 + 100 * run) / 8000,
            )
        )
        rows.append(record("fine", run=run, tokens_delivered=1000, tokens_referenced=600))
    return rows


def test_low_efficiency_by_step_and_by_agent() -> None:
    assert LOW_EFFICIENCY == 0.5
    (by_agent,) = low_efficiency(frame(low_history()))
    assert (by_agent.agent_id, by_agent.runs, by_agent.delivered) == ("ctx", 3, 24000)
    assert "ctx had 3,600 of 24,000" in by_agent.render() and "(15% < 50%)" in by_agent.render()
    (by_step,) = low_efficiency(frame(low_history(1)), by="step")
    assert by_step.step == "ctx" and "step ctx (ctx)" in by_step.render()
    # Exactly at the threshold, or unknown: no warning.
    even = [record("x", tokens_delivered=1000, tokens_referenced=500)]
    unknown = [record("x", tokens_delivered=1000)]
    assert low_efficiency(frame(even)) == [] and low_efficiency(frame(unknown)) == []
    # Just below it, the share is not rounded up to the threshold (3,776 of 7,611: 49.6 %).
    close = [record("x", tokens_delivered=7611, tokens_referenced=3776)]
    (warning,) = low_efficiency(frame(close))
    assert "(49.6% < 50%)" in warning.render(), warning.render()


def test_low_efficiency_goes_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    warnings = low_efficiency(frame(low_history(1)), by="step")
    with caplog.at_level(logging.WARNING, logger="agentrt.metrics"):
        log_low_efficiency(warnings)  # outside a flow run: the agentrt.metrics logger
    assert any("low context efficiency: step ctx" in r.getMessage() for r in caplog.records)


def test_recommend_lowers_optimal_tokens_to_the_p90_of_referenced_tokens() -> None:
    proposals = recommend(frame(low_history()))
    (p,) = [p for p in proposals if p.agent_id == "ctx"]
    assert (p.kind, p.field, p.proposed, p.runs) == (
        "low_context_efficiency",
        "context.optimal_tokens",
        "1500",  # p90 of 1,100 / 1,200 / 1,300 = 1,280, rounded up to 500
        3,
    )
    assert "p90 of referenced tokens: 1,280 (p90 over 3 runs)" in p.evidence
    assert "context efficiency 15% < 50%" in p.evidence
    # The allocation-only rule would also lower it: one proposal per field, not two.
    assert [q.kind for q in proposals if q.agent_id == "ctx"] == ["low_context_efficiency"]
    # Fewer than min_runs runs: no value proposed (the CLI still warns).
    assert not [p for p in recommend(frame(low_history(2))) if p.agent_id == "ctx"]


runner = CliRunner()


def write(tmp_path: Path, rows: list[dict]) -> Path:
    folder = tmp_path / "metrics" / "runs" / "2026-11-02"
    folder.mkdir(parents=True)
    export_records(frame(rows), "parquet", folder / "history.parquet")
    return tmp_path / "metrics"


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "250"})
    return result.exit_code, result.stdout, result.stderr


def test_cli_summary_warns_below_half(tmp_path: Path) -> None:
    root = write(tmp_path, low_history())
    code, out, _ = invoke("summary", "--path", str(root))
    assert code == 0 and "warning: low context efficiency: ctx had 3,600 of 24,000" in out
    assert "fine had" not in out
    code, out, err = invoke("summary", "--path", str(root), "--json")
    assert code == 0 and "low context efficiency: ctx" in err and out.lstrip().startswith("[")


def test_cli_recommend_never_says_balanced_below_half(tmp_path: Path) -> None:
    one_run = [record("ctx", tokens_delivered=8000, tokens_referenced=0)]
    code, out, _ = invoke("recommend", "--path", str(write(tmp_path / "one", one_run)))
    assert code == 0 and "usage looks balanced" not in out
    assert "low context efficiency: ctx had 0 of 8,000" in out and "(0% < 50%)" in out
    code, out, _ = invoke("recommend", "--path", str(write(tmp_path / "three", low_history())))
    assert "usage looks balanced" not in out and "1500" in out and "p90 over 3 runs" in out
    balanced = [record("fine", tokens_delivered=1000, tokens_referenced=600)]
    code, out, _ = invoke("recommend", "--path", str(write(tmp_path / "ok", balanced)))
    assert "usage looks balanced" in out
