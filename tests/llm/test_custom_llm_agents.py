"""Custom ``kind: llm`` agents with every documented entrypoint run (or fail in one line).

agents/llm.py documents two entrypoints for an LLM agent: the generic runner
``agentrt.agents.llm:run_llm_agent`` (no output hook) and ``module:hook`` next to the
manifest (an output hook ``hook(output, inputs, call)``). A custom agent with the generic
runner used to pass ``agents validate`` and crash ``agentrt run`` with a traceback (the
runner's module was checked against the manifest's import roots).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentrt.agents.imports import GENERIC_LLM_ENTRYPOINT
from agentrt.agents.llm import GENERIC_ENTRYPOINT
from agentrt.cli import app
from tests.runtime.helpers import write

runner = CliRunner()

HOOKS = """
    from pydantic import BaseModel


    class In(BaseModel):
        repo: str


    class Out(BaseModel):
        summary: str


    def finish(output, inputs, call):
        return Out(summary=f"{output.summary} ({call.model})")


    def wrong(output):
        return output
    """


def _module(tmp_path: Path) -> str:
    # One module name per test: Python keeps a module imported under its name.
    return f"hooks_{abs(hash(str(tmp_path))):x}"


def agents(tmp_path: Path) -> Path:
    folder = tmp_path / "agents"
    hooks = _module(tmp_path)
    write(
        folder / "generic.yaml",
        f"""
        id: generic_llm
        version: 1.0.0
        kind: llm
        entrypoint: {GENERIC_ENTRYPOINT}
        prompt: Summarise the repository.
        input: {{type: object, properties: {{repo: {{type: string}}}}}}
        output: {{type: object, properties: {{summary: {{type: string}}}}, required: [summary]}}
        """,
    )
    write(
        folder / "hooked.yaml",
        f"""
        id: hooked_llm
        version: 1.0.0
        kind: llm
        entrypoint: {hooks}:finish
        input: {hooks}:In
        output: {hooks}:Out
        prompt: Summarise {{repo}}.
        """,
    )
    write(
        folder / "bare.yaml",
        f"""
        id: bare_llm
        version: 1.0.0
        kind: llm
        entrypoint: {GENERIC_ENTRYPOINT}
        prompt: Say hello.
        """,
    )
    write(folder / f"{hooks}.py", HOOKS)
    return folder


def workflow(tmp_path: Path) -> Path:
    write(tmp_path / "repo" / "app.py", "def f():\n    return 1\n")
    return write(
        tmp_path / "wf.yaml",
        f"""
        name: custom-llm
        params:
          repo: {{type: path, default: "{tmp_path / "repo"}"}}
        steps:
          - agent: generic_llm
          - agent: hooked_llm
          - agent: bare_llm
        """,
    )


def test_the_documented_generic_entrypoint_is_the_runner_s() -> None:
    assert GENERIC_LLM_ENTRYPOINT == GENERIC_ENTRYPOINT


def test_custom_llm_agents_validate(tmp_path: Path) -> None:
    result = runner.invoke(app, ["agents", "validate", str(agents(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "3 agent manifest(s), no problems" in result.stdout


@pytest.mark.usefixtures("prefect_harness")
def test_custom_llm_agents_run_with_every_documented_entrypoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTRT_MODEL", "test")  # pydantic-ai's offline TestModel
    folder = agents(tmp_path)
    result = runner.invoke(app, ["run", str(workflow(tmp_path)), "-A", str(folder), "--json"])
    assert "Traceback" not in result.output
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    states = {sid: s["state"] for sid, s in data["steps"].items()}
    assert states == dict.fromkeys(["generic_llm", "hooked_llm", "bare_llm"], "completed")
    assert data["steps"]["hooked_llm"]["output"]["summary"].endswith("(test)")  # the hook ran
    assert "text" in data["steps"]["bare_llm"]["output"]  # no output schema: the text


@pytest.mark.usefixtures("prefect_harness")
def test_without_a_model_they_fail_in_one_line(tmp_path: Path) -> None:
    folder = agents(tmp_path)
    result = runner.invoke(app, ["run", str(workflow(tmp_path)), "-A", str(folder)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    said = " ".join(result.stderr.split())  # rich wraps long lines
    assert "LLMUnavailableError: no model configured for LLM agent" in said


def test_validate_reports_entrypoints_that_cannot_work(tmp_path: Path) -> None:
    folder = tmp_path / "agents"
    hooks = _module(tmp_path)
    write(folder / f"{hooks}.py", HOOKS)
    write(
        folder / "python_runner.yaml",
        f"id: python_runner\nversion: 1.0.0\nentrypoint: {GENERIC_ENTRYPOINT}\n",
    )
    write(
        folder / "bad_hook.yaml",
        f"id: bad_hook\nversion: 1.0.0\nkind: llm\nentrypoint: {hooks}:wrong\nprompt: Hi.\n",
    )
    write(
        folder / "missing_hook.yaml",
        f"id: missing_hook\nversion: 1.0.0\nkind: llm\nentrypoint: {hooks}:nope\nprompt: Hi.\n",
    )
    result = runner.invoke(app, ["agents", "validate", str(folder)])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert any(
        "python_runner.yaml:3: entrypoint:" in line and "add `kind: llm`" in line for line in lines
    ), lines
    assert any(
        f"bad_hook.yaml:4: entrypoint: output hook '{hooks}:wrong' cannot be called with "
        "(output, inputs, call)" in line
        for line in lines
    ), lines
    assert any(
        "missing_hook.yaml:4: entrypoint:" in line and "no attribute" in line for line in lines
    )
