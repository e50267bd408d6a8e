"""``agentrt agents new`` scaffolds an agent that validates, passes its own test and runs."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentrt.cli import app

runner = CliRunner()
_made = itertools.count()


@pytest.fixture
def name() -> str:
    # One agent name per test: Python keeps a module imported under its name, and an
    # earlier scaffold's folder stays on sys.path in this process.
    return f"scaffold_probe_{next(_made)}_{os.getpid()}"


@pytest.fixture
def scaffold(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / "my_agents"
    result = runner.invoke(app, ["agents", "new", name, "--dir", str(folder)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in folder.iterdir()} == {f"test_{name}.py", f"{name}.py", f"{name}.yaml"}
    return folder


def test_the_scaffold_validates(scaffold: Path) -> None:
    result = runner.invoke(app, ["agents", "validate", str(scaffold)])
    assert result.exit_code == 0, result.output
    assert "1 agent manifest(s), no problems" in result.stdout


def test_the_scaffold_s_test_passes_under_pytest_as_written(scaffold: Path) -> None:
    # In a folder of its own, as a user runs it: `pytest my_agents`.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", scaffold.name],
        cwd=scaffold.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


@pytest.mark.usefixtures("prefect_harness")
def test_the_scaffolded_agent_runs_in_a_workflow(scaffold: Path, tmp_path: Path, name: str) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("# TODO one\n# TODO two\n")
    (repo / "b.py").write_text("x = 1  # TODO three\n")
    wf = tmp_path / "wf.yaml"
    wf.write_text(
        f"name: scaffold-run\nparams:\n  repo: {{type: path, default: '{repo}'}}\n"
        f"steps:\n  - agent: {name}\n"
    )
    result = runner.invoke(app, ["run", str(wf), "-A", str(scaffold), "--strict", "--json"])
    assert result.exit_code == 0, result.output
    step = json.loads(result.stdout)["steps"][name]
    assert step["state"] == "completed"
    assert step["output"]["files"] == 2 and step["output"]["todos"] == 3


@pytest.mark.parametrize(
    ("bad", "message"),
    [("Todo", "not a valid agent id"), ("json", "also the name of a Python module")],
)
def test_bad_names_exit_2(tmp_path: Path, bad: str, message: str) -> None:
    result = runner.invoke(app, ["agents", "new", bad, "--dir", str(tmp_path)])
    assert result.exit_code == 2 and message in result.stderr
    assert not list(tmp_path.iterdir())


def test_existing_files_are_kept(scaffold: Path, name: str) -> None:
    result = runner.invoke(app, ["agents", "new", name, "--dir", str(scaffold)])
    assert result.exit_code == 2 and "already exist" in result.stderr
