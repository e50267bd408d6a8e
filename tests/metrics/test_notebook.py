"""notebooks/efficiency.ipynb runs headless against metrics of real runs, and on nothing."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.metrics.conftest import Recorded

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "efficiency.ipynb"


def execute(metrics: Path, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    """Run every cell in a fresh python3 kernel from notebooks/; any cell error fails."""
    monkeypatch.setenv("AGENTRT_METRICS_DIR", str(metrics))  # read by the parameters cell
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=120,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    return nb


def outputs(nb: nbformat.NotebookNode) -> tuple[str, int]:
    text, images = [], 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text.append(out.get("text", "") or str(out.get("data", {}).get("text/plain", "")))
            images += "image/png" in out.get("data", {})
    return "\n".join(text), images


def test_committed_without_outputs_and_parameterised() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert "parameters" in code[0].metadata.get("tags", [])
    assert 'os.environ.get("AGENTRT_METRICS_DIR", "../.agentrt/metrics")' in code[0].source


def test_notebook_on_real_runs(recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = execute(recorded.root, monkeypatch)
    text, images = outputs(nb)
    assert "17 records (14 executions) of 4 runs" in text
    # tokens per agent, tokens over time, LLM cost per day, latency (2), rates, cache,
    # efficiency, budget
    assert images == 9
    # The cost per workflow and per agent: `usage`'s 1,200 + 80 tokens of openai:gpt-4o-mini.
    assert "LLM cost per workflow:" in text and "LLM cost per agent:" in text
    assert "0.000228" in text and "metrics-mixed" in text
    assert "flaky" in text and "retries failed" in text  # the recommendation table


def test_notebook_on_an_empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = execute(tmp_path, monkeypatch)
    text, images = outputs(nb)
    assert images == 0
    assert "0 records" in text and "No changes to propose from 0 records" in text
    assert "No LLM calls in these records yet." in text
