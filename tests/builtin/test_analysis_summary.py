"""analysis_summary's pieces without a run: the README's first paragraph, the output hook's
path checks, the basic guide from digests, the page's markdown."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrt.agents.builtin.analysis_summary import (
    BASIC,
    Input,
    Output,
    basic,
    finish,
    readme_paragraph,
    render_markdown,
)
from agentrt.agents.llm import LLMCall, OutputRejected


@pytest.mark.parametrize(
    ("name", "text", "first"),
    [
        (
            "README.md",
            "# tool\n\n[![ci](b.svg)](x) ![logo](l.png)\n<p align=center>x</p>\n\n"
            "**tool** does one thing\nwell.\n\nMore.\n",
            "**tool** does one thing well.",
        ),
        (
            "README.rst",
            "=====\ntool\n=====\n\n.. image:: b.svg\n\nA tool for things.\n\n1. first\n",
            "A tool for things.",
        ),
        ("README.md", "Title\n-----\n\n- a list\n- only\n\n```\ncode\n```\n", None),
        ("README", "word " * 200, " ".join(["word"] * 90) + " …"),
    ],
)
def test_readme_paragraph(tmp_path: Path, name: str, text: str, first: str | None) -> None:
    (tmp_path / name).write_text(text)
    assert readme_paragraph(tmp_path) == first


def test_no_readme(tmp_path: Path) -> None:
    assert readme_paragraph(tmp_path) is None
    assert Input(repo=str(tmp_path)).readme == ""  # read when the input validates
    assert Input(repo=str(tmp_path), readme="given").readme == "given"


PAGE = {
    "overview": "o",
    "data_flow": "d",
    "risks": [{"path": "/REPO/pkg/a.py:3", "severity": "high", "why": "w"}],
    "read_first": [{"path": "./pkg/a.py", "why": "w"}],
}


def test_the_hook_normalises_paths_and_rejects_missing_ones(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    call = LLMCall("analysis_summary@1.0.0", "openai:gpt-4o-mini", 0, ())
    inputs = Input(repo=str(tmp_path))
    page = Output.model_validate(
        {**PAGE, "risks": [{**PAGE["risks"][0], "path": f"{tmp_path}/pkg/a.py:3"}]}
    )
    done = finish(page, inputs, call)
    assert [r.path for r in done.risks] == ["pkg/a.py"]
    assert [r.path for r in done.read_first] == ["pkg/a.py"]
    assert done.written_by == "openai:gpt-4o-mini"
    folder = Output.model_validate({**PAGE, "risks": [{**PAGE["risks"][0], "path": "pkg"}]})
    assert finish(folder, inputs, call).risks[0].path == "pkg"  # a folder is a place too
    bad = Output.model_validate(
        {**PAGE, "risks": [{**PAGE["risks"][0], "path": "../outside.py"}],
         "read_first": [{"path": "pkg", "why": "a folder is not a file to read"}]}
    )  # fmt: skip
    with pytest.raises(OutputRejected) as info:
        finish(bad, inputs, call)
    assert "risks[0].path '../outside.py' is not in the repository" in str(info.value)
    assert "read_first[0].path 'pkg' is not a file of the repository" in str(info.value)


def test_the_basic_guide_from_digests(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# shop\n\nShop sells things.\n")
    inputs = Input.model_validate(
        {
            "repo": str(tmp_path),
            "files": ["shop/core.py", "shop/api.py"],
            "architecture_analysis": {
                "summary": "2 modules",
                "packages": [
                    {"name": "shop", "modules": 2, "layer": 1, "depends_on": ["util"]},
                    {"name": "util", "modules": 1, "layer": 0, "used_by": ["shop"]},
                ],
                "entry_points": [
                    {"kind": "console_script", "name": "shop", "target": "shop.api:main",
                     "path": "pyproject.toml", "line": 9}
                ],
                "hot_spots": [{"module": "shop.core", "path": "shop/core.py", "fan_in": 7,
                               "fan_out": 1}],
                "cycles": [{"size": 2, "path": ["shop.a", "shop.b", "shop.a"],
                            "imports": ["shop/a.py:1", "shop/b.py:1"], "modules": []}],
                "external_imports": [{"name": "ignored", "stdlib": True, "imported_by": 1}],
            },
            "code_review": {
                "findings": [
                    {"path": "shop/api.py", "line": 4, "rule": "E722", "severity": "medium",
                     "message": "bare except", "tool": "ruff", "column": 1},
                    {"path": "shop/api.py", "line": 9, "rule": "E722", "severity": "medium",
                     "message": "bare except", "tool": "ruff"},
                    {"path": "shop/core.py", "line": 2, "rule": "B602", "severity": "high",
                     "message": "shell=True", "tool": "bandit"},
                    {"path": "shop/x.py", "line": 1, "rule": "doc", "severity": "info",
                     "message": "meh", "tool": "t"},
                ]
            },
            "documentation_generation": {
                "coverage": {"documented": 1, "total": 4, "percent": 25.0},
                "undocumented": [
                    {"path": "shop/core.py", "line": 3, "rule": "undocumented-function",
                     "severity": "info", "message": "m", "tool": "agentrt"},
                ],
                "reference_markdown": "ignored",
            },
        }
    )  # fmt: skip
    page = basic(inputs)
    assert page.written_by == BASIC
    assert page.overview.startswith("Shop sells things. 2 modules.")
    assert "`shop` (shop.api:main)" in page.overview
    assert [p.name for p in page.packages] == ["shop", "util"]
    assert "layer 1 (shop) → layer 0 (util)" in page.data_flow and "shop → util" in page.data_flow
    assert [(r.path, r.severity) for r in page.risks] == [
        ("shop/a.py", "medium"),  # the import cycle, at its first import
        ("shop/core.py", "high"),  # worst finding first, one per file, info left out
        ("shop/api.py", "medium"),
        ("shop/core.py", "low"),  # the documentation gap
    ]
    assert [(r.path, r.why) for r in page.read_first] == [
        ("shop/core.py", "imported by 7 modules."),
        ("shop/api.py", "central to the repository (gathered for the overview)."),
    ]
    markdown = render_markdown(page)
    assert markdown.startswith("## A guide to this repository\n\n_Written by `analysis_summary")
    for heading in ("### Main packages", "### How data flows", "### Where the risks are"):
        assert heading in markdown
    assert "1. `shop/core.py`: imported by 7 modules." in markdown
