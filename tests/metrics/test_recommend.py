"""Summary figures and manifest recommendations on constructed run histories."""

from __future__ import annotations

import pandas as pd
import pytest

from agentrt.agents.manifest import AgentManifest
from agentrt.flows.metrics import Thresholds, invocations, recommend, summarize
from tests.metrics.builders import frame, record


def manifest(agent_id: str, **fields: object) -> AgentManifest:
    return AgentManifest.model_validate(
        {"id": agent_id, "version": "1.0.0", "entrypoint": "m:f", **fields}
    )


def budgeted(agent: str, run: int, allocated: int, delivered: int) -> dict:
    return record(agent, run=run, tokens_allocated=allocated, tokens_delivered=delivered)


def kinds(proposals: list) -> list[tuple[str, str]]:
    return [(p.agent_id, p.kind) for p in proposals]


# -- summary -------------------------------------------------------------------------
def test_summary_per_agent() -> None:
    rows = frame(
        [
            record("a", run=1, wall_seconds=1.0, tokens_delivered=1000, tokens_referenced=250),
            record("a", run=2, attempt=1, state="failed", step_state="completed", final=False,
                   wall_seconds=2.0, error_type="ConnectionError"),
            record("a", run=2, attempt=2, wall_seconds=3.0, tokens_delivered=1000,
                   tokens_referenced=750, llm_input_tokens=100, llm_output_tokens=10),
            record("a", run=3, state="cached", wall_seconds=0.1),
            record("a", run=4, state="skipped"),
            record("b", run=1, step="s", state="failed", step_state="fallback", final=False),
            record("c", run=1, step="s", state="fallback", step_state="fallback",
                   fallback_used=True, fallback_for="b@1.0.0"),
        ]
    )  # fmt: skip
    table = summarize(rows).set_index("agent_id")
    a = table.loc["a"]
    assert (a["runs"], a["skipped"], a["attempts"]) == (3, 1, 3)
    assert a["success_rate"] == 1.0
    assert a["retry_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert a["cache_hit_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert a["fallback_rate"] == 0.0
    # Wall time is over executed attempts only (the cache hit's fetch time is not a run).
    assert a["p50_wall_s"] == 2.0 and a["p95_wall_s"] == pytest.approx(2.9)
    assert a["context_efficiency"] == 0.5  # (250 + 750) / (1000 + 1000)
    assert (a["llm_input_tokens"], a["llm_output_tokens"]) == (100, 10)
    b, c = table.loc["b"], table.loc["c"]
    assert (b["success_rate"], b["fallback_rate"]) == (0.0, 1.0)
    assert c["success_rate"] == 1.0 and pd.isna(c["fallback_rate"])  # never the primary
    assert pd.isna(b["context_efficiency"]) and pd.isna(b["llm_input_tokens"])


def test_summary_and_invocations_of_nothing() -> None:
    assert summarize(frame([])).empty
    assert invocations(frame([])).empty
    assert recommend(frame([])) == []


# -- optimal_tokens ------------------------------------------------------------------
def test_agent_using_far_less_than_allocated_gets_a_lower_optimal_tokens() -> None:
    used = [1000, 1200, 1100, 1400, 1300]
    rows = frame([budgeted("ctx", run, 8000, u) for run, u in enumerate(used, 1)])
    ctx = manifest("ctx", context={"optimal_tokens": 8000}, cache={"enabled": False})
    (p,) = recommend(rows, {"ctx": ctx})
    assert (p.kind, p.field, p.current) == (
        "lower_optimal_tokens",
        "context.optimal_tokens",
        "8000",
    )
    assert p.proposed == "2000"  # p95 used 1,380 x 1.25 headroom, rounded up to 500
    assert "1,380 of a median 8,000" in p.evidence and p.runs == 5
    # Without the manifest the proposal stands on the records; the current value is unknown.
    (p,) = recommend(rows, thresholds=Thresholds(cache_min_runs=10))
    assert p.current is None and p.proposed == "2000"


def test_agent_hitting_its_ceiling_gets_a_higher_optimal_tokens() -> None:
    used = [4000, 3990, 3900, 2000]
    rows = frame([budgeted("big", run, 4000, u) for run, u in enumerate(used, 1)])
    (p,) = recommend(rows, {"big": manifest("big", context={"optimal_tokens": 4000})})
    assert (p.kind, p.current, p.proposed) == ("raise_optimal_tokens", "4000", "6000")
    assert "in 3 of 4 runs" in p.evidence and "budget.total_tokens" in p.evidence


def test_balanced_or_thinly_observed_budgets_are_left_alone() -> None:
    balanced = [budgeted("ok", run, 4000, 2400 + run * 100) for run in range(1, 5)]
    new = [budgeted("new", run, 8000, 100) for run in (1, 2)]  # too few runs to judge
    failed = [
        record("bad", run=run, state="failed", tokens_allocated=8000, tokens_delivered=10)
        for run in range(1, 6)
    ]
    assert recommend(frame(balanced + new + failed)) == []


# -- retries -------------------------------------------------------------------------
def _attempts(agent: str, run: int, outcomes: str) -> list[dict]:
    """``outcomes`` like ``"ffs"``: failed, failed, then succeeded (attempts 1, 2, 3)."""
    rows = []
    for n, outcome in enumerate(outcomes, 1):
        last = n == len(outcomes)
        rows.append(
            record(
                agent,
                run=run,
                attempt=n,
                state="completed" if outcome == "s" else "failed",
                step_state="completed" if outcomes[-1] == "s" else "failed",
                error_type=None if outcome == "s" else "ConnectionError",
                final=last,
            )
        )
    return rows


def test_agent_whose_retries_mostly_fail_is_a_fallback_candidate() -> None:
    rows = frame(_attempts("flaky", 1, "ffff") + _attempts("flaky", 2, "ffff")
                 + _attempts("flaky", 3, "fs"))  # fmt: skip
    (p,) = recommend(rows, {"flaky": manifest("flaky", retries={"max": 3})})
    assert (p.kind, p.field, p.current) == ("add_fallback", "fallbacks", "[]")
    assert p.proposed == "add a fallback agent; retries.max: 1"
    assert p.evidence.startswith("6 of 7 retries failed (ConnectionError x6)")
    assert "at most on attempt 2" in p.evidence and p.runs == 7
    # It already has a fallback: then the retries are what to cut.
    with_fallback = manifest("flaky", retries={"max": 3}, fallbacks=["spare"])
    (p,) = recommend(rows, {"flaky": with_fallback})
    assert (p.field, p.current, p.proposed) == ("retries.max", "3", "1")


def test_retries_that_pay_off_or_are_too_few_are_left_alone() -> None:
    paying = [r for run in range(1, 5) for r in _attempts("ok", run, "fs")]
    few = _attempts("rare", 1, "fff")  # two retries: not enough to judge
    assert recommend(frame(paying + few)) == []


# -- cache ---------------------------------------------------------------------------
def test_agent_whose_cache_never_hits() -> None:
    never = [record("never", run=run) for run in range(1, 6)]
    hits = [record("hits", run=run) for run in range(1, 5)] + [record("hits", run=5,
                                                                      state="cached")]  # fmt: skip
    off = [record("off", run=run) for run in range(1, 8)]
    few = [record("few", run=run) for run in range(1, 4)]
    manifests = {"off": manifest("off", cache={"enabled": False}), "never": manifest("never")}
    (p,) = recommend(frame(never + hits + off + few), manifests)
    assert (p.agent_id, p.kind, p.field, p.current) == (
        "never",
        "disable_cache",
        "cache.enabled",
        "true",
    )
    assert p.proposed.startswith("false") and "0 cache hits in 5 runs over 5 day(s)" in p.evidence


def test_thresholds_are_adjustable() -> None:
    rows = frame([record("x", run=run) for run in range(1, 3)])
    assert recommend(rows) == []
    assert kinds(recommend(rows, thresholds=Thresholds(cache_min_runs=2))) == [
        ("x", "disable_cache")
    ]
