"""The package's layers: imports only go downward, and only through the ``agentrt`` name.

    agentrt.lazy < agentrt.errors < agentrt.context < agentrt.claude < agentrt.agents
    < agentrt.flows < agentrt.cli

Every source module (the folders ``[tool.setuptools] package-dir`` maps into ``agentrt``)
is parsed, and every import in it is checked: module-level, inside functions, and under
``if TYPE_CHECKING:`` (a type-only dependency is still a dependency). ``from agentrt
import X`` is resolved through the public API's ``_EXPORTS``. The root package
(``agentrt/__init__.py``, the public API) and ``agentrt/__main__.py`` are over all layers
and may import from any.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Lowest first. A layer may import its own modules and those of the layers below it.
LAYERS = [
    "agentrt.lazy",
    "agentrt.errors",
    "agentrt.context",
    "agentrt.claude",
    "agentrt.agents",
    "agentrt.flows",
    "agentrt.cli",
]
#: The repository's folders are not import names: ``import flows`` works only from a
#: checkout (and then loads a second copy of the module), never from an installed wheel.
BARE_NAMES = {"agents", "context", "flows"}
#: Over every layer: the public API (the root package) and ``python -m agentrt``.
ENTRY_POINTS = {"agentrt", "agentrt.__main__"}


@dataclass(frozen=True)
class Import:
    line: int
    module: str  # absolute, e.g. "agentrt.flows.lifecycle"
    names: tuple[str, ...] = ()  # for ``from module import names``
    bare: bool = False  # the top-level name is one of BARE_NAMES


def layer_of(module: str) -> int | None:
    """The index in LAYERS of ``module``'s layer; ``None`` outside every layer."""
    for index, layer in enumerate(LAYERS):
        if module == layer or module.startswith(layer + "."):
            return index
    return None


def source_modules(root: Path = ROOT) -> dict[Path, str]:
    """Every source file of the distribution → its module name, from pyproject's
    ``package-dir`` (a file belongs to the most specific folder that contains it)."""
    config = tomllib.loads((root / "pyproject.toml").read_text())
    package_dir: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    folders = sorted(
        ((root / folder, package) for package, folder in package_dir.items()),
        key=lambda item: len(item[0].parts),
        reverse=True,
    )
    modules: dict[Path, str] = {}
    for folder, package in folders:
        for path in sorted(folder.rglob("*.py")):
            if path in modules or "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[path] = ".".join([package, *parts])
    return modules


def imports_of(source: str, module: str, is_package: bool) -> Iterator[Import]:
    """Every import statement in ``source`` (at any depth), made absolute."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(node.lineno, alias.name, bare=alias.name.split(".")[0] in BARE_NAMES)
        elif isinstance(node, ast.ImportFrom):
            names = tuple(alias.name for alias in node.names)
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*base, node.module] if node.module else base)
                yield Import(node.lineno, target, names)
            else:
                assert node.module is not None
                bare = node.module.split(".")[0] in BARE_NAMES
                yield Import(node.lineno, node.module, names, bare=bare)


def public_api(root: Path = ROOT) -> dict[str, str]:
    """``agentrt``'s lazily exported names → the module that defines each (``_EXPORTS``)."""
    tree = ast.parse((root / "agentrt" / "__init__.py").read_text())
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == "_EXPORTS":
            assert node.value is not None
            return ast.literal_eval(node.value)
    return {}


def targets(imp: Import, exports: dict[str, str]) -> list[str]:
    """The modules an import really reaches: ``from agentrt import X`` reaches the module
    that defines X (or the submodule X); the root package itself belongs to no layer."""
    if imp.module != "agentrt":
        return [imp.module]
    return [exports.get(name, f"agentrt.{name}") for name in imp.names]


def violations(modules: dict[Path, str], exports: dict[str, str], root: Path = ROOT) -> list[str]:
    problems = []
    for path, module in modules.items():
        where = path.relative_to(root)
        mine = layer_of(module)
        source = path.read_text(encoding="utf-8")
        for imp in imports_of(source, module, path.name == "__init__.py"):
            if imp.bare:
                problems.append(
                    f"{where}:{imp.line}: imports {imp.module!r} by its folder name; "
                    f"use agentrt.{imp.module}"
                )
                continue
            if module in ENTRY_POINTS:
                continue
            for target in targets(imp, exports):
                theirs = layer_of(target)
                if target.startswith("agentrt.") and theirs is None:
                    problems.append(
                        f"{where}:{imp.line}: imports {target}, which is in no layer "
                        "(add its package to LAYERS in tests/package/test_layers.py)"
                    )
                elif mine is None and theirs is not None:
                    problems.append(
                        f"{where}:{imp.line}: {module} is in no layer (add its package to "
                        "LAYERS in tests/package/test_layers.py)"
                    )
                elif mine is not None and theirs is not None and theirs > mine:
                    problems.append(
                        f"{where}:{imp.line}: {module} ({LAYERS[mine]}) imports {target} "
                        f"from a higher layer ({LAYERS[theirs]})"
                    )
    return problems


def test_source_modules_cover_every_layer_folder() -> None:
    modules = source_modules()
    names = set(modules.values())
    assert {"agentrt", "agentrt.errors", "agentrt.flows.lifecycle"} <= names
    assert "agentrt.agents.agent_context" in names
    assert all(not name.startswith(tuple(BARE_NAMES)) for name in names)


def test_imports_only_go_down_the_layers() -> None:
    problems = violations(source_modules(), public_api())
    assert not problems, "layer violations:\n" + "\n".join(problems)


def test_the_checker_sees_every_kind_of_import(tmp_path: Path) -> None:
    source = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "import agentrt.context.tokens\n"  # down: fine
        "from agentrt import errors, run_workflow\n"  # run_workflow lives in flows
        "if TYPE_CHECKING:\n"
        "    from agentrt.cli import app\n"
        "def f():\n"
        "    import flows.run\n"
        "    from ..flows import lifecycle\n"
        "    from . import registry\n"
    )
    path = tmp_path / "agents" / "thing.py"
    path.parent.mkdir()
    path.write_text(source)
    exports = {"run_workflow": "agentrt.flows.run"}
    problems = violations({path: "agentrt.agents.thing"}, exports, root=tmp_path)
    lines = sorted(int(p.split(":")[1]) for p in problems)
    assert lines == [4, 6, 8, 9], problems
    assert any("use agentrt.flows.run" in p for p in problems)
    assert any("agentrt.flows.lifecycle" in p or "agentrt.flows" in p for p in problems)
