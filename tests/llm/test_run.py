"""run_llm_agent with pydantic-ai's TestModel and FunctionModel: no network, real pydantic-ai.

What is checked is what the model is sent (instructions, context, output tool) and what comes
back from it (validated output, retries, usage in the AgentContext).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    ToolCallPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.usage import RequestUsage

from agentrt.agents.agent_context import AgentContext
from agentrt.agents.builtin.llm_review import Input, Output
from agentrt.agents.llm import LLMOutputError, run_llm_agent
from agentrt.agents.manifest import AgentManifest
from agentrt.agents.registry import RegisteredAgent
from agentrt.context.tokens import count_tokens
from tests.llm.conftest import write_tree

REVIEW = {
    "summary": "A bare except hides errors in ratio().",
    "confidence": 0.8,
    "findings": [
        {
            "path": "./pkg/app.py",
            "line": 12,
            "rule": "swallowed-exception",
            "severity": "medium",
            "confidence": "high",
            "message": "Catch ZeroDivisionError instead of everything.",
            "tool": "llm",
        }
    ],
}


def make_ctx(budget: int | None = 6_000) -> AgentContext:
    return AgentContext(
        agent_id="llm_review",
        version="1.0.0",
        step="review",
        workflow="test",
        params={},
        budget_tokens=budget,
        attempt=1,
    )


class Recorder:
    """A FunctionModel body: answers from ``replies`` in order, remembering every request."""

    def __init__(self, *replies: dict[str, Any] | str, usage: RequestUsage | None = None) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[list[ModelMessage], AgentInfo]] = []
        self.usage = usage

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.calls.append((messages, info))
        reply = self.replies[min(len(self.calls), len(self.replies)) - 1]
        args = reply if isinstance(reply, str) else json.dumps(reply)
        response = ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, args)])
        if self.usage is not None:
            response.usage = self.usage
        return response

    def user_text(self, call: int = 0) -> str:
        messages, _ = self.calls[call]
        return "\n".join(
            str(part.content)
            for message in messages
            if isinstance(message, ModelRequest)
            for part in message.parts
            if isinstance(part, UserPromptPart)
        )

    def last_request_text(self, call: int) -> str:
        """Everything the model was told in the request of ``call`` (retry prompts included)."""
        messages, _ = self.calls[call]
        last = messages[-1]
        assert isinstance(last, ModelRequest)
        return "\n".join(str(getattr(part, "content", "")) for part in last.parts)


def test_valid_structured_output_is_checked_and_normalised(
    llm_review: RegisteredAgent, repo: Path
) -> None:
    ctx = make_ctx()
    model = FunctionModel(Recorder(REVIEW))
    output = run_llm_agent(llm_review, Input(repo=str(repo)), ctx, model=model)
    assert isinstance(output, Output)
    (finding,) = output.findings
    assert (finding.path, finding.line, finding.tool) == ("pkg/app.py", 12, "llm_review")
    assert output.counts.medium == 1 and output.confidence == 0.8
    dumped = output.model_dump(mode="json")
    assert dumped["counts"] == {"critical": 0, "high": 0, "medium": 1, "low": 0, "info": 0}
    assert Output.model_validate(dumped) == output  # the runtime re-validates the dump


def test_test_model_output_goes_through_the_same_validation(
    llm_review: RegisteredAgent, repo: Path
) -> None:
    output = run_llm_agent(
        llm_review, Input(repo=str(repo)), make_ctx(), model=TestModel(custom_output_args=REVIEW)
    )
    assert isinstance(output, Output) and output.findings[0].path == "pkg/app.py"
    # TestModel's own schema-valid filler passes too (it reports no findings).
    filler = run_llm_agent(llm_review, Input(repo=str(repo)), make_ctx(), model=TestModel())
    assert isinstance(filler, Output) and filler.findings == [] and 0 <= filler.confidence <= 1


def test_the_prompt_holds_the_selected_context_and_the_instructions(
    llm_review: RegisteredAgent, repo: Path
) -> None:
    recorder = Recorder(REVIEW)
    ctx = make_ctx()
    run_llm_agent(
        llm_review,
        Input(repo=str(repo), files=["pkg/app.py"], task="error handling in ratio"),
        ctx,
        model=FunctionModel(recorder),
    )
    _, info = recorder.calls[0]
    assert info.instructions is not None and "meticulous senior" in info.instructions
    user = recorder.user_text()
    assert "## Task\n\nerror handling in ratio" in user
    assert "## pkg/app.py:1-" in user and "    except:\n        return None\n" in user
    assert "pkg/util.py" not in user  # only the requested files
    assert ctx.tokens_delivered is not None and ctx.tokens_delivered > 0
    assert ctx.tokens_delivered <= count_tokens(user)
    tool = info.output_tools[0]
    properties = tool.parameters_json_schema["properties"]
    assert set(properties) == {"summary", "findings", "confidence", "triage"}  # not counts/model


def test_a_task_that_matches_nothing_gets_the_overview(
    llm_review: RegisteredAgent, repo: Path
) -> None:
    recorder = Recorder(REVIEW)
    ctx = make_ctx()
    run_llm_agent(
        llm_review,
        Input(repo=str(repo), task="kubernetes helm"),
        ctx,
        model=FunctionModel(recorder),
    )
    assert "## pkg/app.py:1-" in recorder.user_text() and "(skeleton)" in recorder.user_text()
    assert ctx.tokens_delivered and ctx.tokens_delivered > 0


@pytest.fixture
def big_repo(tmp_path: Path) -> Path:
    """Forty modules that all match the task: far more than a small slice holds."""
    files = {}
    for i in range(40):
        body = "\n".join(
            f"def parse_record_{i}_{j}(raw):\n"
            f"    '''Parse record {j} of module {i}; the parser rejects bad input.'''\n"
            f"    fields = raw.split(',')\n"
            f"    return {{'id': fields[0], 'value': int(fields[{j % 3}])}}\n"
            for j in range(8)
        )
        files[f"parsers/mod{i}.py"] = body
    return write_tree(tmp_path / "big", files)


@pytest.mark.parametrize("budget", [2_000, 5_000])
def test_the_whole_prompt_fits_the_token_slice(
    llm_review: RegisteredAgent, big_repo: Path, budget: int
) -> None:
    recorder = Recorder({"summary": "fine", "confidence": 0.5, "findings": []})
    ctx = make_ctx(budget)
    run_llm_agent(
        llm_review,
        Input(repo=str(big_repo), task="parse record rejects bad input"),
        ctx,
        model=FunctionModel(recorder),
    )
    _, info = recorder.calls[0]
    tool = info.output_tools[0]
    sent = (
        count_tokens(info.instructions or "")
        + count_tokens(recorder.user_text())
        + count_tokens(json.dumps(tool.parameters_json_schema))
        + count_tokens(f"{tool.name} {tool.description}")
    )
    assert sent <= budget
    assert ctx.tokens_delivered and ctx.tokens_delivered <= ctx.notes["context_budget"] < budget
    # The slice is used, not wasted: most of what the context was allowed is delivered.
    assert ctx.tokens_delivered > 0.5 * ctx.notes["context_budget"]


def test_without_a_granted_slice_the_manifest_optimum_applies(
    llm_review: RegisteredAgent, big_repo: Path
) -> None:
    ctx = make_ctx(budget=None)
    recorder = Recorder({"summary": "fine", "confidence": 0.5, "findings": []})
    run_llm_agent(
        llm_review,
        Input(repo=str(big_repo), task="parse record"),
        ctx,
        model=FunctionModel(recorder),
    )
    assert ctx.notes["prompt_budget"] == llm_review.manifest.context.optimal_tokens == 12_000
    assert 6_000 < ctx.tokens_delivered <= 12_000


def test_provider_usage_is_recorded_in_the_context(llm_review: RegisteredAgent, repo: Path) -> None:
    ctx = make_ctx()
    recorder = Recorder(REVIEW, usage=RequestUsage(input_tokens=1234, output_tokens=56))
    run_llm_agent(llm_review, Input(repo=str(repo)), ctx, model=FunctionModel(recorder))
    assert (ctx.llm_input_tokens, ctx.llm_output_tokens) == (1234, 56)


def test_invalid_output_is_sent_back_and_the_retry_is_used(
    llm_review: RegisteredAgent, repo: Path
) -> None:
    recorder = Recorder(
        '{"summary": "truncated", "confidence": ',  # broken JSON
        {"summary": "x", "confidence": 7, "findings": []},  # confidence out of range
        REVIEW,
        usage=RequestUsage(input_tokens=100, output_tokens=10),
    )
    ctx = make_ctx()
    output = run_llm_agent(llm_review, Input(repo=str(repo)), ctx, model=FunctionModel(recorder))
    assert isinstance(output, Output) and output.findings[0].line == 12
    assert len(recorder.calls) == 3
    assert "Invalid JSON" in recorder.last_request_text(1)
    assert "less than or equal to 1" in recorder.last_request_text(2)
    assert (ctx.llm_input_tokens, ctx.llm_output_tokens) == (300, 30)  # all three requests


def test_findings_at_places_that_do_not_exist_are_sent_back(
    llm_review: RegisteredAgent, repo: Path
) -> None:
    invented = {
        **REVIEW,
        "findings": [
            {**REVIEW["findings"][0], "path": "pkg/missing.py"},
            {**REVIEW["findings"][0], "line": 999},
            {**REVIEW["findings"][0], "path": "../outside.py"},
        ],
    }
    recorder = Recorder(invented, REVIEW)
    output = run_llm_agent(
        llm_review, Input(repo=str(repo)), make_ctx(), model=FunctionModel(recorder)
    )
    assert len(recorder.calls) == 2 and len(output.findings) == 1
    feedback = recorder.last_request_text(1)
    assert "'pkg/missing.py' is not a file of the repository" in feedback
    lines = len((repo / "pkg/app.py").read_text().splitlines())
    assert f"line 999 is past the end of pkg/app.py ({lines} lines)" in feedback
    assert "'../outside.py' is not a file" in feedback


def test_output_that_never_validates_raises_and_still_records_usage(
    llm_review: RegisteredAgent, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTRT_LLM_OUTPUT_RETRIES", "1")
    recorder = Recorder("not json", usage=RequestUsage(input_tokens=10, output_tokens=1))
    ctx = make_ctx()
    with pytest.raises(LLMOutputError, match=r"after 1 retries \(AGENTRT_LLM_OUTPUT_RETRIES\)"):
        run_llm_agent(llm_review, Input(repo=str(repo)), ctx, model=FunctionModel(recorder))
    assert len(recorder.calls) == 2
    assert (ctx.llm_input_tokens, ctx.llm_output_tokens) == (20, 2)


def generic_agent(tmp_path: Path, **fields: Any) -> RegisteredAgent:
    """An LLM agent with no code at all: inline JSON Schema output, the generic entrypoint."""
    manifest = AgentManifest.model_validate(
        {
            "id": "summarise",
            "version": "1.0.0",
            "kind": "llm",
            "entrypoint": "agentrt.agents.llm:run_llm_agent",
            "model": "test",
            "prompt": "Summarise {repo} for: {task}\n\nCode:\n{context}",
            "input": {
                "type": "object",
                "properties": {"repo": {"type": "string"}, "task": {"type": "string"}},
                "required": ["repo"],
            },
            "output": {
                "type": "object",
                "title": "Summary",
                "properties": {"summary": {"type": "string"}, "score": {"type": "integer"}},
                "required": ["summary", "score"],
            },
            **fields,
        }
    )
    return RegisteredAgent(manifest, str(tmp_path / "summarise.yaml"))


def test_a_manifest_only_agent_runs_on_the_offline_test_model(repo: Path, tmp_path: Path) -> None:
    agent = generic_agent(tmp_path)
    output = run_llm_agent(agent, {"repo": str(repo), "task": "ratio"}, make_ctx())
    assert isinstance(output, dict) and set(output) == {"summary", "score"}
    assert isinstance(output["score"], int)


def test_context_placed_by_the_template_keeps_its_braces(repo: Path, tmp_path: Path) -> None:
    recorder = Recorder({"summary": "s", "score": 1})
    run_llm_agent(
        generic_agent(tmp_path),
        {"repo": str(repo), "task": "Cache get items"},
        make_ctx(),
        model=FunctionModel(recorder),
    )
    messages, info = recorder.calls[0]
    assert info.instructions is not None
    assert info.instructions.startswith(f"Summarise {repo} for: Cache get items\n\nCode:\n")
    assert "<untrusted-data" in info.instructions  # the code, fenced as data
    assert "self.items = {}" in info.instructions  # code braces are not a template
    assert "## Context" not in recorder.user_text()  # placed once, by the template
    assert not any(
        isinstance(p, SystemPromptPart) for m in messages for p in getattr(m, "parts", [])
    )


def test_a_prompt_over_the_workflows_limit_fails_before_the_model_is_called(
    llm_review: RegisteredAgent, repo: Path
) -> None:
    from agentrt.context.budget import BudgetExceededError

    recorder = Recorder(REVIEW)
    ctx = make_ctx(300)
    ctx.token_limit = 300  # the instructions and output schema alone are more
    with pytest.raises(BudgetExceededError, match="more than the 300 it was granted"):
        run_llm_agent(llm_review, Input(repo=str(repo)), ctx, model=FunctionModel(recorder))
    assert recorder.calls == []


def test_the_runtime_counts_the_whole_prompt_within_the_grant(
    llm_review: RegisteredAgent, repo: Path
) -> None:
    from agentrt.flows.allocation import counted_tokens

    ctx = make_ctx(3_000)
    ctx.token_limit = 3_000
    run_llm_agent(llm_review, Input(repo=str(repo)), ctx, model=FunctionModel(Recorder(REVIEW)))
    counted, what = counted_tokens(llm_review.manifest, {}, ctx.prompt_parts)
    assert what == "its prompt" and ctx.tokens_delivered is not None
    assert ctx.tokens_delivered < counted <= 3_000


def _answer(summary: str, *findings: tuple[str, int]) -> dict[str, Any]:
    return {
        "summary": summary,
        "confidence": 0.5,
        "findings": [
            {**REVIEW["findings"][0], "path": path, "line": line} for path, line in findings
        ],
    }


def test_referenced_tokens_are_the_delivered_items_the_answer_cites(
    llm_review: RegisteredAgent, repo: Path
) -> None:
    def referenced(answer: dict[str, Any]) -> tuple[int | None, int | None]:
        ctx = make_ctx()
        run_llm_agent(
            llm_review,
            Input(repo=str(repo), task="ratio double"),
            ctx,
            model=FunctionModel(Recorder(answer)),
        )
        return ctx.tokens_referenced, ctx.tokens_delivered

    nothing, delivered = referenced(_answer("All fine."))
    assert delivered and nothing == 0  # delivered but unused: 0, not unknown
    app, _ = referenced(_answer("A bare except.", ("pkg/app.py", 12)))
    assert app is not None and 0 < app < delivered
    # Naming a function a delivered item defines cites that item too.
    both, _ = referenced(_answer("double() is fine.", ("pkg/app.py", 12)))
    assert both is not None and app < both <= delivered
    # The same in prose: "pkg/app.py:12" in the summary.
    prose, _ = referenced(_answer("See pkg/app.py:12."))
    assert prose == app
