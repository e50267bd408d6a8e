"""The token contract, enforced by the runtime: every attempt delivers at most its grant
(counted by the runtime from what it delivered), a grant of 0 means the agent does not run,
and ``agentrt workflows show`` says who gets what."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from agentrt.agents.agent_context import AgentContext
from agentrt.agents.registry import Registry
from agentrt.context.budget import (
    BudgetExceededError,
    BudgetRequest,
    BudgetTooSmallError,
    allocate,
)
from agentrt.context.tokens import count_tokens
from agentrt.flows.allocation import counted_tokens
from agentrt.flows.attempt import RunInfo
from agentrt.flows.lifecycle import agent_spec, run_agent
from agentrt.flows.results import RunResult
from agentrt.flows.workflow import WorkflowManifest
from tests.runtime.helpers import FIXTURE_AGENTS, write

BUDGET_AGENTS = Path(__file__).resolve().parent / "budget_agents"
sys.path.insert(0, str(BUDGET_AGENTS))
from bg_agents import make_text  # noqa: E402

runner = CliRunner()
A = ["-A", str(FIXTURE_AGENTS), "-A", str(BUDGET_AGENTS)]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover([FIXTURE_AGENTS, BUDGET_AGENTS], builtin=False, entry_points=False)


def give(agent: str = "give", name: str | None = None, **inputs: Any) -> dict[str, Any]:
    values = {"name": {"value": name or agent}, **{k: {"value": v} for k, v in inputs.items()}}
    return {"agent": agent, "id": name or agent, "inputs": values}


def run(
    registry: Registry, workdir: Path, steps: list[dict[str, Any]], total: int | None
) -> RunResult:
    from agentrt.flows.run import run_workflow

    spec: dict[str, Any] = {
        "name": "budget-wf",
        "params": {"workdir": {"type": "path", "default": str(workdir)}},
        "steps": steps,
    }
    if total is not None:
        spec["budget"] = {"total_tokens": total}
    return run_workflow(WorkflowManifest.model_validate(spec), registry=registry)


def calls(workdir: Path) -> list[dict[str, Any]]:
    path = workdir / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- counting what was delivered ----------------------------------------------------------


def test_counted_tokens_follows_the_declared_field(registry: Registry) -> None:
    m = registry.get("give").manifest
    a, b = make_text(300), make_text(500)
    output = {"name": "x", "grant": 1, "limit": 1, "items": [{"path": "a", "text": a}, {"text": b}]}
    assert counted_tokens(m, output) == (count_tokens(a) + count_tokens(b), "output field items")
    assert count_tokens(a) == 300 and count_tokens(b) == 500
    # Strings count as they are, other values as JSON; a missing field delivers nothing.
    assert counted_tokens(m, {"items": [a, b]})[0] == 800
    assert counted_tokens(m, {"items": None})[0] == 0
    # Without context.delivered the whole output counts.
    whole = registry.get("give_whole").manifest
    counted, what = counted_tokens(whole, output)
    assert what == "its whole output" and counted > 800


# -- over-delivery ------------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_over_delivery_fails_the_attempt_with_the_numbers(
    registry: Registry, tmp_path: Path
) -> None:
    # give: min 1,000, optimal 2,000 → granted 2,000 of 5,000; it delivers 3,000.
    result = run(registry, tmp_path, [give(tokens=3000)], total=5000)
    assert result.state == "failed"
    (error,) = result.errors
    assert error.error_type == "BudgetExceededError" and error.phase == "validate"
    assert "give@1.0.0 delivered 3,000 tokens (counted in output field items)" in error.message
    assert "granted 2,000" in error.message
    assert error.attempts == 1  # never retried, though the manifest retries ValueError
    assert len(calls(tmp_path)) == 1
    assert "deliver no more than" in (error.suggestion or "")


@pytest.mark.usefixtures("prefect_harness")
def test_the_agents_own_figure_is_not_trusted(registry: Registry, tmp_path: Path) -> None:
    # It says 100 but delivers 2,500: the runtime's count decides.
    result = run(registry, tmp_path, [give(tokens=2500, report=100)], total=5000)
    assert result.state == "failed"
    assert "delivered 2,500 tokens" in result.errors[0].message


@pytest.mark.usefixtures("prefect_harness")
def test_delivering_the_grant_passes_and_no_budget_enforces_nothing(
    registry: Registry, tmp_path: Path
) -> None:
    ok = run(registry, tmp_path / "a", [give()], total=5000)
    assert ok.state == "completed", ok.errors
    out = ok.steps["give"].output
    assert out["grant"] == out["limit"] == 2000
    assert counted_tokens(registry.get("give").manifest, out)[0] == 2000
    # No workflow budget: the grant is the agent's optimal, a default, and not a limit.
    free = run(registry, tmp_path / "b", [give(tokens=3000)], total=None)
    assert free.state == "completed", free.errors
    assert free.steps["give"].output["grant"] == 2000
    assert free.steps["give"].output["limit"] is None


# -- a grant of 0 -------------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_an_optional_agent_granted_nothing_is_skipped_and_never_called(
    registry: Registry, tmp_path: Path
) -> None:
    steps = [
        give(),  # priority 10: its minimum 1,000 first, then 500 more
        {**give("give_low"), "optional": True},  # priority 0: min 1,000 > the 500 left
        give("delta", name="plain"),  # asks for no tokens: runs as always
    ]
    result = run(registry, tmp_path, steps, total=1500)
    assert result.state == "completed", result.errors
    low = result.steps["give_low"]
    assert low.state == "skipped" and low.tokens_allocated == 0
    assert low.reason is not None and low.reason.startswith("no token budget: got nothing")
    assert "1,000" in low.reason
    assert result.steps["plain"].state == "completed"
    assert result.steps["plain"].tokens_allocated is None
    assert sorted(c["name"] for c in calls(tmp_path)) == ["give", "plain"]


@pytest.mark.usefixtures("prefect_harness")
def test_a_required_agent_granted_nothing_stops_the_run_before_any_agent_starts(
    registry: Registry, tmp_path: Path
) -> None:
    steps = [give("delta", name="plain"), give(), give("give_low")]
    with pytest.raises(BudgetTooSmallError) as info:
        run(registry, tmp_path, steps, total=1500)
    problems = info.value.problems
    assert len(problems) == 3  # the headline, give_low, what to change
    assert "token budget of 1,500 grants nothing to 1 required agent" in problems[0]
    assert "give_low (give_low@1.0.0, priority 0): min 1,000, optimal 3,000 tokens" in problems[1]
    assert "raise budget.total_tokens to at least 2,000" in problems[2]
    assert calls(tmp_path) == []
    assert not info.value.retryable and info.value.hint


def workflow_file(tmp_path: Path, total: int, optional: bool = False) -> Path:
    return write(
        tmp_path / "wf.yaml",
        f"""
        name: budget-cli
        params:
          workdir: {{type: path, required: true}}
        budget: {{total_tokens: {total}}}
        steps:
          - {{agent: give}}
          - {{agent: give_low, optional: {str(optional).lower()}}}
          - {{agent: delta}}
        """,
    )


def test_agentrt_run_exits_1_with_one_line_per_problem(tmp_path: Path) -> None:
    path = workflow_file(tmp_path, 1500)
    result = runner.invoke(app(), ["run", str(path), "-p", f"workdir={tmp_path}", *A])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("error: workflow budget-cli")
    assert "give_low" in lines[1] and "min 1,000, optimal 3,000" in lines[1]
    assert "Traceback" not in result.output
    assert calls(tmp_path) == []


def test_workflows_show_prints_the_allocation_and_flags_zero_grants(tmp_path: Path) -> None:
    path = workflow_file(tmp_path, 1500)
    shown = runner.invoke(app(), ["workflows", "show", str(path), "--json", *A])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    alloc = data["allocation"]
    assert set(alloc) == {"give", "give_low"}  # delta asks for no tokens
    assert alloc["give"]["tokens"] == 1500 and alloc["give"]["runs"]
    assert alloc["give_low"]["tokens"] == 0 and not alloc["give_low"]["runs"]
    assert "did not fit" in alloc["give_low"]["reason"]
    assert len(data["budget_problems"]) == 3
    text = runner.invoke(app(), ["workflows", "show", str(path), *A])
    assert "give_low: 0 tokens" in text.stdout and "the run cannot start" in text.stdout
    optional = workflow_file(tmp_path, 1500, optional=True)
    text = runner.invoke(app(), ["workflows", "show", str(optional), *A])
    assert "0 tokens: skipped" in text.stdout


def app() -> Any:
    from agentrt.cli import app as cli

    return cli


# -- no default budget in place of a grant ------------------------------------------------


def ctx_with(grant: int | None, limit: int | None) -> AgentContext:
    return AgentContext("a", "1", "s", "w", {}, grant, 1, token_limit=limit)


def test_context_gathering_uses_the_grant_never_the_default() -> None:
    from agentrt.agents.builtin.context_gathering import DEFAULT_BUDGET, budget_of

    assert budget_of(None, ctx_with(1234, 1234)) == 1234
    assert budget_of(None, ctx_with(3000, None)) == 3000
    assert budget_of(20_000, ctx_with(3000, 3000)) == 3000  # the input cannot raise a limit
    assert budget_of(20_000, ctx_with(3000, None)) == 20_000  # no workflow budget
    assert budget_of(500, ctx_with(3000, 3000)) == 500
    assert budget_of(None, ctx_with(None, None)) == DEFAULT_BUDGET  # no grant at all
    assert budget_of(None, None) == DEFAULT_BUDGET


def test_context_gathering_delivers_within_a_small_grant(tmp_path: Path) -> None:
    from agentrt.agents.builtin.context_gathering import Input, run

    repo = tmp_path / "repo"
    for i in range(30):
        write(
            repo / f"pkg/m{i}.py", "\n".join(f"def f{j}(x):\n    return x + {j}" for j in range(60))
        )
    ctx = ctx_with(2000, 2000)
    out = run(Input(repo=str(repo), task="f1 returns", budget=20_000), ctx)
    assert out.budget == 2000
    delivered = sum(count_tokens(i.text) for i in out.items)
    assert 0 < delivered <= 2000 and ctx.tokens_delivered == out.tokens == delivered


# -- a real attempt, and the property ------------------------------------------------------


def attempt(registry: Registry, agent: str, tokens: int, limit: int | None, tmp: Path) -> Any:
    spec = agent_spec(registry.get(agent))
    info = RunInfo(workflow="w", step=agent, token_limit=limit)
    return run_agent(spec, {"workdir": str(tmp), "tokens": tokens}, limit, info)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    agents=st.lists(
        st.tuples(
            st.integers(0, 3000),  # min
            st.integers(0, 3000),  # optimal above min
            st.integers(-2, 2),  # priority
            st.integers(0, 4000),  # what the agent tries to deliver
        ),
        min_size=1,
        max_size=6,
    ),
    total=st.integers(0, 9000),
)
def test_no_workflow_ever_delivers_more_than_granted(
    registry: Registry, tmp_path: Path, agents: list[tuple[int, int, int, int]], total: int
) -> None:
    """Random workflows (agents with random min/optimal/priority, a random total), a
    deterministic context agent that delivers whatever it likes: every attempt the runtime
    lets through delivered at most its grant (recounted from the delivered text), every
    over-delivery fails, agents granted 0 do not run, and the run stays within its total."""
    requests = [
        BudgetRequest(name=f"s{i}", priority=p, min_tokens=lo, optimal_tokens=lo + extra)
        for i, (lo, extra, p, _want) in enumerate(agents)
    ]
    grants = allocate(requests, total).grants
    manifest = registry.get("give").manifest
    delivered_total = 0
    for i, (*_, want) in enumerate(agents):
        grant = grants[f"s{i}"].tokens
        if grant == 0:
            continue  # the driver never starts it (tested above with real runs)
        try:
            out = attempt(registry, "give", want, grant, tmp_path)
        except BudgetExceededError as exc:
            assert want > grant and f"granted {grant:,}" in str(exc)
            continue
        counted = counted_tokens(manifest, out["output"])[0]
        assert counted == sum(count_tokens(p["text"]) for p in out["output"]["items"])
        assert counted <= grant and want <= grant
        delivered_total += counted
    assert delivered_total <= total
