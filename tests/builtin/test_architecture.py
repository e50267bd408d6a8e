"""architecture_analysis on small repositories with known structure."""

from __future__ import annotations

import json

from agentrt.agents.builtin import architecture
from agentrt.agents.builtin.architecture import Input, run

from .conftest import RepoFactory

CYCLE_REPO = {
    "pkg/__init__.py": "",
    "pkg/a.py": """
        from pkg import b

        def f():
            return b.g()
    """,
    "pkg/b.py": """
        from . import a  # relative import: resolved against pkg

        def g():
            return 1
    """,
    # Not cycles: the back edges are deferred (in a function) or for type checkers only.
    "pkg/c.py": """
        from typing import TYPE_CHECKING

        from pkg.d import D

        if TYPE_CHECKING:
            from pkg.e import E
    """,
    "pkg/d.py": """
        class D:
            def use(self):
                from pkg import c
                return c
    """,
    "pkg/e.py": """
        import os
        import yaml

        from pkg.c import D

        E = D
    """,
    "app/__init__.py": "",
    "app/main.py": """
        import sys
        from pkg.a import f
        from pkg.sub.deep import thing

        if __name__ == "__main__":
            sys.exit(f())
    """,
    "pkg/sub/__init__.py": "",
    "pkg/sub/deep.py": """
        from ..a import f as thing
    """,
    "pyproject.toml": """
        [project]
        name = "demo"
        version = "0"

        [project.scripts]
        demo = "app.main:f"
    """,
    "setup.cfg": """
        [options.entry_points]
        console_scripts =
            demo-legacy = app.main:f
    """,
}


def test_import_cycle_is_found_with_its_path(make_repo: RepoFactory) -> None:
    out = run(Input(repo=str(make_repo(CYCLE_REPO))))
    assert [c.path for c in out.cycles] == [["pkg.a", "pkg.b", "pkg.a"]]
    [cycle] = out.cycles
    assert cycle.imports == ["pkg/a.py:1", "pkg/b.py:1"]
    [finding] = out.findings
    assert (finding.rule, finding.path, finding.severity) == ("import-cycle", "pkg/a.py", "medium")
    assert "pkg.a → pkg.b → pkg.a" in finding.message
    assert out.counts.medium == 1


def test_graph_edges_kinds_and_externals(make_repo: RepoFactory) -> None:
    out = run(Input(repo=str(make_repo(CYCLE_REPO))))
    assert out.nodes == 10
    # a→b, b→a, c→d, c→e (type checking), d→c (deferred), e→c, main→a, main→deep, deep→a
    assert out.edges == 9
    assert out.edges_by_kind == {"runtime": 7, "deferred": 1, "type_checking": 1}
    externals = {e.name: (e.stdlib, e.imported_by) for e in out.external_imports}
    assert externals == {"os": (True, 1), "sys": (True, 1), "typing": (True, 1), "yaml": (False, 1)}
    hot = {h.module: (h.fan_in, h.fan_out) for h in out.hot_spots}
    assert hot["pkg.a"] == (3, 1)


def test_packages_layers_and_entry_points(make_repo: RepoFactory) -> None:
    out = run(Input(repo=str(make_repo(CYCLE_REPO))))
    packages = {p.name: (p.layer, p.depends_on, p.modules) for p in out.packages}
    assert packages == {"pkg": (0, [], 8), "app": (1, ["pkg"], 2)}
    entries = {(e.kind, e.name, e.target, e.path) for e in out.entry_points}
    assert entries == {
        ("main_guard", "app.main", "python app/main.py", "app/main.py"),
        ("console_script", "demo", "app.main:f", "pyproject.toml"),
        ("console_script", "demo-legacy", "app.main:f", "setup.cfg"),
    }
    lines = {e.name: e.line for e in out.entry_points}
    assert lines == {"app.main": 5, "demo": 6, "demo-legacy": 3}


def test_deferred_imports_can_count_as_cycles(make_repo: RepoFactory) -> None:
    out = run(Input(repo=str(make_repo(CYCLE_REPO)), include_deferred_in_cycles=True))
    assert sorted(c.path for c in out.cycles) == [
        ["pkg.a", "pkg.b", "pkg.a"],
        ["pkg.c", "pkg.d", "pkg.c"],
    ]


def test_src_layout_namespace_dirs_and_loose_scripts(make_repo: RepoFactory) -> None:
    root = make_repo(
        {
            "src/lib/__init__.py": "",
            "src/lib/core.py": "from lib.plugins.extra import X\n",
            "src/lib/plugins/extra.py": "X = 1\n",  # a namespace portion: no __init__.py
            "tests/test_core.py": "import helpers\nfrom lib import core\n",
            "tests/helpers.py": "",
            "tests/conftest.py": "",
            "scripts/conftest.py": "",
        }
    )
    out = run(Input(repo=str(root)))
    hot = {h.module: h.path for h in out.hot_spots}
    assert hot["lib.plugins.extra"] == "src/lib/plugins/extra.py"
    assert hot["lib.core"] == "src/lib/core.py"
    assert hot["helpers"] == "tests/helpers.py"
    assert out.edges == 3
    # Two loose conftest.py files would share a name: they are told apart by path.
    assert out.nodes == 7
    assert {p.name for p in out.packages} == {"lib", "tests", "scripts"}


def test_repository_that_is_a_package(make_repo: RepoFactory) -> None:
    """A root with __init__.py (like site-packages/prefect) names modules after itself."""
    root = make_repo({"__init__.py": "", "x.py": "", "y/__init__.py": "", "y/z.py": ""})
    (root / "x.py").write_text(f"from {root.name}.y import z\nfrom . import y\n")
    out = run(Input(repo=str(root)))
    assert out.edges == 2
    assert {p.name for p in out.packages} == {root.name, f"{root.name}.x", f"{root.name}.y"}


def test_output_is_deterministic_json_and_renders(make_repo: RepoFactory) -> None:
    root = make_repo(CYCLE_REPO)
    first = run(Input(repo=str(root))).model_dump(mode="json")
    second = run(Input(repo=str(root))).model_dump(mode="json")
    assert json.dumps(first) == json.dumps(second)
    md = architecture.render_markdown(run(Input(repo=str(root))))
    assert "## Architecture" in md
    assert "`pkg.a → pkg.b → pkg.a`" in md
    assert "`pkg/a.py:1`" in md
