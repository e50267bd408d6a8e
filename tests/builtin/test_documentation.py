"""documentation_generation: public API, signatures, coverage, undocumented findings."""

from __future__ import annotations

import json

from agentrt.agents.builtin.documentation import Input, render_markdown, run

from .conftest import RepoFactory

REPO = {
    "lib/__init__.py": '"""The lib package."""\n',
    "lib/shapes.py": '''
        """Shapes and their areas.

        A second paragraph that is not part of the summary.
        """

        from typing import overload

        __all__ = ["Circle", "area", "scale"]


        class Circle:
            """A circle
            of some radius."""

            def __init__(self, radius: float = 1.0) -> None:
                self.radius = radius

            @property
            def diameter(self) -> float:
                return 2 * self.radius

            @diameter.setter
            def diameter(self, value: float) -> None:
                self.radius = value / 2

            def grow(self, by: float, *, twice: bool = False) -> "Circle":
                """Return a bigger circle."""
                return Circle(self.radius + by * (2 if twice else 1))

            def _secret(self):
                pass


        @overload
        def area(shape: Circle) -> float: ...
        @overload
        def area(shape: None) -> None: ...
        def area(shape):
            """Area of a shape."""
            return None


        async def scale(shape: Circle, factor: int = 2, *args, **kwargs) -> Circle:
            return shape


        def not_exported():
            pass
    ''',
    "lib/_private.py": "def hidden():\n    pass\n",
    "lib/plain.py": "def helper(x, y=[1, 2]):\n    return x\n",
    "tests/test_shapes.py": "def test_x():\n    pass\n",
}


def test_coverage_and_undocumented_findings(make_repo: RepoFactory) -> None:
    out = run(Input(repo=str(make_repo(REPO))))
    modules = {m.name: m for m in out.modules}
    assert sorted(modules) == ["lib", "lib.plain", "lib.shapes"]
    shapes = modules["lib.shapes"]
    assert [(o.kind, o.name, o.documented) for o in shapes.objects] == [
        ("class", "Circle", True),
        ("property", "Circle.diameter", False),
        ("method", "Circle.grow", True),
        ("function", "area", True),
        ("function", "scale", False),
    ]
    # module + 5 objects; documented: module, Circle, grow, area.
    assert (shapes.coverage.documented, shapes.coverage.total, shapes.coverage.percent) == (
        4,
        6,
        66.7,
    )
    assert (modules["lib.plain"].coverage.documented, modules["lib.plain"].coverage.total) == (0, 2)
    assert (out.coverage.documented, out.coverage.total, out.coverage.percent) == (5, 9, 55.6)
    undocumented = {(f.rule, f.path, f.line, f.severity) for f in out.undocumented}
    assert undocumented == {
        ("undocumented-property", "lib/shapes.py", 19, "info"),
        ("undocumented-function", "lib/shapes.py", 43, "low"),
        ("undocumented-module", "lib/plain.py", 1, "info"),
        ("undocumented-function", "lib/plain.py", 1, "low"),
    }
    scale = next(f for f in out.undocumented if f.line == 43)
    assert scale.message == "public function `lib.shapes.scale` has no docstring"
    assert (out.counts.low, out.counts.info) == (2, 2)


def test_signatures_and_summaries(make_repo: RepoFactory) -> None:
    out = run(Input(repo=str(make_repo(REPO))))
    shapes = next(m for m in out.modules if m.name == "lib.shapes")
    assert shapes.summary == "Shapes and their areas."
    objects = {o.name: o for o in shapes.objects}
    assert objects["Circle"].summary == "A circle of some radius."
    assert objects["Circle.grow"].signature == (
        "def grow(self, by: float, *, twice: bool=False) -> 'Circle'"
    )
    assert objects["scale"].signature == (
        "async def scale(shape: Circle, factor: int=2, *args, **kwargs) -> Circle"
    )
    assert objects["Circle.diameter"].signature.startswith("@property\ndef diameter(self)")
    assert objects["area"].signature == "def area(shape)"  # the implementation, not overloads


def test_reference_markdown_and_report(make_repo: RepoFactory) -> None:
    out = run(Input(repo=str(make_repo(REPO))))
    ref = out.reference_markdown
    assert ref.startswith("# API reference\n")
    assert "## `lib.shapes`" in ref and "### `Circle`" in ref and "#### `Circle.grow`" in ref
    assert "```python\ndef helper(x, y=[1, 2])\n```" in ref
    assert "_Undocumented._" in ref
    md = render_markdown(out)
    assert md.startswith("## Documentation") and "### API reference" in md
    assert "##### `Circle.grow`" in md and "`lib/plain.py:1`" in md


def test_private_and_test_modules_on_request(make_repo: RepoFactory) -> None:
    root = make_repo(REPO)
    out = run(Input(repo=str(root), include_private=True, include_tests=True))
    names = {m.name for m in out.modules}
    assert {"lib._private", "tests.test_shapes"} <= names


def test_deterministic(make_repo: RepoFactory) -> None:
    root = make_repo(REPO)
    first, second = run(Input(repo=str(root))), run(Input(repo=str(root)))
    assert json.dumps(first.model_dump(mode="json")) == json.dumps(second.model_dump(mode="json"))
