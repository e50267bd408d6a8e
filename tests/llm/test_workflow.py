"""llm_review in real Prefect runs: success, and fallback to code_review when the model fails
(persistent HTTP 500, or no model configured), with the planted API key nowhere to be found."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from agentrt.agents.registry import Registry
from agentrt.flows.results import RunResult
from agentrt.flows.workflow import WorkflowManifest
from tests.llm.conftest import PLANTED_KEY
from tests.llm.fake_openai import FakeOpenAI, echo_key_error, tool_call
from tests.llm.test_run import REVIEW

pytestmark = pytest.mark.usefixtures("prefect_harness")

NO_MODEL_AGENT = """\
id: llm_nomodel
version: 1.0.0
kind: llm
entrypoint: agentrt.agents.builtin.llm_review:finish
input: agentrt.agents.builtin.llm_review:Input
output: agentrt.agents.builtin.llm_review:Output
prompt: Review the code.
fallbacks: [code_review]
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    extra = tmp_path_factory.mktemp("agents")
    (extra / "llm_nomodel.yaml").write_text(NO_MODEL_AGENT)
    registry = Registry.discover([extra], env=False, entry_points=False)
    assert not registry.problems, registry.problems
    return registry


@pytest.fixture
def planted_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", PLANTED_KEY)
    monkeypatch.setenv("AGENTRT_LLM_MAX_RETRIES", "1")
    return PLANTED_KEY


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    with FakeOpenAI(echo_key_error(500)) as fake:
        monkeypatch.setenv("AGENTRT_LLM_BASE_URL", fake.base_url)
        yield fake


def run(registry: Registry, repo: Path, agent: str = "llm_review") -> RunResult:
    from agentrt.flows.run import run_workflow

    spec = {
        "name": "llm-review-test",
        "params": {
            "repo": {"type": "path", "default": str(repo)},
            "task": {"type": "str", "default": "error handling in ratio"},
        },
        "steps": [{"agent": agent, "id": "review"}],
    }
    return run_workflow(WorkflowManifest.model_validate(spec), registry=registry)


def everything_written(result: RunResult) -> str:
    """The run result, its report files, the metrics files and the Prefect task run states
    and logs of the flow run, as one text to search."""
    import pandas as pd
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.client.schemas.sorting import TaskRunSort

    from agentrt.flows.history import wait_until_recorded

    def read(path: Path) -> str:
        if path.suffix == ".parquet":
            return str(pd.read_parquet(path).to_json(date_format="iso"))
        return path.read_bytes().decode("utf-8", errors="replace")

    texts = [result.model_dump_json()]
    texts += [read(Path(p)) for p in result.report_paths.values() if Path(p).is_file()]
    for folder, _dirs, files in os.walk(os.environ["AGENTRT_HOME"]):
        texts += [read(Path(folder) / n) for n in files if n.endswith((".parquet", ".json", ".md"))]
    wait_until_recorded(result)  # task runs reach the server as events, after the run
    flow_run = UUID(result.flow_run_id)
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run])),
            sort=TaskRunSort.EXPECTED_START_TIME_ASC,
            limit=50,
        )
        texts += [f"{r.state.name}: {r.state.message}" for r in runs if r.state]
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run])),
            limit=200,
            offset=0,
        )
        texts += [log.message for log in logs]
    return "\n".join(texts)


def test_llm_review_runs_and_reports(
    registry: Registry, repo: Path, planted_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAI(tool_call(REVIEW)) as fake:
        monkeypatch.setenv("AGENTRT_LLM_BASE_URL", fake.base_url)
        result = run(registry, repo)
    assert result.state == "completed", result.errors
    step = result.steps["review"]
    assert step.state == "completed" and step.used_agent is None
    assert step.output["findings"][0]["tool"] == "llm_review"
    assert step.output["counts"]["medium"] == 1
    assert step.tokens_delivered and step.tokens_delivered > 0
    assert "error handling in ratio" in fake.requests[0].text()
    markdown = Path(result.report_paths["markdown"]).read_text()
    assert "## LLM review" in markdown and "Reviewed by `openai:gpt-4o-mini`" in markdown
    assert "`pkg/app.py:12`" in markdown


def test_persistent_500_falls_back_to_code_review_without_leaking_the_key(
    registry: Registry, repo: Path, planted_key: str, server: FakeOpenAI
) -> None:
    result = run(registry, repo)
    assert result.state == "completed", result.errors
    step = result.steps["review"]
    assert step.state == "fallback" and step.used_agent == "code_review@1.0.0"
    assert step.reason.startswith("llm_review@1.0.0 failed (LLMUnavailableError: ")
    assert step.reason.endswith("; fallback code_review@1.0.0 succeeded")
    assert len(step.task_run_ids) == 2 and step.output["ruff"]  # code_review's report
    # One Prefect attempt (LLMUnavailableError is not retried: the SDK already retried), two
    # HTTP requests in it (AGENTRT_LLM_MAX_RETRIES=1); every reply echoed the key.
    assert len(server.requests) == 2
    assert all(planted_key in r.headers["authorization"] for r in server.requests)
    markdown = Path(result.report_paths["markdown"]).read_text()
    assert "| review | code_review@1.0.0 | fallback |" in markdown
    assert "## review (code_review@1.0.0)" in markdown
    data = json.loads(Path(result.report_paths["json"]).read_text())
    assert data["steps"]["review"]["used_agent"] == "code_review@1.0.0"
    written = everything_written(result)
    assert "LLMUnavailableError" in written or "HTTP 500" in written  # the failure is recorded
    assert planted_key not in written


def test_no_model_configured_falls_back_and_says_what_to_set(
    registry: Registry, repo: Path
) -> None:
    result = run(registry, repo, agent="llm_nomodel")
    assert result.state == "completed", result.errors
    step = result.steps["review"]
    assert step.state == "fallback" and step.used_agent == "code_review@1.0.0"
    # No attempt of the LLM agent: its fallback ran at once (one task run), and the run
    # says why once, not as a failure.
    assert step.not_run == ["llm_nomodel@1.0.0"] and len(step.task_run_ids) == 1
    line = "no model configured: llm_nomodel was not run (set AGENTRT_MODEL and a key)"
    assert step.reason == line and result.no_model_line == line
    assert result.fallbacks == 0 and result.outcome == "completed"
    markdown = Path(result.report_paths["markdown"]).read_text()
    assert markdown.count(line) == 1
    assert "LLMUnavailableError" not in Path(result.report_paths["json"]).read_text()
    import pandas as pd

    rows = pd.read_parquet(result.report_paths["metrics"])
    assert list(rows["agent_id"]) == ["code_review"]  # no record of an llm_nomodel attempt
    assert list(rows["fallback_for"]) == ["llm_nomodel@1.0.0"]
