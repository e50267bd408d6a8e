"""The agentrt CLI: exit codes 0/1/2, --json output, live runs through Prefect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentrt.cli import app
from tests.runtime.helpers import FIXTURE_AGENTS, write

runner = CliRunner()
A = ["-A", str(FIXTURE_AGENTS)]


def workflow(tmp_path: Path, steps: str) -> Path:
    return write(
        tmp_path / "wf.yaml",
        f"""
        name: cli-test
        description: a test workflow
        params:
          workdir: {{type: path, required: true}}
        steps:
        {steps}
        """,
    )


def test_schema_exports_both_manifests() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert "retries" in data["agent"]["properties"] and "steps" in data["workflow"]["properties"]
    assert data["agent"]["additionalProperties"] is False


def test_workflows_show_json_levels_and_edges(tmp_path: Path) -> None:
    path = workflow(
        tmp_path,
        """  - {agent: alpha}
          - {agent: beta}
          - {agent: consumer, inputs: {files: [alpha.files, beta.files]}}""",
    )
    result = runner.invoke(app, ["workflows", "show", str(path), "--json", *A])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["levels"] == [["alpha", "beta"], ["consumer"]]
    assert data["edges"] == [["alpha", "consumer"], ["beta", "consumer"]]


def test_agents_show_picks_version(tmp_path: Path) -> None:
    result = runner.invoke(app, ["agents", "show", "alpha@>=1", "--json", *A])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["version"] == "1.0.0"
    missing = runner.invoke(app, ["agents", "show", "alpha@>=2", *A])
    assert missing.exit_code == 2 and "no version of 'alpha' satisfies >=2" in missing.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "no-such-workflow"], "no workflow named 'no-such-workflow'"),
        (["run", "WF", "--param", "workdir"], "write it as NAME=VALUE"),
        (["run", "WF", "--param", "nope=1"], "unknown parameter(s) nope"),
        (["run", "WF"], "needs --param workdir"),
        (["run", "WF", "-p", "workdir=.", "--task-runner", "gpu"], "--task-runner 'gpu'"),
    ],
)
def test_bad_input_exits_2_without_traceback(tmp_path: Path, args: list[str], message: str) -> None:
    path = workflow(tmp_path, "  - {agent: alpha}")
    args = [str(path) if a == "WF" else a for a in args]
    result = runner.invoke(app, [*args, *A])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_an_unknown_artifacts_mode_exits_2_before_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTRT_ARTIFACTS", "later")
    path = workflow(tmp_path, "  - {agent: alpha}")
    result = runner.invoke(app, ["run", str(path), "-p", f"workdir={tmp_path}", *A])
    assert result.exit_code == 2, result.output
    assert "AGENTRT_ARTIFACTS='later' is not a mode" in result.stderr
    assert "running" not in result.stdout and "Traceback" not in result.stderr


@pytest.mark.usefixtures("prefect_harness")
def test_run_ok_and_failed_exit_codes(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    ok = workflow(tmp_path, "  - {agent: alpha, inputs: {name: {value: a}}}")
    result = runner.invoke(app, ["run", str(ok), "-p", f"workdir={work}", "--json", *A])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["state"] == "completed" and data["steps"]["alpha"]["output"]["name"] == "a"
    bad = workflow(tmp_path, "  - {agent: broken}")
    result = runner.invoke(app, ["run", str(bad), "-p", f"workdir={work}", *A])
    assert result.exit_code == 1
    assert "broken@1.0.0 failed in execute after 1 attempt(s): ValueError" in result.stderr
    assert "→" in result.stderr  # the recovery suggestion


@pytest.mark.parametrize("command", [["agents", "list", *A], ["workflows", "list"]])
def test_lists_in_80_columns_keep_names_and_paths_whole(command: list[str]) -> None:
    # The descriptions go to a table of their own rather than squeeze the ids into
    # "analysis_summary_" / "basic" and the paths into "…/workf" / "lows/…" rows.
    result = runner.invoke(app, command, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "…" not in result.stdout and max(map(len, lines)) <= 80, result.stdout
    names = json.loads(runner.invoke(app, [*command, "--json"]).stdout)
    for entry in names:
        name = entry.get("id") or entry["name"]
        rows = [line for line in lines if line.startswith(f"│ {name} ")]
        assert len(rows) == 2, (name, result.stdout)  # its facts, then its description
    wide = runner.invoke(app, command, env={"COLUMNS": "250"})
    key = "id" if command[0] == "agents" else "name"
    assert sum(line.startswith(f"│ {names[0][key]} ") for line in wide.stdout.splitlines()) == 1
