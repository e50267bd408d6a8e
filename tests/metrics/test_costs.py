"""What LLM calls cost: the price table, its override, the cost_usd column of real runs, and
the cost per agent and per workflow in ``agentrt metrics summary``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from agentrt.agents.prices import Price, PricesError, cost_usd, load_prices, price_of
from agentrt.cli.metrics import app
from agentrt.flows.metrics import cost_summary, export_records, summarize
from tests.metrics.builders import frame, record
from tests.metrics.conftest import Recorded

#: The fixture agent `usage` reports 1,200 input and 80 output tokens of openai:gpt-4o-mini
#: (0.15 and 0.60 US dollars per million tokens).
USAGE_COST = (1200 * 0.15 + 80 * 0.60) / 1e6


@pytest.fixture(autouse=True)
def no_price_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AGENTRT_PRICES", "AGENTRT_LLM_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def write_prices(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_cost_from_tokens_and_the_builtin_table() -> None:
    assert price_of("openai:gpt-4o-mini") == Price(0.15, 0.60)
    assert cost_usd("openai:gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert cost_usd("anthropic:claude-sonnet-4-5", 2000, 500) == pytest.approx(0.0135)
    # Dated ids take their model's price; openai-responses is OpenAI's.
    assert price_of("openai:gpt-4o-mini-2024-07-18") == Price(0.15, 0.60)
    assert price_of("anthropic:claude-sonnet-4-5-20250929") == price_of(
        "anthropic:claude-sonnet-4-5"
    )
    assert price_of("openai-responses:gpt-4o") == price_of("openai:gpt-4o")
    # Unknown: null, not 0. No tokens reported: null. Zero tokens of a priced model: 0.
    assert cost_usd("ollama:qwen2.5-coder", 1000, 100) is None
    assert cost_usd("test", 1000, 100) is None
    assert cost_usd("openai:gpt-4o-mini", None, None) is None
    assert cost_usd(None, 1000, 100) is None
    assert cost_usd("openai:gpt-4o-mini", 0, 0) == 0.0
    # Every built-in entry is a price (the file parses, numbers >= 0).
    table, overridden = load_prices()
    assert len(table) >= 15 and not overridden
    assert all(p.input >= 0 and p.output >= 0 for p in table.values())


def test_the_builtin_table_names_models_as_pydantic_ai_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each key is a model string pydantic-ai resolves, to that provider and that model
    (what AGENTRT_MODEL takes and the metrics record as the model), and the table says
    when its prices were taken and how to override them."""
    from pydantic_ai.models import infer_model

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    table, _override = load_prices(None)
    assert len(table) >= 10
    for key in table:
        provider, _sep, name = key.partition(":")
        model = infer_model(key)
        assert (model.system, model.model_name) == (provider, name), key
    from agentrt.agents.prices import BUILTIN_PRICES

    header = BUILTIN_PRICES.read_text()
    assert "Taken 2025-11" in header and "AGENTRT_PRICES" in header


def test_the_override_adds_and_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prices = write_prices(
        tmp_path / "prices.toml",
        '["openai:gpt-4o-mini"]\ninput = 1.0\noutput = 2.0\n\n'
        '["ollama:qwen2.5-coder"]\ninput = 0\noutput = 0\n',
    )
    monkeypatch.setenv("AGENTRT_PRICES", str(prices))
    assert cost_usd("openai:gpt-4o-mini", 1000, 1000) == pytest.approx(0.003)
    assert cost_usd("ollama:qwen2.5-coder", 1000, 100) == 0.0  # free, as the user says
    assert price_of("openai:gpt-4o") == Price(2.5, 10.0)  # the rest of the table stays


def test_a_compatible_server_is_priced_only_by_the_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTRT_LLM_BASE_URL", "http://127.0.0.1:8000/v1")
    assert cost_usd("openai:gpt-4o-mini", 1000, 100) is None  # a local server is not OpenAI
    assert cost_usd("anthropic:claude-haiku-4-5", 1000, 0) == pytest.approx(0.001)
    prices = write_prices(tmp_path / "p.toml", '["openai:gpt-4o-mini"]\ninput = 0.5\noutput = 0\n')
    monkeypatch.setenv("AGENTRT_PRICES", str(prices))
    assert cost_usd("openai:gpt-4o-mini", 1000, 100) == pytest.approx(0.0005)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('["m:x"]\ninput = 1\n', "needs input = and output ="),
        ('["m:x"]\ninput = -1\noutput = 1\n', "each a number >= 0"),
        ('["m:x"]\ninput = 1\noutput = 1\ncached = 0.1\n', "unknown keys: cached"),
        ("input = 1", "needs input = and output ="),
        ("[broken", "is not valid TOML"),
    ],
)
def test_a_bad_override_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, problem: str
) -> None:
    monkeypatch.setenv("AGENTRT_PRICES", str(write_prices(tmp_path / "bad.toml", text)))
    with pytest.raises(PricesError, match=problem) as info:
        price_of("openai:gpt-4o-mini")
    assert "bad.toml" in str(info.value) and info.value.hint
    monkeypatch.setenv("AGENTRT_PRICES", str(tmp_path / "missing.toml"))
    with pytest.raises(PricesError, match=r"missing\.toml"):
        price_of("openai:gpt-4o-mini")


def test_real_runs_record_the_model_and_its_cost(recorded: Recorded) -> None:
    rows = pd.read_parquet(recorded.files["mixed"]).set_index("agent_id")
    usage = rows.loc["usage"]
    assert usage["llm_model"] == "openai:gpt-4o-mini"
    assert usage["cost_usd"] == pytest.approx(USAGE_COST)
    others = rows.drop(index="usage")
    assert others["cost_usd"].isna().all() and others["llm_model"].isna().all()


def test_cost_per_agent_and_per_workflow() -> None:
    rows = frame(
        [
            record("review", run=1, llm_model="openai:gpt-4o-mini", llm_input_tokens=1000,
                   llm_output_tokens=100, cost_usd=0.00021),
            record("review", run=2, llm_model="openai:gpt-4o-mini", llm_input_tokens=2000,
                   llm_output_tokens=100, cost_usd=0.00036),
            record("review", run=3, state="cached"),  # served from the cache: nothing spent
            record("local", run=1, llm_model="openai:my-local", llm_input_tokens=500,
                   llm_output_tokens=50),  # a model without a price
            record("lint", run=1),
            record("lint", run=9, workflow="other"),
        ]
    )  # fmt: skip
    agents = summarize(rows).set_index("agent_id")
    assert agents.loc["review", "cost_usd"] == pytest.approx(0.00057)
    assert pd.isna(agents.loc["local", "cost_usd"])  # unknown, not 0
    assert pd.isna(agents.loc["lint", "cost_usd"])  # no LLM calls
    flows = cost_summary(rows).set_index("workflow")
    wf = flows.loc["wf"]
    assert (wf["runs"], wf["llm_calls"], wf["unpriced_calls"]) == (3, 3, 1)
    assert (wf["llm_input_tokens"], wf["llm_output_tokens"]) == (3500, 250)
    assert wf["cost_usd"] == pytest.approx(0.00057)
    assert wf["cost_per_run"] == pytest.approx(0.00019)
    assert wf["models"] == "openai:gpt-4o-mini, openai:my-local"
    other = flows.loc["other"]
    assert other["llm_calls"] == 0 and pd.isna(other["cost_usd"])
    by_agent = cost_summary(rows, by="agent").set_index("agent_id")
    assert by_agent.loc["local", "unpriced_calls"] == 1 and pd.isna(
        by_agent.loc["local", "cost_usd"]
    )


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout


def test_metrics_summary_shows_cost_per_agent_and_workflow(recorded: Recorded) -> None:
    code, out = invoke("summary", "--path", str(recorded.root))
    assert code == 0
    assert "LLM cost" in out and "LLM cost per workflow" in out
    usage = next(line for line in out.splitlines() if "│ usage" in line)
    assert "$0.000228" in usage
    alpha = next(line for line in out.splitlines() if "│ alpha" in line)
    assert "$" not in alpha and "unpriced" not in alpha  # no LLM calls: —
    mixed = next(line for line in out.splitlines() if "│ metrics-mixed" in line)
    assert "$0.000228" in mixed and "openai:gpt-4o-mini" in mixed

    code, out = invoke("summary", "--path", str(recorded.root), "--json")
    rows = {r["agent_id"]: r for r in json.loads(out)}
    assert rows["usage"]["cost_usd"] == pytest.approx(USAGE_COST)
    assert rows["alpha"]["cost_usd"] is None  # JSON null, not 0

    code, out = invoke("summary", "--path", str(recorded.root), "--by", "workflow", "--json")
    assert code == 0
    flows = {r["workflow"]: r for r in json.loads(out)}
    assert flows["metrics-mixed"]["cost_usd"] == pytest.approx(USAGE_COST)
    assert flows["metrics-mixed"]["llm_calls"] == 1
    assert flows["metrics-cache"]["cost_usd"] is None and flows["metrics-cache"]["llm_calls"] == 0

    code, _ = invoke("summary", "--path", str(recorded.root), "--by", "model")
    assert code == 2


def test_an_unpriced_model_says_so(tmp_path: Path) -> None:
    rows = [record("local", run=1, llm_model="openai:my-local", llm_input_tokens=500,
                   llm_output_tokens=50)]  # fmt: skip
    folder = tmp_path / "metrics" / "runs" / "2026-11-02"
    folder.mkdir(parents=True)
    export_records(frame(rows), "parquet", folder / "run.parquet")
    code, out = invoke("summary", "--path", str(tmp_path / "metrics"))
    assert code == 0
    local = next(line for line in out.splitlines() if "│ local" in line)
    assert "unpriced" in local and "$" not in local
