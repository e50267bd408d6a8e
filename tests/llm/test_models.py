"""Choosing and configuring the model: AGENTRT_MODEL, provider keys and base URLs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.ollama import OllamaModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.models.test import TestModel

from agentrt.agents.builtin.llm_review import Input
from agentrt.agents.llm import LLMUnavailableError, model_spec, resolve_model, run_llm_agent
from agentrt.agents.registry import RegisteredAgent
from tests.llm.conftest import PLANTED_KEY


def without_model(agent: RegisteredAgent) -> RegisteredAgent:
    manifest = agent.manifest.model_copy(update={"model": None})
    return RegisteredAgent(manifest, agent.source, agent.line, agent.policy)


def test_no_model_configured_says_what_to_set(llm_review: RegisteredAgent, repo: Path) -> None:
    agent = without_model(llm_review)
    with pytest.raises(LLMUnavailableError) as info:
        run_llm_agent(agent, Input(repo=str(repo)))
    message = str(info.value)
    assert "no model configured for LLM agent llm_review@1.0.0" in message
    assert "AGENTRT_MODEL" in message and "openai:gpt-4o-mini" in message
    assert "llm_review.yaml" in message  # where to add model:


def test_agentrt_model_overrides_the_manifest(
    llm_review: RegisteredAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert model_spec(llm_review) == "openai:gpt-4o-mini"
    monkeypatch.setenv("AGENTRT_MODEL", "anthropic:claude-sonnet-4-5")
    assert model_spec(llm_review) == "anthropic:claude-sonnet-4-5"
    assert model_spec(without_model(llm_review)) == "anthropic:claude-sonnet-4-5"


def test_openai_without_key_or_server_says_what_to_set(
    llm_review: RegisteredAgent, repo: Path
) -> None:
    with pytest.raises(LLMUnavailableError) as info:
        run_llm_agent(llm_review, Input(repo=str(repo)))
    message = str(info.value)
    assert "openai:gpt-4o-mini needs an API key: set OPENAI_API_KEY" in message
    assert "AGENTRT_LLM_BASE_URL" in message


def test_openai_with_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", PLANTED_KEY)
    model = resolve_model("openai:gpt-4o-mini")
    assert isinstance(model, OpenAIChatModel) and model.model_name == "gpt-4o-mini"
    assert model.base_url.startswith("https://api.openai.com")


@pytest.mark.parametrize("variable", ["AGENTRT_LLM_BASE_URL", "OPENAI_BASE_URL"])
def test_openai_compatible_server_needs_no_key(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "http://127.0.0.1:9/v1")
    model = resolve_model("openai:qwen2.5-coder")
    assert isinstance(model, OpenAIChatModel)
    assert model.base_url == "http://127.0.0.1:9/v1/"


def test_anthropic_needs_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(LLMUnavailableError, match="set ANTHROPIC_API_KEY"):
        resolve_model("anthropic:claude-sonnet-4-5")
    monkeypatch.setenv("ANTHROPIC_API_KEY", PLANTED_KEY)
    model = resolve_model("anthropic:claude-sonnet-4-5")
    assert isinstance(model, AnthropicModel) and model.model_name == "claude-sonnet-4-5"


def test_ollama_defaults_to_the_local_server(monkeypatch: pytest.MonkeyPatch) -> None:
    model = resolve_model("ollama:qwen2.5-coder")
    assert isinstance(model, OllamaModel) and model.base_url == "http://localhost:11434/v1/"
    monkeypatch.setenv("AGENTRT_LLM_BASE_URL", "http://gpu-box:11434/v1")
    assert resolve_model("ollama:qwen2.5-coder").base_url == "http://gpu-box:11434/v1/"
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://other:11434/v1")
    assert resolve_model("ollama:qwen2.5-coder").base_url == "http://other:11434/v1/"


def test_test_model_needs_nothing() -> None:
    assert isinstance(resolve_model("test"), TestModel)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("gpt-4o-mini", "is not 'provider:model'"),
        ("openai:", "is not 'provider:model'"),
        ("nosuchprovider:model", "cannot be used"),
    ],
)
def test_malformed_or_unknown_models(spec: str, needle: str) -> None:
    with pytest.raises(LLMUnavailableError, match=needle):
        resolve_model(spec)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("openai-responses:gpt-4o-mini", "OPENAI_API_KEY"),  # handed to pydantic-ai as is
        ("groq:llama-3.3-70b-versatile", "pip install"),  # provider SDK not installed
    ],
)
def test_other_pydantic_ai_models_pass_through_with_their_errors(spec: str, needle: str) -> None:
    with pytest.raises(LLMUnavailableError, match=f"model {spec} cannot be used: .*{needle}"):
        resolve_model(spec)


def test_bad_retry_setting_is_reported(
    llm_review: RegisteredAgent, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTRT_MODEL", "test")
    monkeypatch.setenv("AGENTRT_LLM_MAX_RETRIES", "many")
    with pytest.raises(LLMUnavailableError, match="AGENTRT_LLM_MAX_RETRIES='many'"):
        run_llm_agent(llm_review, Input(repo=str(repo)))
