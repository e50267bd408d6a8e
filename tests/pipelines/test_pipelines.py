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


ANALYSERS = ("architecture_analysis", "code_review", "documentation_generation")
#: No model is configured in tests: analysis_summary's deterministic fallback writes the guide.
SUMMARY = {"analysis_summary": "fallback"}


def states(result) -> dict[str, str]:
    return {sid: s.state for sid, s in result.steps.items()}


def test_code_analysis_end_to_end_and_cache_behaviour(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    first = run_workflow("code-analysis", {"repo": str(repo), "task": "helper in module a"})
    assert first.state == "completed", first.errors
    assert states(first) == {
        **dict.fromkeys(["context_gathering", *ANALYSERS], "completed"),
        **SUMMARY,
    }
    assert first.outcome == "completed" and first.fallbacks == 0  # no model: not a failure
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
    assert states(again) == {
        **dict.fromkeys(["context_gathering", *ANALYSERS], "cached"),
        **SUMMARY,
    }
    assert again.outputs == first.outputs
    # The guide's fallback came from the cache too (its LLM agent was not run): nothing ran.
    assert again.steps["analysis_summary"].from_cache
    from agentrt.cli.runtime import _closing_summary

    assert "\nall agents were served from cache: nothing changed since the last run" in (
        _closing_summary(again)
    )

    # A non-Python file: context_gathering (it reads every file) re-runs. The analysers read
    # only Python files and its output (context.sources), so they are served from the cache
    # exactly when its output is unchanged; the relevance scores of what it gathers are
    # computed over the whole repository, so an edit anywhere may change them.
    (repo / "README.md").write_text("# demo, edited\n")
    docs_only = run_workflow("code-analysis", {"repo": str(repo), "task": "helper in module a"})
    same = docs_only.outputs["context_gathering"] == first.outputs["context_gathering"]
    assert states(docs_only) == {
        "context_gathering": "completed",
        **dict.fromkeys(ANALYSERS, "cached" if same else "completed"),
        **SUMMARY,
    }
    # A Python file: every agent that reads Python re-runs.
    (repo / "pkg" / "b.py").write_text('"""Module b."""\n\n\ndef other(x):\n    return x\n')
    code = run_workflow("code-analysis", {"repo": str(repo), "task": "helper in module a"})
    assert states(code) == {
        **dict.fromkeys(["context_gathering", *ANALYSERS], "completed"),
        **SUMMARY,
    }
    assert not code.outputs["architecture_analysis"]["cycles"]


SHOP = {
    "pkg/__init__.py": '"""Shop package."""\n',
    "pkg/util.py": (
        '"""Shared helpers."""\n\n\ndef rounded(amount):\n'
        '    """Round a money amount to cents."""\n    return round(amount, 2)\n'
    ),
    "pkg/billing.py": textwrap.dedent(
        '''\
        """Invoices."""
        from pkg.util import rounded


        def invoice_total(lines):
            total = 0
            for line in lines:
                try:
                    total += line["price"] * line["quantity"]
                except:
                    pass
            return rounded(total)
        '''
    ),
    "pkg/shipping.py": textwrap.dedent(
        '''\
        """Shipments."""
        import os

        from pkg.util import rounded


        def shipment_cost(weight, distance):
            return rounded(weight * distance * 0.01)
        '''
    ),
    "README.md": "# shop\n",
}


def test_code_analysis_analysers_focus_on_the_gathered_files(tmp_path: Path) -> None:
    """The analysers read context_gathering's output (ctx.upstream): each reports what it
    found in the files gathered for the task, most relevant first, and its context use."""
    from agentrt.flows.metrics import load_records

    repo = tmp_path / "shop"
    for rel, text in SHOP.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    firsts = {}
    for task, first, other, rule, line in (
        ("invoice totals in billing", "pkg/billing.py", "pkg/shipping.py", "E722", 2),
        ("shipment cost in shipping", "pkg/shipping.py", "pkg/billing.py", "F401", 4),
    ):
        result = run_workflow("code-analysis", {"repo": str(repo), "task": task})
        assert result.state == "completed", result.errors
        out = result.outputs
        gathered = out["context_gathering"]
        assert gathered["files"][0] == first and other not in gathered["files"]
        for sid in ANALYSERS:
            focus = out[sid]["focus"]
            assert focus["task"] == task
            # The gathered order, restricted to what the agent analyses (not README.md).
            assert focus["files"] == [f for f in gathered["files"] if f.endswith(".py")]
            assert all(f["path"] in focus["files"] for f in focus["findings"])
        review = out["code_review"]
        everywhere = {(f["path"], f["rule"]) for f in review["findings"]}
        assert {("pkg/billing.py", "E722"), ("pkg/shipping.py", "F401")} <= everywhere
        focused = [(f["path"], f["rule"]) for f in review["focus"]["findings"]]
        assert focused == [(first, rule)]  # the other file's finding is not in focus
        docs = out["documentation_generation"]["focus"]
        assert [m["path"] for m in docs["modules"]] == docs["files"]
        assert docs["findings"][0]["path"] == first  # its undocumented function
        roles = out["architecture_analysis"]["focus"]["modules"]
        assert roles[0]["path"] == first
        assert [(i["module"], i["line"]) for i in roles[0]["imports"]] == [("pkg.util", line)]
        # Their context use: delivered = the gathered items' tokens; referenced = the items
        # their focus cites with a line (not null, so efficiency is measured).
        rows = load_records(result.report_paths["metrics"]).set_index("step")
        items = {i["path"]: i["tokens"] for i in gathered["items"]}
        for sid in ANALYSERS:
            row = rows.loc[sid]
            assert row["tokens_delivered"] == sum(items.values())
            assert row["context_efficiency"] == pytest.approx(
                row["tokens_referenced"] / row["tokens_delivered"], abs=1e-6
            )
        # Its import of pkg.util is in `first`'s item; util imports nothing.
        assert rows.loc["architecture_analysis", "tokens_referenced"] == items[first]
        report = Path(result.report_paths["markdown"]).read_text()
        assert "### Focus: the files gathered for the task" in report
        # The closing summary counts the gathered context once, not once per reader.
        from agentrt.cli.runtime import _closing_summary

        assert f" · {sum(items.values()):,} context tokens" in _closing_summary(result)
        firsts[task] = review["focus"]["files"][0]
    assert len(set(firsts.values())) == 2  # the task decides what the analysers focus on


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

    assert out["code_review"]["focus"] is None  # no context_gathering step here

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

    # A non-Python file: only the agents that read every file re-run (cache.include).
    (repo / "README.md").write_text("# demo, edited\n")
    docs_only = run_workflow("review-chain", {"repo": str(repo)})
    assert states(docs_only) == {
        "git_changes": "completed",
        "code_review": "cached",
        "security_validation": "completed",
        "performance_validation": "cached",
        "llm_review": "fallback",  # no model configured: code_review stands in
        "final_approval": "cached",
    }


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
