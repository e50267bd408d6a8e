"""When an LLM agent's model counts as not configured, and what the driver does then: the
next agent of the chain at once, for any ``kind: llm`` step with fallbacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrt.agents.llm import model_not_configured, no_model_message
from agentrt.agents.registry import Registry
from agentrt.flows.workflow import WorkflowManifest
from tests.runtime.helpers import FIXTURE_AGENTS, write

LLM_AGENT = """\
id: {id}
version: 1.0.0
kind: llm
entrypoint: agentrt.agents.llm:run_llm_agent
{model}
prompt: Name the work.
input:
  type: object
  properties: {{workdir: {{type: string}}, name: {{type: string}}}}
  required: [workdir]
output: {{type: object, properties: {{name: {{type: string}}}}, required: [name]}}
{fallbacks}
"""


def llm_agent(folder: Path, agent_id: str, model: str | None, fallbacks: str = "") -> None:
    write(
        folder / f"{agent_id}.yaml",
        LLM_AGENT.format(
            id=agent_id,
            model=f"model: {model}" if model else "",
            fallbacks=f"fallbacks: [{fallbacks}]" if fallbacks else "",
        ),
    )


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    folder = tmp_path_factory.mktemp("llm_agents")
    llm_agent(folder, "no_model", None)
    llm_agent(folder, "gpt", "openai:gpt-4o-mini")
    llm_agent(folder, "claude", "anthropic:claude-haiku-4-5")
    llm_agent(folder, "local", "ollama:qwen2.5-coder")
    llm_agent(folder, "other", "groq:llama-3.3-70b")
    # Chains: an unconfigured LLM agent before a failing agent, then one that works.
    llm_agent(folder, "chain_fails", "anthropic:claude-haiku-4-5", fallbacks="broken")
    llm_agent(folder, "chain_recovers", "anthropic:claude-haiku-4-5", fallbacks="broken, alpha")
    registry = Registry.discover([FIXTURE_AGENTS, folder], env=False, entry_points=False)
    assert not registry.problems, registry.problems
    return registry


def test_what_counts_as_not_configured(agents: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    def why(agent: str) -> str | None:
        return model_not_configured(agents.get(agent))

    assert "neither AGENTRT_MODEL nor the manifest's model" in str(why("no_model"))
    assert "needs OPENAI_API_KEY" in str(why("gpt"))
    assert "needs ANTHROPIC_API_KEY" in str(why("claude"))
    assert why("local") is None  # Ollama: a local server at its default URL
    assert why("other") is None  # pydantic-ai's own providers: the attempt finds out
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert why("gpt") is None
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("AGENTRT_LLM_BASE_URL", "http://127.0.0.1:9/v1")  # a compatible server
    assert why("gpt") is None
    monkeypatch.setenv("AGENTRT_MODEL", "test")  # overrides every manifest's model
    assert why("no_model") is None and why("claude") is None
    monkeypatch.setenv("AGENTRT_MODEL", "anthropic:claude-sonnet-4-5")
    assert "needs ANTHROPIC_API_KEY" in str(why("gpt"))


def test_the_line_names_agents_without_versions() -> None:
    assert no_model_message(["llm_review@1.0.0"]) == (
        "no model configured: llm_review was not run (set AGENTRT_MODEL and a key)"
    )
    assert no_model_message(["llm_review@1.0.0", "analysis_summary@1.0.0", "llm_review"]) == (
        "no model configured: llm_review, analysis_summary were not run "
        "(set AGENTRT_MODEL and a key)"
    )


def run(registry: Registry, tmp_path: Path, *agents: str):
    from agentrt.flows.run import run_workflow

    spec = {
        "name": "no-model-chain",
        "params": {
            "workdir": {"type": "path", "default": str(tmp_path)},
            "output": {"type": "path", "default": str(tmp_path / "reports")},
        },
        "steps": [
            {"agent": a, "id": a, "optional": True, "inputs": {"name": {"value": a}}}
            for a in agents
        ],
    }
    return run_workflow(WorkflowManifest.model_validate(spec), registry=registry)


@pytest.mark.usefixtures("prefect_harness")
def test_chains_that_skip_the_llm_agent(agents: Registry, tmp_path: Path) -> None:
    result = run(agents, tmp_path, "chain_fails", "chain_recovers", "claude")
    # Not configured, then a fallback that fails: the step fails as the fallback did.
    fails = result.steps["chain_fails"]
    assert fails.state == "skipped" and fails.not_run == ["chain_fails@1.0.0"]
    assert fails.error is not None and fails.error.agent == "broken@1.0.0"
    assert fails.error.fallbacks_tried == [] and len(fails.task_run_ids) == 1
    # Not configured, a failing fallback, then one that works: a fallback after a failure,
    # which counts (--strict would fail it).
    recovers = result.steps["chain_recovers"]
    assert recovers.state == "fallback" and recovers.fallback_cause == "failure"
    assert recovers.used_agent == "alpha@1.0.0" and len(recovers.task_run_ids) == 2
    assert recovers.reason.startswith("broken@1.0.0 failed (ValueError: ")
    # An LLM agent without a fallback is attempted: the attempt says what to set.
    alone = result.steps["claude"]
    assert alone.state == "skipped" and alone.not_run == [] and len(alone.task_run_ids) == 1
    assert alone.error is not None and "ANTHROPIC_API_KEY" in alone.error.message
    assert result.fallbacks == 1 and result.outcome == "completed with 1 fallback"
    assert result.no_model_line == (
        "no model configured: chain_fails, chain_recovers were not run "
        "(set AGENTRT_MODEL and a key)"
    )
