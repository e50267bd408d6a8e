"""Agents shipped by a third-party package through the ``agentrt.agents`` entry point group.

The package is laid out in a temporary site directory exactly as pip installs it (the
package plus its ``.dist-info`` with ``entry_points.txt``), so ``importlib.metadata`` finds it
the way it finds any installed distribution.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentrt.agents.registry import Registry

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    pkg = tmp_path / "site" / "acme_agents"
    (pkg / "manifests").mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            """
            from pydantic import BaseModel

            class In(BaseModel):
                text: str

            class Out(BaseModel):
                words: int

            def count_words(inputs: In) -> Out:
                return Out(words=len(inputs.text.split()))
            """
        )
    )
    (pkg / "manifests" / "word_count.yaml").write_text(
        "id: word_count\nversion: 0.3.0\ndescription: counts words\n"
        "entrypoint: acme_agents:count_words\ninput: acme_agents:In\noutput: acme_agents:Out\n"
        "capabilities: [text]\n"
    )
    info = tmp_path / "site" / "acme_agents-0.3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-agents\nVersion: 0.3.0\n")
    (info / "entry_points.txt").write_text("[agentrt.agents]\nacme = acme_agents\n")
    (info / "top_level.txt").write_text("acme_agents\n")
    return tmp_path / "site"


def test_entry_point_agents_are_discovered_and_importable(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(site))
    registry = Registry.discover(builtin=False)
    agent = registry.get("word_count")
    assert str(agent.version) == "0.3.0"
    assert [a.id for a in registry.find(capability="text")] == ["word_count"]
    assert registry.validate() == []


def test_cli_lists_entry_point_agents(site: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    proc = subprocess.run(
        [sys.executable, "-m", "agentrt.cli", "agents", "list", "--capability", "text", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    (agent,) = json.loads(proc.stdout)
    assert agent["id"] == "word_count" and agent["source"].startswith("/")
