"""End to end through the real OpenAI SDK and pydantic-ai's OpenAIChatModel, against a scripted
OpenAI-compatible server on 127.0.0.1 (see :mod:`tests.llm.fake_openai`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentrt.agents.agent_context import AgentContext
from agentrt.agents.builtin.llm_review import Input, Output
from agentrt.agents.llm import LLMTimeoutError, LLMUnavailableError, run_llm_agent
from agentrt.agents.registry import RegisteredAgent
from tests.llm.conftest import PLANTED_KEY
from tests.llm.fake_openai import (
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    FakeOpenAI,
    Script,
    echo_key_error,
    error,
    tool_call,
)
from tests.llm.test_run import REVIEW


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeOpenAI]]:
    """Start a fake server with scripts and point agentrt at it with a planted key."""
    servers: list[FakeOpenAI] = []

    class Serving(FakeOpenAI):
        def __init__(self, *scripts: Script) -> None:
            super().__init__(*scripts)
            servers.append(self)
            self.__enter__()
            monkeypatch.setenv("AGENTRT_LLM_BASE_URL", self.base_url)
            monkeypatch.setenv("OPENAI_API_KEY", PLANTED_KEY)

    yield Serving
    for server in servers:
        server.__exit__(None, None, None)


def make_ctx() -> AgentContext:
    return AgentContext("llm_review", "1.0.0", "review", "test", {}, 6_000, 1)


def test_valid_structured_output(
    serve: type[FakeOpenAI], llm_review: RegisteredAgent, repo: Path
) -> None:
    server = serve(tool_call(REVIEW))
    ctx = make_ctx()
    output = run_llm_agent(llm_review, Input(repo=str(repo), task="ratio errors"), ctx)
    assert isinstance(output, Output) and output.findings[0].path == "pkg/app.py"
    assert output.model == "openai:gpt-4o-mini"
    (request,) = server.requests
    assert request.headers["authorization"] == f"Bearer {PLANTED_KEY}"
    assert request.body["model"] == "gpt-4o-mini"
    assert request.tool_names() == ["final_result"]  # structured output through a tool call
    assert request.body["messages"][0]["role"] == "system"
    assert "def ratio(a, b):" in request.text()  # the selected context reached the model
    assert (ctx.llm_input_tokens, ctx.llm_output_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)


def test_invalid_output_then_valid_on_retry(
    serve: type[FakeOpenAI], llm_review: RegisteredAgent, repo: Path
) -> None:
    server = serve(tool_call('{"summary": "cut off'), tool_call(REVIEW))
    ctx = make_ctx()
    output = run_llm_agent(llm_review, Input(repo=str(repo)), ctx)
    assert isinstance(output, Output) and len(server.requests) == 2
    retry = server.requests[1].body["messages"]
    assert retry[-1]["role"] == "tool" and "Invalid JSON" in retry[-1]["content"]
    assert ctx.llm_input_tokens == 2 * PROMPT_TOKENS


def test_rate_limit_then_success(
    serve: type[FakeOpenAI], llm_review: RegisteredAgent, repo: Path
) -> None:
    server = serve(
        error(429, "Rate limit reached", {"retry-after-ms": "20"}),
        error(429, "Rate limit reached", {"retry-after-ms": "20"}),
        tool_call(REVIEW),
    )
    output = run_llm_agent(llm_review, Input(repo=str(repo)), make_ctx())
    assert isinstance(output, Output) and len(server.requests) == 3  # the SDK retried twice


def test_persistent_server_error_ends_in_a_redacted_error(
    serve: type[FakeOpenAI],
    llm_review: RegisteredAgent,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTRT_LLM_MAX_RETRIES", "1")
    server = serve(echo_key_error(500))  # the body echoes "Bearer <key>"
    ctx = make_ctx()
    t0 = time.perf_counter()
    with pytest.raises(LLMUnavailableError) as info:
        run_llm_agent(llm_review, Input(repo=str(repo)), ctx)
    assert time.perf_counter() - t0 < llm_review.manifest.timeout_seconds
    assert len(server.requests) == 2  # one attempt + AGENTRT_LLM_MAX_RETRIES=1
    message = str(info.value)
    assert "HTTP 500 after 1 retries" in message and server.base_url in message
    assert PLANTED_KEY not in message and "Bearer [REDACTED]" in message
    assert info.value.__cause__ is None and info.value.__context__ is None  # nothing chained
    assert PLANTED_KEY not in json.dumps(ctx.notes)


def test_rejected_key_says_which_variable_to_check(
    serve: type[FakeOpenAI], llm_review: RegisteredAgent, repo: Path
) -> None:
    serve(error(401, f"Incorrect API key provided: {PLANTED_KEY[:8]}****{PLANTED_KEY[-4:]}"))
    with pytest.raises(LLMUnavailableError) as info:
        run_llm_agent(llm_review, Input(repo=str(repo)), make_ctx())
    message = str(info.value)
    assert "rejected the credentials" in message and "OPENAI_API_KEY" in message
    assert PLANTED_KEY[:8] not in message


def test_unreachable_server(
    llm_review: RegisteredAgent, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAI(error(500)) as probe:
        url = probe.base_url
    # The port is closed now: connections are refused.
    monkeypatch.setenv("AGENTRT_LLM_BASE_URL", url)
    monkeypatch.setenv("AGENTRT_LLM_MAX_RETRIES", "0")
    with pytest.raises(LLMUnavailableError, match="could not be reached after 0 retries"):
        run_llm_agent(llm_review, Input(repo=str(repo)), make_ctx())


def test_a_slow_model_times_out_before_the_runtime_watchdog(
    serve: type[FakeOpenAI], llm_review: RegisteredAgent, repo: Path
) -> None:
    def slow(request):  # type: ignore[no-untyped-def]
        time.sleep(2)
        return tool_call(REVIEW)(request)

    serve(slow)
    manifest = llm_review.manifest.model_copy(update={"timeout_seconds": 1.0})
    agent = RegisteredAgent(manifest, llm_review.source, llm_review.line, llm_review.policy)
    t0 = time.perf_counter()
    with pytest.raises(LLMTimeoutError, match=r"did not answer within 0\.\d s"):
        run_llm_agent(agent, Input(repo=str(repo)), make_ctx())
    assert time.perf_counter() - t0 < 1.0  # inside timeout_seconds: a clean error, not a hang
