"""``agentrt agents new NAME``: a manifest, a typed module and a test that passes.

The scaffold is a working agent (it counts a repository's Python files and TODO comments),
so ``agentrt agents validate``, ``pytest`` and ``agentrt run`` succeed on it before any edit;
replace its body with the agent's work.
"""

from __future__ import annotations

import importlib.util
import keyword
import re
import sys
from pathlib import Path

__all__ = ["scaffold_agent"]

_ID = re.compile(r"^[a-z][a-z0-9_]*$")

MANIFEST = """\
# {folder}/{name}.yaml: the agent's manifest (`agentrt schema agent` lists every field).
id: {name}
version: 0.1.0                 # PEP 440
description: Counts the Python files and TODO comments of a repository.
entrypoint: {name}:run         # module:function, imported from this folder
input: {name}:In
output: {name}:Out
capabilities: [review]
# requires: ["context_gathering>=1,<2"]   # quote specifiers: YAML splits at the comma
timeout_seconds: 60
min_confidence: 0.5            # output.confidence below this counts as a failure
"""

MODULE = '''\
"""The {name} agent: a typed function (its manifest is {name}.yaml, next to it)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

TODO = re.compile(r"#\\s*TODO\\b")


class In(BaseModel):
    repo: str  # filled from the workflow's `repo` param


class Out(BaseModel):
    summary: str
    files: int
    todos: int
    confidence: float  # checked against the manifest's min_confidence


def run(inputs: In, ctx=None) -> Out:  # ctx (optional): budget, params, run ids
    root = Path(inputs.repo)
    files = todos = 0
    for path in sorted(root.rglob("*.py")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue  # .git, .venv and other hidden folders
        files += 1
        text = path.read_text(encoding="utf-8", errors="replace")
        todos += sum(1 for line in text.splitlines() if TODO.search(line))
    return Out(
        summary=f"{{files}} Python files, {{todos}} TODO comments",
        files=files,
        todos=todos,
        confidence=1.0,
    )
'''

TEST = '''\
"""Tests of the {name} agent: its function, and its manifest as agentrt reads it."""

from __future__ import annotations

from pathlib import Path

from {name} import In, Out, run

HERE = Path(__file__).resolve().parent


def test_{name}_counts_python_files_and_todos(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("# TODO: split this\\nx = 1  # TODO later\\n")
    (tmp_path / "lib.py").write_text("y = 2\\n")
    (tmp_path / "notes.txt").write_text("# TODO: not Python\\n")
    out = run(In(repo=str(tmp_path)))
    assert isinstance(out, Out)
    assert (out.files, out.todos) == (2, 2)
    assert out.confidence >= 0.5


def test_{name}_manifest_is_valid() -> None:
    from agentrt.agents.registry import Registry

    manifest = HERE / "{name}.yaml"
    registry = Registry.discover([manifest])
    problems = [p for p in registry.validate() if Path(p.file).resolve() == manifest]
    assert not problems, "\\n".join(map(str, problems))
    assert registry.get("{name}").manifest.entrypoint == "{name}:run"
'''


def _installed(name: str) -> bool:
    """Whether an installed module has this name (located, never imported)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _problem(name: str) -> str | None:
    if not _ID.match(name):
        return (
            f"{name!r} is not a valid agent id; use lowercase letters, digits and _ starting "
            "with a letter (e.g. todo_counter)"
        )
    if keyword.iskeyword(name) or name in sys.stdlib_module_names or _installed(name):
        return (
            f"{name!r} is also the name of a Python module (the agent's module is {name}.py, "
            f"which would be shadowed); choose another name, e.g. {name}_agent"
        )
    return None


def scaffold_agent(name: str, folder: Path, *, force: bool = False) -> list[Path]:
    """Write ``NAME.yaml``, ``NAME.py`` and ``test_NAME.py`` into ``folder``; return them.

    Raises ValueError (with what to do) for a bad name or files that already exist.
    """
    if problem := _problem(name):
        raise ValueError(problem)
    files = {
        folder / f"{name}.yaml": MANIFEST.format(name=name, folder=folder.as_posix()),
        folder / f"{name}.py": MODULE.format(name=name),
        folder / f"test_{name}.py": TEST.format(name=name),
    }
    existing = [str(p) for p in files if p.exists()]
    if existing and not force:
        raise ValueError(f"{', '.join(existing)} already exist(s); choose another name or --force")
    folder.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    return list(files)
