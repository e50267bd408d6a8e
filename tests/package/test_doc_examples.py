"""Every manifest, workflow and agent module shown in README.md and docs/*.md runs.

A code block is an example file when its first line names it, ``# my_agents/todo.py``.
Those files are written into a temporary folder, validated with ``agentrt agents
validate`` and run with ``agentrt run --strict`` (no fallback may stand in for them): each
workflow shown, and a one-step workflow for each agent no shown workflow uses. A YAML block
that is an agent manifest or a workflow without a file name runs too; other YAML blocks
must be listed in FRAGMENTS, so a new example cannot be skipped silently.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from agentrt.cli import app

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
runner = CliRunner()

#: YAML blocks that are parts of a file, not files (document, start of the first line).
FRAGMENTS = {("scaling.md", "task_runner: {type: dask, address: tcp://dask-scheduler:8786}")}

_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
_NAMED = re.compile(r"^# ([\w./-]+\.(?:ya?ml|py))\s*$")


@dataclass(frozen=True)
class Block:
    doc: str
    line: int
    lang: str
    text: str

    @property
    def path(self) -> str | None:
        first = self.text.splitlines()[0] if self.text.strip() else ""
        match = _NAMED.match(first)
        return match.group(1) if match else None

    def kind(self) -> str:
        if self.lang == "python":
            return "module" if self.path else "other"
        data = yaml.safe_load(self.text)
        if isinstance(data, dict) and {"id", "entrypoint"} <= set(data):
            return "agent"
        if isinstance(data, dict) and {"name", "steps"} <= set(data):
            return "workflow"
        return "fragment"


def blocks(doc: Path) -> list[Block]:
    text = doc.read_text(encoding="utf-8")
    return [
        Block(doc.name, text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2))
        for m in _BLOCK.finditer(text)
        if m.group(1) in ("yaml", "python")
    ]


def examples(doc: Path) -> list[Block]:
    return [b for b in blocks(doc) if b.kind() in ("agent", "workflow", "module")]


def test_yaml_blocks_are_examples_or_known_fragments() -> None:
    unknown = [
        f"{b.doc}:{b.line}"
        for doc in DOCS
        for b in blocks(doc)
        if b.lang == "yaml"
        and b.kind() == "fragment"
        and not any(b.doc == d and b.text.startswith(first) for d, first in FRAGMENTS)
    ]
    assert not unknown, f"YAML blocks neither a manifest nor a workflow: {unknown}"


def test_the_readme_shows_an_agent_a_module_and_a_workflow() -> None:
    kinds = {b.kind() for b in examples(ROOT / "README.md")}
    assert kinds == {"agent", "module", "workflow"}


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "app.py").write_text(
        "def total(items):\n    # TODO: handle None\n    return sum(items)  # TODO faster\n"
    )
    (repo / "pkg" / "util.py").write_text('"""Helpers."""\n\n\ndef one():\n    return 1\n')
    (repo / ".hidden").mkdir()
    (repo / ".hidden" / "x.py").write_text("# TODO not counted: hidden folder\n")
    return repo


def _write(examples: list[Block], base: Path) -> tuple[list[Path], list[Path], list[str]]:
    """Write the examples; return the agent folders, the workflow files and the agent ids."""
    folders: set[Path] = set()
    workflows: list[Path] = []
    agents: list[str] = []
    for block in examples:
        path = base / (block.path or f"unnamed/{block.doc}-{block.line}.yaml")
        if block.kind() == "workflow" and not block.path:
            path = base / "unnamed_workflows" / f"{block.doc}-{block.line}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        assert not path.exists(), f"{block.doc}:{block.line}: {path.name} shown twice"
        path.write_text(block.text, encoding="utf-8")
        if block.kind() == "agent":
            folders.add(path.parent)
            agents.append(yaml.safe_load(block.text)["id"])
        elif block.kind() == "workflow":
            workflows.append(path)
    return sorted(folders), workflows, agents


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("doc", [d for d in DOCS if examples(d)], ids=lambda d: d.name)
def test_the_examples_validate_and_run(
    doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTRT_MODEL", "test")  # LLM examples on pydantic-ai's TestModel
    base = tmp_path / "project"
    folders, workflows, agents = _write(examples(doc), base)
    repo = _repo(tmp_path)
    monkeypatch.chdir(base)

    if folders:
        result = runner.invoke(app, ["agents", "validate", *map(str, folders)])
        assert result.exit_code == 0, result.output

    used = set()
    for wf in workflows:
        used |= {
            str(s["agent"]).split(">")[0].split("<")[0]
            for s in yaml.safe_load(wf.read_text())["steps"]
        }
    for agent in agents:
        if agent not in used:
            wf = base / "generated" / f"{agent}.yaml"
            wf.parent.mkdir(exist_ok=True)
            wf.write_text(
                f"name: run-{agent.replace('_', '-')}\n"
                "params:\n  repo: {type: path, default: '.'}\n"
                f"steps:\n  - agent: {agent}\n"
            )
            workflows.append(wf)

    agent_path = [arg for folder in folders for arg in ("-A", str(folder))]
    outputs = {}
    for wf in workflows:
        args = ["run", str(wf), *agent_path, "-p", f"repo={repo}", "--strict", "--json"]
        result = runner.invoke(app, args)
        assert "Traceback" not in result.output
        assert result.exit_code == 0, f"{wf.relative_to(base)}: {result.output}"
        data = json.loads(result.stdout)
        assert data["state"] == "completed"
        assert all(s["state"] in ("completed", "cached") for s in data["steps"].values()), data
        outputs.update({sid: s["output"] for sid, s in data["steps"].items()})
    if "todo_counter" in outputs:  # the README's agent counts what it says it counts
        assert outputs["todo_counter"]["todos"] == 2
    if "todo_finder" in outputs:  # one chunk per path, merged
        assert outputs["todo_finder"] == {"hits": ["pkg/app.py:2", "pkg/app.py:3"], "todos": 2}
