"""A run whose steps completed only through fallbacks says so, and ``--strict`` fails it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentrt.cli import app
from tests.runtime.helpers import FIXTURE_AGENTS, write

pytestmark = pytest.mark.usefixtures("prefect_harness")
runner = CliRunner()
A = ["-A", str(FIXTURE_AGENTS)]


def workflow(tmp_path: Path, confidence: float) -> list[str]:
    """A run of ``confident`` (min_confidence 0.8, fallback beta) at ``confidence``."""
    path = write(
        tmp_path / "wf.yaml",
        f"""
        name: strict-test
        params:
          workdir: {{type: path, required: true}}
          output: {{type: path, default: "{tmp_path / "reports"}"}}
        steps:
          - agent: confident
            inputs: {{name: {{value: c{confidence}}}, confidence: {{value: {confidence}}}}}
        """,
    )
    return ["run", str(path), "-p", f"workdir={tmp_path}", *A]


def test_a_run_through_a_fallback_says_so_and_strict_fails_it(tmp_path: Path) -> None:
    args = workflow(tmp_path, 0.5)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "strict-test: completed with 1 fallback in" in out  # the table's title
    assert "strict-test completed with 1 fallback in" in out  # the closing line
    report = (tmp_path / "reports" / "latest.md").read_text()
    assert report.startswith("# strict-test: completed with 1 fallback\n")
    assert "- fallbacks: confident got their output from a fallback agent" in report

    strict = runner.invoke(app, [*args, "--strict"])
    assert strict.exit_code == 1, strict.output
    assert "--strict: completed with 1 fallback" in strict.stderr

    as_json = runner.invoke(app, [*args, "--strict", "--json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["steps"]["confident"]["state"] == "fallback"


def test_strict_passes_a_run_without_fallbacks(tmp_path: Path) -> None:
    result = runner.invoke(app, [*workflow(tmp_path, 0.9), "--strict"])
    assert result.exit_code == 0, result.output
    assert "strict-test completed in" in " ".join(result.stdout.split())
    assert "fallback" not in (tmp_path / "reports" / "latest.md").read_text().splitlines()[0]
