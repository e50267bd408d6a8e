"""The shipped review-chain workflow with its LLM reviewer behind a real OpenAI-compatible
HTTP server (tests/llm/fake_openai.py, started by the test; the real openai SDK through
pydantic-ai's OpenAIChatModel): the model's verdict is used by final_approval, invalid output
is sent back and the valid answer used, and a server that keeps failing leaves the review to
the deterministic fallback while the run completes with its report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from agentrt.flows.results import RunResult
from tests.llm.fake_openai import FakeOpenAI, Script, error, tool_call
from tests.llm.test_review_chain import SHELL_CALL_LINE, change, review  # noqa: F401

pytestmark = pytest.mark.usefixtures("prefect_harness")

#: The model's verdict: a critical problem the static analysers do not report.
CRITICAL = {
    "summary": "run() hands a caller's string to a shell.",
    "confidence": 0.8,
    "findings": [
        {
            "path": "pkg/shell.py",
            "line": SHELL_CALL_LINE,
            "rule": "command-injection",
            "severity": "critical",
            "confidence": "high",
            "message": "deploy() passes a target name into a shell command; pass a list.",
            "tool": "llm",
        }
    ],
    "triage": [
        {
            "path": "pkg/shell.py",
            "line": SHELL_CALL_LINE,
            "rule": "B602",
            "verdict": "confirmed",
            "reason": "cmd reaches the shell unquoted.",
        }
    ],
}


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeOpenAI]:
    """Point the shipped llm_review (openai:gpt-4o-mini) at a FakeOpenAI server."""
    monkeypatch.setenv("AGENTRT_LLM_MAX_RETRIES", "1")
    monkeypatch.setenv("AGENTRT_LLM_OUTPUT_RETRIES", "1")

    def start(*scripts: Script) -> FakeOpenAI:
        fake = FakeOpenAI(*scripts)
        monkeypatch.setenv("AGENTRT_LLM_BASE_URL", fake.base_url)
        return fake

    return start


def run_chain(repo: Path, base: str) -> RunResult:
    from agentrt.flows.run import run_workflow

    # max_high 5: the static findings (B602 is high) alone would be approved.
    return run_workflow("review-chain", {"repo": str(repo), "since": base, "max_high": 5})


def test_the_model_verdict_is_used_by_final_approval(
    change: tuple[Path, str],  # noqa: F811
    serve: Callable[..., FakeOpenAI],
) -> None:
    repo, base = change
    with serve(tool_call(CRITICAL)) as fake:
        result = run_chain(repo, base)
    assert result.state == "completed", result.errors
    step = result.steps["llm_review"]
    assert step.state == "completed" and step.used_agent is None and step.chunks is None
    assert len(fake.requests) == 1 and fake.requests[0].body["model"] == "gpt-4o-mini"
    sent = fake.requests[0].text()
    assert "— changed: run" in sent and "B602" in sent  # the hunk and the static findings
    gate = result.outputs["final_approval"]
    assert gate["approved"] is False  # only the model's critical finding blocks
    assert gate["counts"]["critical"] == 1
    assert [f["rule"] for f in gate["blocking"] if f["severity"] == "critical"] == [
        "command-injection"
    ]
    assert gate["llm_triage"].startswith("LLM triage: 1 static findings confirmed")
    markdown = Path(result.report_paths["markdown"]).read_text()
    assert "Reviewed by `openai:gpt-4o-mini`" in markdown and "command-injection" in markdown


def test_invalid_output_is_sent_back_and_the_valid_answer_used(
    change: tuple[Path, str],  # noqa: F811
    serve: Callable[..., FakeOpenAI],
) -> None:
    repo, base = change
    invalid = {"summary": "Looks fine.", "findings": "none", "confidence": 2}
    with serve(tool_call(invalid), tool_call(CRITICAL)) as fake:
        result = run_chain(repo, base)
    assert result.state == "completed", result.errors
    step = result.steps["llm_review"]
    assert step.state == "completed" and step.used_agent is None, step.reason
    assert len(fake.requests) == 2
    # The second request sends the validation errors back with the conversation.
    retry = json.dumps(fake.requests[1].body["messages"][-1])
    assert "findings" in retry and "confidence" in retry
    assert [f["rule"] for f in result.outputs["llm_review"]["findings"]] == ["command-injection"]
    assert result.outputs["final_approval"]["approved"] is False


def test_a_server_that_keeps_failing_leaves_the_review_to_the_fallback(
    change: tuple[Path, str],  # noqa: F811
    serve: Callable[..., FakeOpenAI],
) -> None:
    repo, base = change
    with serve(error(503, "overloaded")) as fake:
        result = run_chain(repo, base)
    assert result.state == "completed", result.errors
    assert result.no_model_line is None  # a failure, not a missing configuration
    step = result.steps["llm_review"]
    assert step.state == "fallback" and step.used_agent == "code_review@1.0.0"
    assert step.fallback_cause == "failure" and "HTTP 503" in step.reason
    assert len(fake.requests) == 2  # one try and AGENTRT_LLM_MAX_RETRIES=1 retry
    gate = result.steps["final_approval"]
    assert gate.state == "completed" and gate.output["llm_triage"] == ""
    assert gate.output["approved"] is True  # the static findings within max_high
    markdown = Path(result.report_paths["markdown"]).read_text()
    assert "| llm_review | code_review@1.0.0 | fallback |" in markdown
    assert "## Final approval" in markdown
