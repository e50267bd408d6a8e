"""final_approval: thresholds, rules, merging upstream outputs, reasons."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentrt.agents.builtin.approval import Input, render_markdown, run
from agentrt.agents.builtin.common import Finding


def _f(severity: str, rule: str = "R1", path: str = "a.py", line: int = 1, **kw: object) -> Finding:
    return Finding(
        path=path, line=line, rule=rule, severity=severity, message=f"{rule} here", tool="t", **kw
    )  # type: ignore[arg-type]


def test_approves_when_within_thresholds() -> None:
    out = run(Input(findings=[_f("medium"), _f("low", line=2)]))
    assert out.approved
    assert out.reasons == ["critical: 0 ≤ max 0", "high: 0 ≤ max 0"]
    assert (out.counts.medium, out.counts.low) == (1, 1) and out.blocking == []
    assert "**✅ Approved**" in render_markdown(out)


def test_rejects_with_counts_and_worst_findings() -> None:
    findings = [
        _f("high", "B602", "svc.py", 7),
        _f("critical", "invalid-syntax", "broken.py", 1),
        _f("medium", "B506", "svc.py", 11),
        _f("medium", "F811", "x.py", 3),
    ]
    out = run(Input(findings=findings, max_medium=1))
    assert not out.approved
    assert out.reasons[0] == (
        "critical: 1 > max 0 — worst: broken.py:1 invalid-syntax invalid-syntax here"
    )
    assert out.reasons[1] == "high: 1 > max 0 — worst: svc.py:7 B602 B602 here"
    assert out.reasons[2].startswith("medium: 2 > max 1 — worst: svc.py:11 B506")
    assert [f.rule for f in out.blocking] == ["invalid-syntax", "B602", "B506", "F811"]
    assert out.summary.startswith("rejected: 3 of 3 checks failed")
    md = render_markdown(out)
    assert "**❌ Rejected**" in md and "### Blocking findings" in md


def test_fail_on_rules_with_patterns() -> None:
    findings = [_f("low", "aws-access-key-id"), _f("low", "E711", line=2)]
    out = run(Input(findings=findings, fail_on_rules=["aws-*", "B602"]))
    assert not out.approved
    assert out.reasons[0].startswith("rule aws-*: 1 findings, none allowed — a.py:1")
    assert "rule B602: none found" in out.reasons


def test_merges_upstream_outputs_once() -> None:
    shared = _f("high", "B602")
    review = {"summary": "s", "findings": [shared.model_dump(mode="json")], "counts": {}}
    security = {"findings": [shared.model_dump(), _f("low", "B110").model_dump()]}
    out = run(Input(findings=[shared], code_review=review, security=security, max_high=1))
    assert out.approved and out.total_findings == 2
    assert out.reasons[1] == "high: 1 ≤ max 1"


def test_findings_lists_per_upstream_agent_are_flattened() -> None:
    review = [_f("low").model_dump(mode="json")]
    security = [_f("high", "B602", line=2).model_dump(mode="json")]
    out = run(Input.model_validate({"findings": [review, security, []]}))
    assert out.total_findings == 2 and not out.approved


def test_min_confidence_ignores_doubtful_findings() -> None:
    findings = [_f("high", "B608", confidence="low"), _f("low", "X", line=2)]
    out = run(Input(findings=findings, min_confidence="medium"))
    assert out.approved and out.ignored_low_confidence == 1 and out.counts.high == 0


def test_bad_input_is_rejected_clearly() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Input(findings=[], max_hihg=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="must be a list"):
        Input(security={"findings": "none"})
