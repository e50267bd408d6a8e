"""review-chain's llm_review on a change bigger than its grant, end to end through Prefect:
the change is reviewed in groups of files (one model call each, the FunctionModel records
every prompt), each prompt within the grant and holding only its group's hunks and the
analysers' findings on its group's files, and the merged output has every group's findings
and triage."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ToolCallPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from tests.llm.test_review_chain import git

pytestmark = pytest.mark.usefixtures("prefect_harness")

N_FILES = 16
#: review-chain's budget in this test: llm_review's grant, half of it for the change's hunks
#: (chunking.share), so the sixteen changed files need several calls.
BUDGET = 3_600

BASE = '''"""Ledger part {n}."""


def total_{n}(rows):
    return sum(row["amount"] for row in rows)
'''

ADDED = '''

def parse_amounts_{n}(lines, currency="EUR", rounding=2):
    """Parse the amount column of ledger part {n} and convert it to {{currency}} cents."""
    parsed = []
    for index, line in enumerate(lines):
        fields = line.split(";")
        try:
            value = float(fields[3].replace(",", "."))
        except:
            value = 0
        if fields[2] != currency:
            value = value * RATES_{n}.get(fields[2], 1.0)
        parsed.append((index, round(value * 100, rounding)))
    return parsed


RATES_{n} = {{"USD": 0.92, "GBP": 1.17, "CHF": 1.04, "SEK": 0.088, "NOK": 0.086}}
'''


@pytest.fixture
def big_change(tmp_path: Path) -> tuple[Path, str]:
    """Sixteen unrelated modules, each given a new function with a bare except."""
    repo = tmp_path / "repo"
    (repo / "ledger").mkdir(parents=True)
    (repo / "ledger" / "__init__.py").write_text("")
    for n in range(N_FILES):
        (repo / "ledger" / f"part_{n:02}.py").write_text(BASE.format(n=n))
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD")
    for n in range(N_FILES):
        path = repo / "ledger" / f"part_{n:02}.py"
        path.write_text(path.read_text() + ADDED.format(n=n))
    return repo, base


HUNK = re.compile(r"^## (\S+?):(\d+)-(\d+) \(\w+\) — changed", re.M)
UPSTREAM = re.compile(r"^### (\w+)\n\n(\{.*\})$", re.M)


class Reviewer:
    """A FunctionModel body that reviews what it is shown: one finding at the first changed
    hunk of its prompt, and a triage of the first static finding listed upstream."""

    def __init__(self) -> None:
        self.prompts: list[tuple[str, str]] = []  # (instructions, user message)
        self._lock = threading.Lock()

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        user = "\n".join(
            str(part.content)
            for message in messages
            if isinstance(message, ModelRequest)
            for part in message.parts
            if isinstance(part, UserPromptPart)
        )
        with self._lock:
            self.prompts.append((info.instructions or "", user))
        path, start, _end = HUNK.search(user).groups()  # type: ignore[union-attr]
        triage = []
        for finding in upstream_findings(user):
            if finding["path"].startswith("ledger/part_"):
                triage = [
                    {
                        "path": finding["path"],
                        "line": finding["line"],
                        "rule": finding["rule"],
                        "verdict": "confirmed",
                        "reason": "The bare except hides parse errors.",
                    }
                ]
                break
        answer: dict[str, Any] = {
            "summary": f"Reviewed the change around {path}.",
            "confidence": 0.6,
            "findings": [
                {
                    "path": path,
                    "line": int(start),
                    "rule": "swallowed-exception",
                    "severity": "medium",
                    "confidence": "high",
                    "message": "A bare except turns bad amounts into 0.",
                    "tool": "llm",
                }
            ],
            "triage": triage,
        }
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, json.dumps(answer))])


def upstream_findings(user: str) -> list[dict[str, Any]]:
    found = []
    for _sid, data in UPSTREAM.findall(user):
        for finding in json.loads(data).get("findings") or []:
            if isinstance(finding, dict):
                found.append(finding)
    return found


def review_chain(budget: int) -> Any:
    import agentrt.flows
    from agentrt.flows.workflow import WorkflowManifest

    path = Path(agentrt.flows.__file__).parent / "workflows" / "review-chain.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["budget"] = {"total_tokens": budget}
    return WorkflowManifest.model_validate(spec)


def test_a_change_bigger_than_the_grant_is_reviewed_in_chunks_and_merged(
    big_change: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentrt.agents import llm
    from agentrt.context.tokens import count_tokens
    from agentrt.flows.run import run_workflow

    repo, base = big_change
    reviewer = Reviewer()
    monkeypatch.setenv("AGENTRT_MODEL", "function:review")
    monkeypatch.setattr(llm, "resolve_model", lambda spec: FunctionModel(reviewer))
    result = run_workflow(review_chain(BUDGET), {"repo": str(repo), "since": base})
    assert result.state == "completed", result.errors
    step = result.steps["llm_review"]
    assert step.state == "completed", step.reason
    changed = [f"ledger/part_{n:02}.py" for n in range(N_FILES)]
    assert result.outputs["git_changes"]["files"] == changed

    # Several calls, one per chunk, each a task run of its own.
    calls = len(reviewer.prompts)
    assert step.chunks is not None and step.chunks >= 3 and calls == step.chunks
    assert len(step.task_run_ids) == calls

    granted = step.tokens_allocated
    assert granted == BUDGET
    seen: list[str] = []
    for instructions, user in reviewer.prompts:
        # Within the grant, recounted from what the model was sent.
        assert count_tokens(instructions) + count_tokens(user) <= granted
        # Only this chunk's hunks (no file's in two prompts, every file's in one), and
        # the analysers' findings on this chunk's files only.
        hunks = {path for path, _a, _b in HUNK.findall(user)}
        static = upstream_findings(user)
        assert static and {f["path"] for f in static} <= hunks
        # The modules are unrelated: no other group's file is shown at all.
        shown = set(re.findall(r"^## (\S+?):\d+-\d+ \(", user, re.M))
        assert shown <= hunks | {"ledger/__init__.py"}, shown - hunks
        seen += sorted(hunks)
    assert sorted(seen) == changed

    # Merged: every chunk's finding and triage, once each, by place.
    out = result.outputs["llm_review"]
    firsts = {HUNK.search(user).group(1) for _i, user in reviewer.prompts}  # type: ignore[union-attr]
    assert {f["path"] for f in out["findings"]} == firsts and len(out["findings"]) == calls
    assert all(f["tool"] == "llm_review" for f in out["findings"])
    assert out["counts"]["medium"] == calls
    assert len(out["triage"]) == calls and len({t["path"] for t in out["triage"]}) == calls
    static_keys = {
        (f["path"], f["line"], f["rule"]) for f in result.outputs["code_review"]["findings"]
    }
    assert {(t["path"], t["line"], t["rule"]) for t in out["triage"]} <= static_keys
    assert out["summary"].count("Reviewed the change around") == calls

    # The gate counts the merged findings with the static ones.
    gate = result.outputs["final_approval"]
    assert gate["counts"]["medium"] >= calls
    assert "confirmed" in gate["llm_triage"]
