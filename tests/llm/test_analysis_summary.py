"""code-analysis's analysis_summary end to end through Prefect: the guide from a local
OpenAI-compatible server (prompt recounted within its grant, the analysers' digests in it),
invalid output then valid, a hook rejection then valid (FunctionModel), a persistent 5xx
falling back to analysis_summary_basic, and no model configured: the fallback at once, no
attempt, one plain line, exit 0 under --strict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from agentrt.agents.builtin.analysis_summary import BASIC, Output
from agentrt.agents.registry import Registry
from agentrt.context.tokens import count_tokens
from agentrt.flows.results import RunResult
from agentrt.flows.workflow import WorkflowManifest
from tests.llm.fake_openai import COMPLETION_TOKENS, PROMPT_TOKENS, FakeOpenAI, error, tool_call
from tests.llm.test_run import Recorder

pytestmark = pytest.mark.usefixtures("prefect_harness")

ROOT = Path(__file__).resolve().parents[2]
README = (
    "# shop\n\n[![ci](https://ci/badge.svg)](https://ci)\n\n"
    "Shop computes invoices and shipments for a small web store.\n\n## Use\n\nRun it.\n"
)
ABOUT = "Shop computes invoices and shipments for a small web store."
LINE = "no model configured: analysis_summary was not run (set AGENTRT_MODEL and a key)"

PAGE: dict[str, Any] = {
    "overview": "Shop computes invoices (shop.billing) and shipments (shop.shipping).",
    "packages": [
        {"name": "shop.billing", "role": "Invoice totals; calls shipping for costs."},
        {"name": "shop.cli", "role": "The command line."},
    ],
    "data_flow": "shop.cli calls shop.billing, which calls shop.shipping and back.",
    "risks": [
        {"path": "./shop/billing.py:8", "severity": "medium", "why": "Bare excepts hide errors."}
    ],
    "read_first": [{"path": "shop/cli.py", "why": "Where a run starts."}],
}


def _shop(root: Path) -> Path:
    """30 functions with a bare except (30 E722 findings, 30 undocumented functions), an
    import cycle billing ↔ shipping, a command line, a README."""
    billing = '"""Invoices."""\nfrom shop import shipping\n\n\n'
    for i in range(30):
        billing += (
            f"def total_{i}(lines):\n    try:\n"
            f"        return sum(lines) + shipping.cost_{i % 3}(1)\n"
            "    except:\n        return 0\n\n\n"
        )
    shipping = '"""Shipments."""\nfrom shop import billing\n\n\n' + "".join(
        f"def cost_{i}(w):\n    return billing.total_0([w])\n\n\n" for i in range(3)
    )
    files = {
        "README.md": README,
        "shop/__init__.py": '"""Shop."""\n',
        "shop/billing.py": billing,
        "shop/shipping.py": shipping,
        "shop/cli.py": (
            '"""The command line."""\nfrom shop import billing\n\n\ndef main():\n'
            '    print(billing.total_1([1]))\n\n\nif __name__ == "__main__":\n    main()\n'
        ),
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _shop(tmp_path_factory.mktemp("shop"))


def code_analysis(total_tokens: int) -> WorkflowManifest:
    """The built-in code-analysis workflow with another budget."""
    spec = yaml.safe_load((ROOT / "flows" / "workflows" / "code-analysis.yaml").read_text())
    spec["budget"] = {"total_tokens": total_tokens}
    return WorkflowManifest.model_validate(spec)


def run(registry: Registry, repo: Path, total_tokens: int = 6000) -> RunResult:
    """code-analysis at 6,000 tokens: context_gathering 3,000, analysis_summary its minimum
    3,000 (the analysers' digests of this repository are bigger: the prompt is shrunk)."""
    from agentrt.flows.run import run_workflow

    return run_workflow(code_analysis(total_tokens), {"repo": str(repo)}, registry=registry)


def with_model(monkeypatch: pytest.MonkeyPatch, model: str, base_url: str | None = None) -> None:
    # A model name per test: the model is part of the LLM step's cache key.
    monkeypatch.setenv("AGENTRT_MODEL", model)
    if base_url:
        monkeypatch.setenv("AGENTRT_LLM_BASE_URL", base_url)


def metrics(result: RunResult) -> pd.DataFrame:
    return pd.read_parquet(result.report_paths["metrics"])


def test_the_guide_from_a_local_server_within_its_grant(
    registry: Registry, shop: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # What the local server's model costs, as its user says (a base URL: no built-in price).
    prices = tmp_path / "prices.toml"
    prices.write_text('["openai:summary-happy"]\ninput = 0.5\noutput = 2.0\n')
    monkeypatch.setenv("AGENTRT_PRICES", str(prices))
    with FakeOpenAI(tool_call(PAGE)) as fake:
        with_model(monkeypatch, "openai:summary-happy", fake.base_url)
        result = run(registry, shop)
    assert result.state == "completed" and result.outcome == "completed", result.errors
    step = result.steps["analysis_summary"]
    assert step.state == "completed" and step.used_agent is None and not step.not_run
    page = Output.model_validate(step.output)
    assert page.written_by == "openai:summary-happy"
    assert page.risks[0].path == "shop/billing.py"  # made repository-relative by the hook

    # What the model received: the README's first paragraph, the analysers' digests (the
    # findings ranked and cut to fit), the gathered files as context.
    (request,) = fake.requests
    system, user = (m["content"] for m in request.body["messages"])
    for expected in (
        ABOUT,
        '"architecture_analysis"',
        '"shop.billing"',  # a package
        "shop/billing.py:2",  # the cycle's import
        '"E722"',  # a finding
        '"documentation_generation"',
        "undocumented-function",
        "## shop/",  # a context block of a gathered file
    ):
        assert expected in user, expected
    assert "more left out (token budget)" in user  # 30 findings did not all fit
    assert '"reference_markdown"' not in user  # digests, not whole outputs

    # The prompt, recounted from what the server received, is the attempt's prompt_tokens
    # and within its grant.
    from agentrt.agents.llm import FRAMING_TOKENS

    schema = json.dumps(Output.model_json_schema(), separators=(",", ":"))
    recount = count_tokens(system) + count_tokens(user) + count_tokens(schema) + FRAMING_TOKENS
    row = metrics(result).set_index("step").loc["analysis_summary"]
    assert row["agent_id"] == "analysis_summary" and row["tokens_allocated"] == 3000
    assert row["prompt_tokens"] == recount <= 3000
    assert (row["llm_input_tokens"], row["llm_output_tokens"]) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert row["llm_model"] == "openai:summary-happy"
    assert row["cost_usd"] == pytest.approx((PROMPT_TOKENS * 0.5 + COMPLETION_TOKENS * 2.0) / 1e6)

    # The guide is the report's first section, above the steps' table.
    report = Path(result.report_paths["markdown"]).read_text()
    guide = report.index("## A guide to this repository")
    assert guide < report.index("| step | agent |") < report.index("## code_review")
    assert "_Written by `openai:summary-happy`" in report
    assert "## analysis_summary (" not in report  # not repeated among the steps


def test_invalid_output_then_valid(
    registry: Registry, shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAI(tool_call({"overview": "Half a page."}), tool_call(PAGE)) as fake:
        with_model(monkeypatch, "openai:summary-retry", fake.base_url)
        result = run(registry, shop)
    step = result.steps["analysis_summary"]
    assert step.state == "completed" and step.attempts == 1, step.reason
    assert len(fake.requests) == 2  # the output retry, within one attempt
    assert "data_flow" in fake.requests[1].text()  # the validation error went back
    assert step.output["written_by"] == "openai:summary-retry"


def test_a_path_the_repository_lacks_sends_the_model_back(
    registry: Registry, shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic_ai.models.function import FunctionModel

    import agentrt.agents.llm as llm

    bad = {**PAGE, "read_first": [{"path": "shop/orders.py", "why": "Orders."}]}
    recorder = Recorder(bad, PAGE)
    model = FunctionModel(recorder)
    with_model(monkeypatch, "openai:summary-function")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")  # configured; never sent
    monkeypatch.setattr(llm, "resolve_model", lambda spec: model)
    result = run(registry, shop)
    step = result.steps["analysis_summary"]
    assert step.state == "completed", step.reason
    assert len(recorder.calls) == 2
    retry = recorder.last_request_text(1)
    assert "read_first[0].path 'shop/orders.py' is not a file of the repository" in retry
    assert [r["path"] for r in step.output["read_first"]] == ["shop/cli.py"]


def test_a_persistent_5xx_falls_back_to_the_basic_guide(
    registry: Registry, shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTRT_LLM_MAX_RETRIES", "1")
    with FakeOpenAI(error(503, "overloaded")) as fake:
        with_model(monkeypatch, "openai:summary-down", fake.base_url)
        result = run(registry, shop)
    assert len(fake.requests) == 2  # the first try and one SDK retry, then the fallback
    step = result.steps["analysis_summary"]
    assert step.state == "fallback" and step.fallback_cause == "failure"
    assert step.used_agent == "analysis_summary_basic@1.0.0"
    assert step.reason.startswith("analysis_summary@1.0.0 failed (LLMUnavailableError: ")
    assert result.outcome == "completed with 1 fallback" and result.no_model_line is None
    assert step.output["written_by"] == BASIC
    rows = metrics(result)
    attempts = rows[rows["step"] == "analysis_summary"]
    assert list(attempts["agent_id"]) == ["analysis_summary", "analysis_summary_basic"]
    assert list(attempts["state"]) == ["failed", "fallback"]
    # The failed calls are recorded with their model; it has no price: null, not 0.
    assert attempts["llm_model"].tolist()[0] == "openai:summary-down"
    assert attempts["cost_usd"].isna().all()


def test_no_model_configured_runs_the_basic_guide_at_once(
    registry: Registry, shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No AGENTRT_MODEL, no key: the manifest's openai:gpt-4o-mini cannot be called."""
    from agentrt.cli import app
    from agentrt.flows.settings import agentrt_home

    runner = CliRunner()
    cli = runner.invoke(app, ["run", "code-analysis", "-p", f"repo={shop}", "--strict"])
    assert cli.exit_code == 0, cli.output  # not a failure, even under --strict
    out = " ".join(cli.stdout.split())
    assert out.count(LINE) == 1  # said once (the table's note says "no model configured")
    assert "code-analysis completed in" in out and "completed with" not in out
    report = (agentrt_home() / "reports" / "code-analysis" / "latest.md").read_text()
    assert report.startswith("# code-analysis: completed\n")
    assert report.count(LINE) == 1 and f"- {LINE}\n" in report
    assert "- fallbacks:" not in report
    assert report.index(f"_Written by `{BASIC}`") < report.index("| step | agent |")
    assert ABOUT in report  # the basic guide quotes the README
    data = json.loads((agentrt_home() / "reports" / "code-analysis" / "latest.json").read_text())
    step = data["steps"]["analysis_summary"]
    assert step["state"] == "fallback" and step["fallback_cause"] == "no_model"
    assert step["not_run"] == ["analysis_summary@1.0.0"] and step["reason"] == LINE
    assert len(step["task_run_ids"]) == 1  # the fallback's: no attempt of the LLM agent
    page = Output.model_validate(step["output"])
    assert [r.path for r in page.read_first][:1] == data["steps"]["context_gathering"]["output"][
        "files"
    ][:1]
    assert any("import cycle" in r.why for r in page.risks)
    assert any(r.path == "shop/billing.py" and "E722" in r.why for r in page.risks)
