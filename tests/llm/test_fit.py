"""LLM prompts within the grant: inputs first, shrunk in the declared order when they do not
fit, upstream outputs trimmed last, repository context in what is left; a failure only when
even the minimum does not fit. No network: pydantic-ai's FunctionModel records the prompt."""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from pydantic import BaseModel

from agentrt.agents.llm import FRAMING_TOKENS, rank_findings, run_llm_agent, shrink
from agentrt.agents.manifest import AgentManifest
from agentrt.agents.registry import RegisteredAgent
from agentrt.context.budget import BudgetExceededError
from agentrt.context.tokens import count_tokens
from agentrt.flows.allocation import counted_tokens
from tests.llm.test_run import Recorder, make_ctx

SEVERITIES = ["info", "low", "medium", "high", "critical"]


def finding(i: int, severity: str, rule: str = "rule") -> dict[str, Any]:
    return {
        "path": f"pkg/mod{i % 40}.py",
        "line": i,
        "rule": f"{rule}-{i}",
        "severity": severity,
        "message": f"Problem number {i}: " + "this code does something questionable. " * 6,
    }


def many_findings(n: int = 300) -> list[dict[str, Any]]:
    found = [finding(i, SEVERITIES[i % 4]) for i in range(n)]  # no critical among them
    found.insert(n // 2, finding(9999, "critical", rule="sql-injection"))
    return found + found[:50]  # duplicates


def gate_agent(tmp_path: Path, sources: list[str] | None = None) -> RegisteredAgent:
    """An approval-like LLM agent: findings and notes in, a verdict out."""
    manifest = AgentManifest.model_validate(
        {
            "id": "gate",
            "version": "1.0.0",
            "kind": "llm",
            "entrypoint": "agentrt.agents.llm:run_llm_agent",
            "model": "test",
            "prompt": "Decide whether the change may be merged, given the findings.",
            "input": {
                "type": "object",
                "properties": {
                    "repo": {"type": "string"},
                    "task": {"type": "string"},
                    "findings": {"type": "array", "items": {"type": "object"}},
                    "notes": {"type": "string"},
                },
            },
            "output": {
                "type": "object",
                "title": "Verdict",
                "properties": {"approved": {"type": "boolean"}, "reason": {"type": "string"}},
                "required": ["approved", "reason"],
            },
            "context": {"sources": sources or ["repo"], "min_tokens": 500},
        }
    )
    return RegisteredAgent(manifest, str(tmp_path / "gate.yaml"))


VERDICT = {"approved": False, "reason": "critical finding"}


def limited(tokens: int) -> Any:
    ctx = make_ctx(tokens)
    ctx.token_limit = tokens
    return ctx


def recount(recorder: Recorder, ctx: Any) -> int:
    """What the model received, counted again: instructions and user message as received,
    the output schema as sent, plus the framing."""
    _, info = recorder.calls[0]
    schema = ctx.prompt_parts[2]
    assert json.loads(schema)["title"] == "Verdict"
    return (
        count_tokens(info.instructions or "")
        + count_tokens(recorder.user_text())
        + count_tokens(schema)
        + FRAMING_TOKENS
    )


def test_findings_are_deduplicated_and_ranked_by_severity() -> None:
    found = [finding(1, "low"), finding(2, "critical"), finding(1, "low"), finding(3, "high")]
    ranked = rank_findings(found)
    assert [f["severity"] for f in ranked] == ["critical", "high", "low"]
    cut = shrink({"findings": found}, 2, None)["findings"]
    assert [f["line"] for f in cut[:2]] == [2, 3]
    assert cut[2] == "… 1 more left out (token budget)"
    assert shrink("word " * 500, None, 10).endswith("…")
    assert count_tokens(shrink("word " * 500, None, 10)) <= 11


def test_oversized_inputs_are_shrunk_to_the_grant_instead_of_failing(
    tmp_path: Path, repo: Path
) -> None:
    inputs = {
        "repo": str(repo),
        "task": "review",
        "findings": many_findings(),
        "notes": "A long design note. " * 3000,
    }
    recorder = Recorder(VERDICT)
    ctx = limited(2_000)
    output = run_llm_agent(gate_agent(tmp_path), inputs, ctx, model=_model(recorder))
    assert output == VERDICT
    assert len(recorder.calls) == 1  # the model was called: no BudgetExceededError
    assert ctx.notes["prompt_tokens"] <= 2_000
    assert ctx.notes["prompt_shrunk"][0].startswith("inputs: findings deduplicated and ranked")
    user = recorder.user_text()
    assert "sql-injection" in user  # the critical finding survives the cut
    assert "more left out (token budget)" in user
    assert user.count("Problem number") < 300


def test_recorded_prompt_tokens_equal_a_recount_of_the_rendered_prompt(
    tmp_path: Path, repo: Path
) -> None:
    for inputs in (
        {"repo": str(repo), "task": "ratio"},  # fits: context fills the rest
        {"repo": str(repo), "findings": many_findings(), "notes": "x y z " * 4000},  # shrunk
    ):
        recorder = Recorder(VERDICT)
        ctx = limited(2_000)
        run_llm_agent(gate_agent(tmp_path), inputs, ctx, model=_model(recorder))
        counted, _ = counted_tokens(gate_agent(tmp_path).manifest, VERDICT, ctx.prompt_parts)
        assert ctx.notes["prompt_tokens"] == counted == recount(recorder, ctx) <= 2_000
        assert ctx.usage.prompt_tokens == counted  # what the metrics record gets


def test_repository_context_gets_what_the_inputs_leave(tmp_path: Path, repo: Path) -> None:
    small = limited(2_000)
    run_llm_agent(gate_agent(tmp_path), {"repo": str(repo)}, small, model=_model(Recorder(VERDICT)))
    assert small.tokens_delivered and small.tokens_delivered > 0
    big = limited(2_000)
    inputs = {"repo": str(repo), "findings": many_findings()}
    run_llm_agent(gate_agent(tmp_path), inputs, big, model=_model(Recorder(VERDICT)))
    # The context gets what the prompt leaves: all but the small prompt, little of the big.
    assert small.notes["context_budget"] > 1_500
    assert big.notes["context_budget"] < 200 and big.notes["prompt_tokens"] <= 2_000
    assert big.notes["context_budget"] < small.notes["context_budget"]


def test_it_fails_only_when_even_the_minimum_does_not_fit(tmp_path: Path, repo: Path) -> None:
    inputs = {"repo": str(repo), "findings": many_findings()}
    recorder = Recorder(VERDICT)
    with pytest.raises(BudgetExceededError, match=r"instructions and output schema: \d+ tokens"):
        run_llm_agent(gate_agent(tmp_path), inputs, limited(120), model=_model(recorder))
    assert recorder.calls == []


class Gathered(BaseModel):
    summary: str
    files: list[str]


def test_upstream_outputs_named_in_sources_are_rendered_and_counted(
    tmp_path: Path, repo: Path
) -> None:
    upstream = MappingProxyType(
        {"gather": Gathered(summary="UPSTREAM-SUMMARY", files=["pkg/app.py"]), "other": {"x": 1}}
    )
    cases = {
        ("repo", "upstream"): ["### gather", "### other"],
        ("repo", "gather"): ["### gather"],
        ("repo",): [],
    }
    for sources, shown in cases.items():
        recorder = Recorder(VERDICT)
        ctx = limited(2_000)
        ctx.upstream = upstream
        agent = gate_agent(tmp_path, list(sources))
        run_llm_agent(agent, {"repo": str(repo)}, ctx, model=_model(recorder))
        user = recorder.user_text()
        assert ("## Upstream outputs" in user) == bool(shown)
        assert [h for h in ("### gather", "### other") if h in user] == shown
        if shown:
            assert '{"summary":"UPSTREAM-SUMMARY","files":["pkg/app.py"]}' in user
        assert ctx.notes["prompt_tokens"] == recount(recorder, ctx)


def test_upstream_outputs_are_trimmed_only_after_the_inputs(tmp_path: Path, repo: Path) -> None:
    long_summary = "Gathered context summary sentence. " * 200
    ctx = limited(2_000)
    ctx.upstream = MappingProxyType({"gather": {"summary": long_summary}})
    inputs = {"repo": str(repo), "notes": "A long design note. " * 3000}
    recorder = Recorder(VERDICT)
    run_llm_agent(gate_agent(tmp_path, ["repo", "upstream"]), inputs, ctx, model=_model(recorder))
    user = recorder.user_text()
    assert long_summary.strip() in user  # the upstream output is whole
    assert user.count("A long design note.") < 3000  # the inputs were cut
    assert not any(n.startswith("upstream") for n in ctx.notes["prompt_shrunk"])

    tight = limited(900)  # the floor of the inputs is not enough: the upstream is cut too
    tight.upstream = ctx.upstream
    recorder = Recorder(VERDICT)
    run_llm_agent(gate_agent(tmp_path, ["repo", "upstream"]), inputs, tight, model=_model(recorder))
    assert any(n.startswith("upstream outputs") for n in tight.notes["prompt_shrunk"])
    assert tight.notes["prompt_tokens"] <= 900


def _model(recorder: Recorder) -> Any:
    from pydantic_ai.models.function import FunctionModel

    return FunctionModel(recorder)
