"""``agentrt metrics``: output, exit codes (0 ok, 1 no records, 2 bad input), no Prefect."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from agentrt.cli.metrics import app
from agentrt.flows.metrics import export_records, load_records
from tests.metrics.builders import frame, record
from tests.metrics.conftest import Recorded

runner = CliRunner()
REPO_ROOT = Path(__file__).resolve().parents[2]


def invoke(*args: str) -> tuple[int, str, str]:
    # Wide enough that rich never elides a cell the assertions look for.
    result = runner.invoke(app, list(args), env={"COLUMNS": "250"})
    assert "Traceback" not in result.output + (result.stderr or "")
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """A metrics folder with a history that calls for every kind of proposal."""
    rows = [record("ctx", run=r, tokens_allocated=8000, tokens_delivered=900) for r in range(1, 6)]
    rows += [record("flaky", run=r, attempt=a, state="failed", error_type="ConnectionError")
             for r in (1, 2) for a in (1, 2, 3)]  # fmt: skip
    folder = tmp_path / "metrics" / "runs" / "2026-11-02"
    folder.mkdir(parents=True)
    export_records(frame(rows), "parquet", folder / "history.parquet")
    return tmp_path / "metrics"


def test_summary_table_and_json(recorded: Recorded) -> None:
    code, out, _ = invoke("summary", "--path", str(recorded.root))
    assert code == 0
    assert "records from 4 runs" in out
    for agent in ("deliver", "flaky", "reader", "broken_with_fallback"):
        assert agent in out
    code, out, _ = invoke("summary", "--path", str(recorded.root), "--json")
    assert code == 0
    rows = {r["agent_id"]: r for r in json.loads(out)}
    assert rows["reader"]["runs"] == 2 and rows["reader"]["cache_hit_rate"] == 0.5
    assert rows["deliver"]["context_efficiency"] == 0.3
    assert rows["beta"]["runs"] == 0 and rows["beta"]["skipped"] == 1
    assert rows["beta"]["success_rate"] is None  # JSON null, not NaN


def test_summary_in_80_columns_cuts_no_cell_short(recorded: Recorded) -> None:
    # Twelve columns do not fit 80: the table comes in parts, each led by the agent.
    result = runner.invoke(app, ["summary", "--path", str(recorded.root)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "…" not in result.stdout, result.stdout
    assert max(map(len, lines)) <= 80
    rows = [line for line in lines if line.startswith("│ deliver ")]
    assert len(rows) == 3, result.stdout
    assert "30%" in rows[1]  # its context efficiency, in the part with the tokens
    assert "records from 4 runs" in result.stdout and "efficiency: referenced" in result.stdout


def test_summary_filters(recorded: Recorded) -> None:
    code, out, _ = invoke(
        "summary", "--path", str(recorded.root), "--workflow", "metrics-cache", "--json"
    )
    assert code == 0 and [r["agent_id"] for r in json.loads(out)] == ["reader"]
    code, out, _ = invoke("summary", "--path", str(recorded.root), "--since", "7d", "--json")
    assert code == 0 and len(json.loads(out)) > 1


def test_a_corrupt_file_is_reported_and_unrelated_warnings_are_not(
    history: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (history / "runs" / "2026-11-02" / "broken.parquet").write_bytes(b"not parquet")
    import agentrt.flows.metrics

    real = agentrt.flows.metrics.load_records

    def noisy(*args: object, **kwargs: object) -> pd.DataFrame:
        # What garbage collection does when an earlier test left an event loop open.
        import warnings

        warnings.warn("unclosed event loop", ResourceWarning, stacklevel=1)
        return real(*args, **kwargs)

    monkeypatch.setattr(agentrt.flows.metrics, "load_records", noisy)
    code, out, err = invoke("summary", "--path", str(history))
    assert code == 0 and "ctx" in out
    assert err.startswith("warning: skipping unreadable metrics file ") and "broken.parquet" in err
    assert "unclosed event loop" not in err


def test_no_records_exits_1_with_a_clear_message(recorded: Recorded, tmp_path: Path) -> None:
    code, out, err = invoke("summary", "--path", str(tmp_path))
    assert code == 1 and out == ""
    assert err.startswith("error: no agent metrics in ") and "agentrt run" in err
    code, _, err = invoke("recommend", "--path", str(recorded.root), "--since", "2999-01-01")
    assert code == 1 and "matching --since 2999-01-01" in err
    code, _, err = invoke("export", "--path", str(recorded.root), "--workflow", "nope")
    assert code == 1 and "--workflow nope" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["summary", "--since", "last week"], "7d"),
        (["summary", "--path", "/no/such/metrics"], "no such file or folder"),
        (["export", "--format", "xlsx"], "csv, parquet or json"),
        (["export", "--format", "parquet"], "--output"),
    ],
)
def test_bad_input_exits_2(recorded: Recorded, args: list[str], message: str) -> None:
    if "--path" not in args:
        args = [*args, "--path", str(recorded.root)]
    code, _, err = invoke(*args)
    assert code == 2
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_export_formats(recorded: Recorded, tmp_path: Path) -> None:
    expected = load_records(recorded.root)
    code, out, _ = invoke("export", "--path", str(recorded.root))
    assert code == 0
    assert pd.read_csv(io.StringIO(out))["record_id"].tolist() == expected["record_id"].tolist()
    code, out, _ = invoke("export", "--path", str(recorded.root), "--format", "json")
    assert code == 0 and len(json.loads(out)) == len(expected)
    target = tmp_path / "out" / "all.parquet"
    code, _, err = invoke(
        "export", "--path", str(recorded.root), "-f", "parquet", "-o", str(target)
    )
    assert code == 0 and f"wrote {len(expected)} records" in err
    pd.testing.assert_frame_equal(load_records(target), expected)


def test_recommend_table_and_json(history: Path) -> None:
    code, out, _ = invoke("recommend", "--path", str(history), "--json")
    assert code == 0
    proposals = {(p["agent_id"], p["kind"]) for p in json.loads(out)}
    assert proposals == {
        ("ctx", "lower_optimal_tokens"),
        ("ctx", "disable_cache"),
        ("flaky", "add_fallback"),
    }
    code, out, _ = invoke("recommend", "--path", str(history))
    assert code == 0 and "3 proposed manifest changes" in out
    assert "context.optimal_tokens" in out and "retries failed" in out


def test_recommend_from_real_runs(recorded: Recorded) -> None:
    # flaky: 3 of its 4 retries failed (flaky_dead's three, against one that paid off).
    code, out, _ = invoke("recommend", "--path", str(recorded.root), "--json")
    assert code == 0
    (proposal,) = json.loads(out)
    assert (proposal["agent_id"], proposal["kind"]) == ("flaky", "add_fallback")
    assert proposal["evidence"].startswith("3 of 4 retries failed (ConnectionError x3)")


def test_recommend_with_nothing_to_propose(tmp_path: Path) -> None:
    rows = [record("calm", run=r, state="cached" if r % 2 else "completed") for r in range(1, 7)]
    folder = tmp_path / "runs" / "2026-11-02"
    folder.mkdir(parents=True)
    export_records(frame(rows), "parquet", folder / "calm.parquet")
    code, out, _ = invoke("recommend", "--path", str(tmp_path))
    assert code == 0 and "No changes to propose from 6 records" in out


def test_metrics_commands_do_not_import_prefect(recorded: Recorded) -> None:
    script = (
        "import sys\n"
        "from agentrt.cli.metrics import app\n"
        f"for cmd in ('summary', 'recommend', 'export'):\n"
        f"    try:\n"
        f"        app([cmd, '--path', {str(recorded.root)!r}])\n"
        f"    except SystemExit as e:\n"
        f"        assert e.code in (0, None), (cmd, e.code)\n"
        "assert 'prefect' not in sys.modules, 'agentrt metrics imported prefect'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_importing_metrics_is_light() -> None:
    """Agents may import referenced_tokens: that must not load pandas, pyarrow or prefect."""
    script = (
        "import sys\n"
        "from agentrt.flows.metrics import referenced_tokens\n"
        "import agentrt.cli.metrics\n"
        "heavy = {'pandas', 'pyarrow', 'prefect'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
