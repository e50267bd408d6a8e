"""Helpers for runtime tests: write manifests and workflows into temporary folders."""

from __future__ import annotations

import textwrap
from pathlib import Path

FIXTURE_AGENTS = Path(__file__).resolve().parent / "fixture_agents"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def agent_yaml(agent_id: str, version: str = "1.0.0", **extra: str) -> str:
    lines = [f"id: {agent_id}", f"version: {version}", "entrypoint: rt_agents:work"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"
