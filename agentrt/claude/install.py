"""``agentrt hook install``: register the hook in a project's ``.claude/settings.json``."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from agentrt.errors import AgentrtError

__all__ = ["HOOK_COMMAND", "MATCHER", "InstallError", "install_hooks"]

HOOK_COMMAND = "agentrt hook"
#: Claude Code matches tool names against this regex; newer releases call the tool "Agent".
MATCHER = "Task|Agent"


class InstallError(AgentrtError, RuntimeError):
    """The settings file cannot be merged (e.g. it is not valid JSON)."""


def _has_command(groups: list[Any], command: str) -> bool:
    for group in groups:
        hooks = group.get("hooks") if isinstance(group, dict) else None
        if isinstance(hooks, list) and any(
            isinstance(h, dict) and h.get("command") == command for h in hooks
        ):
            return True
    return False


def install_hooks(project: Path, command: str = HOOK_COMMAND) -> dict[str, Any]:
    """Add PreToolUse and PostToolUse entries (matcher ``Task|Agent``) running ``command`` to
    ``<project>/.claude/settings.json``, keeping every other setting and hook.

    Idempotent: when both entries are present nothing is written. Before changing an existing
    file its previous content is saved to ``settings.json.bak``. Returns what was done.
    """
    settings = project / ".claude" / "settings.json"
    previous: bytes | None = settings.read_bytes() if settings.is_file() else None
    data: Any = {}
    if previous is not None and previous.strip():
        try:
            data = json.loads(previous)
        except ValueError as exc:
            raise InstallError(
                f"{settings} is not valid JSON ({exc}); fix it (or move it away) and run "
                "`agentrt hook install` again"
            ) from exc
    if not isinstance(data, dict):
        raise InstallError(f"{settings} does not hold a JSON object; fix it and run again")
    hooks = data.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise InstallError(f'"hooks" in {settings} is not an object; fix it and run again')
    added = []
    for event in ("PreToolUse", "PostToolUse"):
        groups = hooks.setdefault(event, [])
        if not isinstance(groups, list):
            raise InstallError(f'"hooks.{event}" in {settings} is not a list; fix it and run again')
        if not _has_command(groups, command):
            groups.append({"matcher": MATCHER, "hooks": [{"type": "command", "command": command}]})
            added.append(event)
    backup = None
    if added:
        settings.parent.mkdir(parents=True, exist_ok=True)
        if previous is not None:
            backup = settings.with_name(settings.name + ".bak")
            backup.write_bytes(previous)
        fd, tmp = tempfile.mkstemp(dir=settings.parent, prefix=".settings.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        os.replace(tmp, settings)
    return {
        "settings": str(settings),
        "changed": bool(added),
        "added": [{"event": e, "matcher": MATCHER, "command": command} for e in added],
        "backup": str(backup) if backup else None,
    }
