"""code_review: ruff findings with severities, long and complex functions."""

from __future__ import annotations

import json

from agentrt.agents.builtin.code_review import Input, render_markdown, ruff_severity, run

from .conftest import RepoFactory

BRANCHY = "\n".join(
    ["def branchy(x):", "    total = 0"]
    + [f"    if x == {i}:\n        total += {i}" for i in range(12)]
    + ["    return total", ""]
)
LONG = "def long_one():\n" + "".join(f"    print({i})\n" for i in range(70)) + "    return 0\n"

REPO = {
    "app.py": """
        import os


        def greet(name):
            return f"hello {nme}"
    """,
    "broken.py": "def f(:\n    pass\n",
    "metrics.py": BRANCHY + "\n\n" + LONG,
}


def test_ruff_findings_mapped_to_severities(make_repo: RepoFactory) -> None:
    out = run(Input(repo=str(make_repo(REPO))))
    by_rule = {(f.rule, f.path): f for f in out.findings}
    undefined = by_rule[("F821", "app.py")]
    assert (undefined.line, undefined.column, undefined.severity) == (5, 21, "high")
    assert "nme" in undefined.message and undefined.tool == "ruff"
    assert by_rule[("F401", "app.py")].severity == "low"
    syntax = by_rule[("invalid-syntax", "broken.py")]
    assert syntax.severity == "critical"
    # Ruff reported the syntax error, so the analyser's own parse error is not repeated.
    assert not any(f.rule == "syntax-error" for f in out.findings)
    assert out.ruff.config == "default: select E,F,W,B, ignore E501"
    assert out.counts.critical >= 1 and out.counts.high == 1


def test_long_and_complex_functions(make_repo: RepoFactory) -> None:
    out = run(Input(repo=str(make_repo(REPO))))
    [complex_] = [f for f in out.findings if f.rule == "cyclomatic-complexity"]
    assert (complex_.path, complex_.line, complex_.severity) == ("metrics.py", 1, "low")
    assert "`branchy` has cyclomatic complexity 13 (rank C" in complex_.message
    [long_] = [f for f in out.findings if f.rule == "long-function"]
    assert long_.path == "metrics.py" and "`long_one` is 72 lines long (limit 60)" in long_.message
    stricter = run(Input(repo=str(make_repo(REPO)), max_function_lines=30, complexity_rank="D"))
    assert not any(f.rule == "cyclomatic-complexity" for f in stricter.findings)
    assert [f.severity for f in stricter.findings if f.rule == "long-function"] == ["medium"]


def test_repository_ruff_config_is_honoured(make_repo: RepoFactory) -> None:
    files = {
        **REPO,
        "ruff.toml": '[lint]\nselect = ["F821"]\nexclude = ["broken.py"]\n',
    }
    root = make_repo(files)
    out = run(Input(repo=str(root)))
    assert out.ruff.config == "repository: ruff.toml"
    assert {f.rule for f in out.findings if f.tool == "ruff"} == {"F821"}
    # broken.py is excluded by the repository, so only our own parse notices it.
    assert [f.path for f in out.findings if f.rule == "syntax-error"] == ["broken.py"]
    forced = run(Input(repo=str(root), ruff_config="default"))
    assert "F401" in {f.rule for f in forced.findings}


def test_broken_repository_config_falls_back_to_defaults(make_repo: RepoFactory) -> None:
    root = make_repo({**REPO, "ruff.toml": "this is = not [valid toml\n"})
    out = run(Input(repo=str(root)))
    assert out.ruff.config.startswith("default:")
    assert "ruff configuration failed" in out.notes[0]
    assert "F821" in {f.rule for f in out.findings}


def test_only_selected_files(make_repo: RepoFactory) -> None:
    out = run(Input(repo=str(make_repo(REPO)), files=["app.py"]))
    assert {f.path for f in out.findings} == {"app.py"} and out.files_analysed == 1


def test_severity_mapping() -> None:
    assert ruff_severity("E999") == "critical"
    assert ruff_severity("F821") == "high" and ruff_severity("F706") == "high"
    assert ruff_severity("F811") == "medium" and ruff_severity("F841") == "low"
    assert ruff_severity("E722") == "medium" and ruff_severity("E711") == "low"
    assert ruff_severity("B006") == "medium" and ruff_severity("B905") == "low"
    assert ruff_severity("UP035") == "low"


def test_deterministic_json_and_markdown(make_repo: RepoFactory) -> None:
    root = make_repo(REPO)
    first, second = run(Input(repo=str(root))), run(Input(repo=str(root)))
    assert json.dumps(first.model_dump(mode="json")) == json.dumps(second.model_dump(mode="json"))
    md = render_markdown(first)
    assert "## Code review" in md and "`app.py:5:21`" in md and "`F821`" in md
