"""The two built-in pipelines end to end through Prefect, on small real repositories."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from agentrt.flows.run import run_workflow

pytestmark = pytest.mark.usefixtures("prefect_harness")

FILES = {
    "pkg/__init__.py": '"""A package."""\n',
    "pkg/a.py": (
        '"""Module a."""\nfrom pkg import b\n\n\ndef helper(x):\n    return b.other(x) + 1\n'
    ),
    "pkg/b.py": (
        '"""Module b."""\nfrom pkg import a\n\n\n'
        'def other(x):\n    """Documented."""\n    return x\n'
    ),
    "pkg/shell.py": (
        '"""Runs things."""\nimport subprocess\n\n\n'
        "def run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
    ),
    "README.md": "# demo\n",
}


def make_repo(root: Path) -> Path:
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


def states(result) -> dict[str, str]:
    return {sid: s.state for sid, s in result.steps.items()}


def test_code_analysis_end_to_end_and_cache_behaviour(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    first = run_workflow("code-analysis", {"repo": str(repo), "task": "helper in module a"})
    assert first.state == "completed", first.errors
    assert set(states(first).values()) == {"completed"}
    out = first.outputs
    assert any(c for c in out["architecture_analysis"]["cycles"])  # pkg.a <-> pkg.b
    assert "pkg/a.py" in out["context_gathering"]["files"]
    assert out["context_gathering"]["tokens"] <= out["context_gathering"]["budget"]
    report = Path(first.report_paths["markdown"]).read_text()
    assert "## architecture_analysis" in report and "## code_review" in report
    # One coverage line per analyser tool: what it read, and which code it left out.
    assert "## Coverage" in report
    assert "- **code_review** · ruff: 4 Python files; nothing skipped" in report
    assert "- **documentation_generation** · docstrings (ast): 4 Python files;" in report
    assert out["code_review"]["language_coverage"][0]["line"] == (
        "ruff: 4 Python files; nothing skipped"
    )
    # Nobody reads context_gathering's output, but the analysers wait for it: findings and
    # documented objects inside its spans count (located citations), so its efficiency is
    # known (docs/metrics.md).
    from agentrt.flows.metrics import load_records

    rows = load_records(first.report_paths["metrics"]).set_index("step")
    context = rows.loc["context_gathering"]
    assert context["tokens_delivered"] > 0 and context["tokens_referenced"] > 0
    assert 0 < context["context_efficiency"] <= 1

    again = run_workflow("code-analysis", {"repo": str(repo), "task": "helper in module a"})
    assert set(states(again).values()) == {"cached"}
    assert again.outputs == first.outputs

    # A non-Python file: only the agent that reads every file re-runs.
    (repo / "README.md").write_text("# demo, edited\n")
    docs_only = run_workflow("code-analysis", {"repo": str(repo), "task": "helper in module a"})
    assert states(docs_only) == {
        "context_gathering": "completed",
        "architecture_analysis": "cached",
        "code_review": "cached",
        "documentation_generation": "cached",
    }
    # A Python file: every agent that reads Python re-runs.
    (repo / "pkg" / "b.py").write_text('"""Module b."""\n\n\ndef other(x):\n    return x\n')
    code = run_workflow("code-analysis", {"repo": str(repo), "task": "helper in module a"})
    assert set(states(code).values()) == {"completed"}
    assert not code.outputs["architecture_analysis"]["cycles"]


def test_review_chain_since_revision_reviews_only_changed_files(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "initial")
    base = git(repo, "rev-parse", "HEAD")
    (repo / "pkg" / "new.py").write_text(
        textwrap.dedent('''
        """New module."""
        import subprocess


        def deploy(target):
            return subprocess.call("deploy " + target, shell=True)
        ''')
    )
    result = run_workflow("review-chain", {"repo": str(repo), "since": base})
    out = result.outputs
    assert out["git_changes"]["files"] == ["pkg/new.py"]
    assert out["code_review"]["files_analysed"] == 1
    assert out["security_validation"]["files_analysed"] == 1
    assert {f["path"] for f in out["security_validation"]["findings"]} == {"pkg/new.py"}
    assert out["final_approval"]["approved"] is False  # bandit B602 (shell=True) is high
    assert result.state == "completed"

    # Code in other languages: lizard measures the Go file; nothing reads the shell script,
    # and the closing summary says which tools left which languages out.
    (repo / "svc").mkdir()
    (repo / "svc" / "main.go").write_text("package main\n\nfunc main() {}\n")
    (repo / "deploy.sh").write_text("#!/bin/sh\necho deploy\n")
    whole = run_workflow("review-chain", {"repo": str(repo)})
    assert whole.outputs["git_changes"]["files"] is None
    assert whole.outputs["code_review"]["files_analysed"] == 6  # five Python, one Go
    from agentrt.cli.runtime import _closing_summary

    assert "\n4 of 5 analyser tools do not read some of the code here (Go, Shell);" in (
        _closing_summary(whole)
    )
    paths = {f["path"] for f in whole.outputs["security_validation"]["findings"]}
    assert {"pkg/shell.py", "pkg/new.py"} <= paths


def test_transcript_context_flow_on_a_real_session(tmp_path: Path, shared_dir: Path) -> None:
    transcript = shared_dir / "data" / "transcripts" / "spotter-fa812bfe.jsonl"
    result = run_workflow(
        "transcript-context",
        {
            "transcript": str(transcript),
            "task": "check the error handling",
            "output": str(tmp_path),
        },
    )
    assert result.state == "completed", result.errors
    out = result.outputs["transcript_context"]
    assert 0 < out["tokens"] <= 18_000
    assert out["prompts_verbatim"] == out["prompts_total"] > 0
    files = sorted(tmp_path.glob("current_transcript_*.txt"))
    assert [str(f) for f in files] == out["files"] and len(files) == out["chunks"]
    assert result.steps["transcript_context"].tokens_delivered == out["tokens"]
