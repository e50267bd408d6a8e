"""issue-context end to end through Prefect, on a small git repository: without a model (the
ranking, the report files, the one "no model configured" line, exit 0 under --strict), the
issue from stdin, bad input (exit 2 before any flow run), a FunctionModel's picks coming
first (a pick that is not a candidate sent back first), and a local OpenAI-compatible
server: the happy path with the prompt recounted within its grant, invalid output then
valid, a persistent 5xx falling back to the ranking."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from agentrt.agents.builtin.issue_context import BASIC, Picks
from agentrt.agents.registry import Registry
from agentrt.context.tokens import count_tokens
from agentrt.flows.results import RunResult
from tests.context.test_issue import FILES as SHOP
from tests.llm.conftest import write_tree
from tests.llm.fake_openai import FakeOpenAI, error, tool_call
from tests.llm.test_run import Recorder

pytestmark = pytest.mark.usefixtures("prefect_harness")

LINE = "no model configured: issue_rerank was not run (set AGENTRT_MODEL and a key)"
ISSUE = (
    "KeyError for an unknown region in the tax rate lookup\n\n"
    "rate() raises KeyError when the region is not in RATES; it should raise a ValueError "
    "that names the region.\n"
)
#: The shop fixture of tests/context/test_issue.py, and a README (prose among the files).
FILES = {**SHOP, "README.md": "# shop\n\nInvoices with tax.\n"}
#: The model's picks (candidates all: cli.py imports billing.py, invoice_total calls rate):
#: the command line first, then the invoice.
PICKS: dict[str, Any] = {
    "files": ["shop/cli.py", "./shop/billing.py"],
    "units": [{"path": "shop/billing.py", "name": "invoice_total()"}],
    "reason": "The region reaches rate() through the invoice.",
}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_tree(tmp_path_factory.mktemp("issue-shop"), FILES)
    env = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": str(root)}
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "shop"]):
        subprocess.run([*git, *args], cwd=root, env=env, check=True)
    return root


def run(registry: Registry, repo: Path, budget: int = 2000, issue: str = ISSUE) -> RunResult:
    from agentrt.flows.run import run_workflow

    params = {"repo": str(repo), "issue": issue, "budget": budget}
    return run_workflow("issue-context", params, registry=registry)


def with_model(monkeypatch: pytest.MonkeyPatch, model: str, base_url: str | None = None) -> None:
    # A model name per test: the model is part of the LLM step's cache key.
    monkeypatch.setenv("AGENTRT_MODEL", model)
    if base_url:
        monkeypatch.setenv("AGENTRT_LLM_BASE_URL", base_url)


def latest(kind: str) -> str:
    from agentrt.flows.settings import agentrt_home

    return (agentrt_home() / "reports" / "issue-context" / f"latest.{kind}").read_text()


def output(result: RunResult) -> dict[str, Any]:
    step = result.steps["issue_context"]
    assert step.state in ("completed", "cached"), step.reason  # the same picks: cached
    return step.output


# ------------------------------------------------------------------------- without a model


def test_no_model_keeps_the_ranking_and_writes_the_report(shop: Path, tmp_path: Path) -> None:
    from agentrt.cli import app

    issue = tmp_path / "issue.md"
    issue.write_text(ISSUE)
    cli = CliRunner().invoke(
        app,
        ["run", "issue-context", "-p", f"repo={shop}", "-p", f"issue={issue}", "-p",
         "budget=2000", "--strict"],
    )  # fmt: skip
    assert cli.exit_code == 0, cli.output
    out = " ".join(cli.stdout.split())
    assert out.count(LINE) == 1 and "issue-context completed in" in out
    report = latest("md")
    assert report.startswith("# issue-context: completed\n")
    assert report.count(LINE) == 1
    # The context is the report's first section: files, units, the packed code with whys.
    page = report.index("## Context for the issue: KeyError for an unknown region")
    assert page < report.index("| step | agent |")
    assert "| 1 | `shop/tax.py` |" in report
    assert "`shop/tax.py:rate` | 6-8 | function | named in the issue: rate" in report
    assert "#### shop/tax.py:1-8 (file) — named in the issue: rate" in report
    assert "return RATES[region]" in report
    data = json.loads(latest("json"))
    rerank = data["steps"]["issue_rerank"]
    assert rerank["state"] == "fallback" and rerank["fallback_cause"] == "no_model"
    assert rerank["not_run"] == ["issue_rerank@1.0.0"] and rerank["output"]["written_by"] == BASIC
    context = data["steps"]["issue_context"]["output"]
    assert context["reranked_by"] is None and context["tokens"] <= context["budget"] == 2000
    assert context["files"][0]["path"] == "shop/tax.py"
    assert context["units"][0] | {"score": 0} == {
        "path": "shop/tax.py", "name": "rate", "kind": "function", "start_line": 6,
        "end_line": 8, "score": 0, "why": "named in the issue: rate",
    }  # fmt: skip
    whys = {(u["path"], u["name"]): u["why"] for u in context["units"]}
    assert "test of rate" in whys[("tests/test_tax.py", "test_rate")]
    assert "caller of rate" in whys[("shop/billing.py", "invoice_total")]
    assert context["items"][0]["path"] == "shop/tax.py"
    assert sum(count_tokens(i["text"]) for i in context["items"]) <= 2000


def test_the_issue_from_stdin(shop: Path) -> None:
    from agentrt.cli import app

    stdin_issue = "Discount percent above 100 gives a negative total\n\ndiscount() must clamp.\n"
    cli = CliRunner().invoke(
        app,
        ["run", "issue-context", "-p", f"repo={shop}", "-p", "issue=-", "-p", "budget=1500"],
        input=stdin_issue,
    )
    assert cli.exit_code == 0, cli.output
    data = json.loads(latest("json"))
    assert data["params"]["issue"] == stdin_issue  # the text, read before the flow started
    context = data["steps"]["issue_context"]["output"]
    assert context["issue"] == "Discount percent above 100 gives a negative total"
    assert context["units"][0]["name"] == "discount"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["issue=missing.md"], "--param issue=missing.md: no such file"),
        (["issue=empty.md"], "parameter 'issue' is empty"),
        (["issue=issue.md", "budget=0"], "parameter 'budget' must be at least 1, got '0'"),
        (["issue=issue.md", "budget=-5"], "parameter 'budget' must be at least 1"),
        (["issue=issue.md", "budget=lots"], "parameter 'budget' expects int, got 'lots'"),
        (["budget=100"], "workflow 'issue-context' needs --param issue=…"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    params: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentrt.cli import app

    (tmp_path / "issue.md").write_text(ISSUE)
    (tmp_path / "empty.md").write_text(" \n\n")
    monkeypatch.chdir(tmp_path)
    args = ["run", "issue-context"] + [a for p in params for a in ("-p", p)]
    cli = CliRunner().invoke(app, args)
    assert cli.exit_code == 2, cli.output
    lines = cli.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in cli.output


# ----------------------------------------------------------------------------- with a model


def test_the_models_picks_come_first(
    registry: Registry, shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic_ai.models.function import FunctionModel

    import agentrt.agents.llm as llm

    bad = {**PICKS, "files": ["shop/orders.py"], "units": [{"path": "shop/cli.py", "name": "x"}]}
    recorder = Recorder(bad, PICKS)
    model = FunctionModel(recorder)
    with_model(monkeypatch, "openai:rerank-function")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")  # configured; never sent
    monkeypatch.setattr(llm, "resolve_model", lambda spec: model)
    result = run(registry, shop)
    assert result.state == "completed" and result.no_model_line is None, result.errors
    step = result.steps["issue_rerank"]
    assert step.state == "completed" and step.used_agent is None, step.reason
    assert len(recorder.calls) == 2  # the pick that is not a candidate was sent back
    retry = recorder.last_request_text(1)
    assert "files[0] 'shop/orders.py' is not one of the candidates" in retry
    assert "units[0] shop/cli.py:x is not one of the candidate units" in retry
    picks = Picks.model_validate(step.output)
    assert picks.files == ["shop/cli.py", "shop/billing.py"]  # made repository-relative
    assert [(u.path, u.name) for u in picks.units] == [("shop/billing.py", "invoice_total")]
    assert picks.written_by == "openai:rerank-function"
    context = output(result)
    assert context["reranked_by"] == "openai:rerank-function"
    assert [f["path"] for f in context["files"]][:3] == [
        "shop/cli.py", "shop/billing.py", "shop/tax.py",
    ]  # fmt: skip
    assert context["units"][0]["name"] == "invoice_total" and context["units"][0]["why"].startswith(
        "re-ranked #1"
    )
    assert context["items"][0]["path"] == "shop/cli.py"
    data = json.loads(Path(result.report_paths["latest_json"]).read_text())
    assert data["steps"]["issue_context"]["output"]["files"][0]["path"] == "shop/cli.py"
    # The model saw the candidates (paths and outlines), fenced as untrusted data.
    shown = recorder.user_text(0)
    assert "<untrusted-data" in shown and '"outline"' in shown and "def rate(region):" in shown
    assert "KeyError for an unknown region" in shown  # the issue, as the task


def test_a_local_server_within_the_grant(
    registry: Registry, shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAI(tool_call(PICKS)) as fake:
        with_model(monkeypatch, "openai:rerank-happy", fake.base_url)
        result = run(registry, shop)
    step = result.steps["issue_rerank"]
    assert step.state == "completed", step.reason
    assert output(result)["files"][0]["path"] == "shop/cli.py"
    (request,) = fake.requests
    system, user = (m["content"] for m in request.body["messages"])
    assert "### issue_candidates" in user and 'source="outputs of earlier steps"' in user
    from agentrt.agents.llm import FRAMING_TOKENS

    schema = json.dumps(Picks.model_json_schema(), separators=(",", ":"))
    recount = count_tokens(system) + count_tokens(user) + count_tokens(schema) + FRAMING_TOKENS
    rows = pd.read_parquet(result.report_paths["metrics"]).set_index("step")
    row = rows.loc["issue_rerank"]
    assert row["tokens_allocated"] == 4000 and row["prompt_tokens"] == recount <= 4000
    assert row["llm_model"] == "openai:rerank-happy"


def test_a_long_issue_is_cut_to_fit_the_grant(
    registry: Registry, shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_issue = ISSUE + "The traceback, pasted whole:\n" + "  File shop/tax.py, in rate\n" * 900
    assert count_tokens(long_issue) > 8000
    with FakeOpenAI(tool_call(PICKS)) as fake:
        with_model(monkeypatch, "openai:rerank-long", fake.base_url)
        result = run(registry, shop, issue=long_issue)
    assert result.steps["issue_rerank"].state == "completed"
    (request,) = fake.requests
    system, user = (m["content"] for m in request.body["messages"])
    assert "KeyError for an unknown region" in user and "### issue_candidates" in user
    row = pd.read_parquet(result.report_paths["metrics"]).set_index("step").loc["issue_rerank"]
    assert count_tokens(system) + count_tokens(user) < row["prompt_tokens"] <= 4000


def test_invalid_output_then_valid(
    registry: Registry, shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAI(tool_call({"files": "shop/cli.py"}), tool_call(PICKS)) as fake:
        with_model(monkeypatch, "openai:rerank-retry", fake.base_url)
        result = run(registry, shop)
    step = result.steps["issue_rerank"]
    assert step.state == "completed" and step.attempts == 1, step.reason
    assert len(fake.requests) == 2 and "files" in fake.requests[1].text()
    assert output(result)["reranked_by"] == "openai:rerank-retry"


def test_a_persistent_5xx_falls_back_to_the_ranking(
    registry: Registry, shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTRT_LLM_MAX_RETRIES", "1")
    with FakeOpenAI(error(503, "overloaded")) as fake:
        with_model(monkeypatch, "openai:rerank-down", fake.base_url)
        result = run(registry, shop)
    assert len(fake.requests) == 2  # the first try and one SDK retry, then the fallback
    step = result.steps["issue_rerank"]
    assert step.state == "fallback" and step.fallback_cause == "failure"
    assert step.used_agent == "issue_rerank_basic@1.0.0" and result.no_model_line is None
    assert result.outcome == "completed with 1 fallback"
    context = output(result)
    assert context["reranked_by"] is None and context["files"][0]["path"] == "shop/tax.py"
