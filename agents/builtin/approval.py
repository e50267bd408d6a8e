"""Final approval (agent ``final_approval``): a policy gate over the upstream findings.

Findings come in ``findings`` (the runtime maps upstream outputs into it; a list of lists,
one per upstream agent, is flattened) and/or in the outputs of the ``code_review``,
``security`` and ``performance`` agents passed whole, of which only the ``findings`` list is
read. Everything is merged and de-duplicated (the same finding arriving by both routes counts
once).

The change is approved when every check passes:

* at most ``max_critical`` critical and ``max_high`` high findings (0 each by default), and
  at most ``max_medium`` / ``max_low`` when those are set;
* no finding whose rule matches ``fail_on_rules`` (exact codes such as ``B602`` or shell-style
  patterns such as ``aws-*``).

Findings below ``min_confidence`` (when set) are reported but not counted; findings without a
confidence always count. Each reason names the count against its threshold and the worst
findings behind it, as ``file:line rule message``.

**The LLM verdict** (``llm_review``, the output of agent ``llm_review``, when a workflow has
one): its findings count with the static ones, so a model can make the gate stricter. Its
``triage`` of the static findings is reported (a line under the checks) but never discounts
a finding: a static finding the model calls a likely false positive still counts. An LLM
verdict can lower the gate's decision, never raise it — a change the static gate blocks stays
blocked whatever the model says (the model reads repository content, which may hold text
written to steer it).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentrt.agents.builtin.common import (
    Confidence,
    Finding,
    Severity,
    SeverityCounts,
    confidence_rank,
    findings_table,
    md_table,
    sort_findings,
)

__all__ = ["Input", "Output", "render_markdown", "run"]

_WORST_SHOWN = 3


class Input(BaseModel):
    """Upstream findings and the policy to hold them to."""

    model_config = ConfigDict(extra="forbid")

    findings: list[Finding] = Field(default_factory=list)
    code_review: dict[str, Any] | None = Field(
        default=None, description="The code_review agent's output; its `findings` are used."
    )
    security: dict[str, Any] | None = Field(
        default=None, description="The security_validation agent's output."
    )
    performance: dict[str, Any] | None = Field(
        default=None, description="The performance_validation agent's output."
    )
    llm_review: dict[str, Any] | None = Field(
        default=None,
        description="The llm_review agent's output (or its fallback's): its findings count; "
        "its triage is reported, never used to discount a finding.",
    )
    max_critical: int = Field(default=0, ge=0)
    max_high: int = Field(default=0, ge=0)
    max_medium: int | None = Field(default=None, ge=0, description="None: not limited.")
    max_low: int | None = Field(default=None, ge=0, description="None: not limited.")
    fail_on_rules: list[str] = Field(
        default_factory=list, description="Rule codes or glob patterns that always reject."
    )
    min_confidence: Confidence | None = Field(
        default=None, description="Ignore findings less confident than this."
    )

    @field_validator("findings", mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        """Accept a list of findings lists too (one per upstream agent), flattened."""
        if isinstance(value, list) and any(isinstance(item, list) for item in value):
            return [f for item in value for f in (item if isinstance(item, list) else [item])]
        return value

    @field_validator("code_review", "security", "performance", "llm_review")
    @classmethod
    def _has_findings_list(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and not isinstance(value.get("findings", []), list):
            raise ValueError("an upstream output's `findings` must be a list of findings")
        return value

    def merged_findings(self) -> list[Finding]:
        """All findings, from every source, each once, sorted by place."""
        merged = set(self.findings)
        for upstream in (self.code_review, self.security, self.performance, self.llm_review):
            if upstream:
                merged.update(Finding.model_validate(f) for f in upstream.get("findings", []))
        return sort_findings(merged)


class Output(BaseModel):
    """The verdict and why."""

    approved: bool
    summary: str
    reasons: list[str] = Field(description="One line per check, failed checks first.")
    counts: SeverityCounts = Field(description="Counted findings by severity.")
    total_findings: int = Field(description="All findings received, counted or not.")
    ignored_low_confidence: int
    blocking: list[Finding] = Field(description="The findings that failed a check, worst first.")
    llm_triage: str = Field(
        default="",
        description="What the LLM reviewer said of the static findings, and that its verdict "
        "did not discount any (empty without an LLM triage).",
    )


def _worst(findings: list[Finding]) -> str:
    shown = sort_findings(findings, worst_first=True)[:_WORST_SHOWN]
    text = "; ".join(f"{f.location} {f.rule} {f.message}" for f in shown)
    more = len(findings) - len(shown)
    return text + (f"; and {more} more" if more > 0 else "")


def run(inputs: Input) -> Output:
    """Hold the merged upstream findings to the thresholds and rules of ``inputs``."""
    received = inputs.merged_findings()
    threshold = confidence_rank(inputs.min_confidence) if inputs.min_confidence else -1
    counted = [f for f in received if confidence_rank(f.confidence) >= threshold]
    counts = SeverityCounts.of(counted)

    failed: list[str] = []
    passed: list[str] = []
    blocking: set[Finding] = set()
    limits: list[tuple[Severity, int | None]] = [
        ("critical", inputs.max_critical),
        ("high", inputs.max_high),
        ("medium", inputs.max_medium),
        ("low", inputs.max_low),
    ]
    for severity, limit in limits:
        if limit is None:
            continue
        found = [f for f in counted if f.severity == severity]
        if len(found) > limit:
            failed.append(f"{severity}: {len(found)} > max {limit} — worst: {_worst(found)}")
            blocking.update(found)
        else:
            passed.append(f"{severity}: {len(found)} ≤ max {limit}")
    for pattern in inputs.fail_on_rules:
        hits = [f for f in counted if fnmatchcase(f.rule, pattern)]
        if hits:
            failed.append(f"rule {pattern}: {len(hits)} findings, none allowed — {_worst(hits)}")
            blocking.update(hits)
        else:
            passed.append(f"rule {pattern}: none found")

    llm_triage = _triage_note(inputs.llm_review, blocking)
    ignored = len(received) - len(counted)
    approved = not failed
    verdict = "approved" if approved else "rejected"
    summary = (
        f"{verdict}: {len(failed)} of {len(failed) + len(passed)} checks failed; "
        f"{len(counted)} findings counted ({counts.describe()})"
        + (f", {ignored} below {inputs.min_confidence} confidence ignored" if ignored else "")
    )
    return Output(
        approved=approved,
        summary=summary,
        reasons=failed + passed,
        counts=counts,
        total_findings=len(received),
        ignored_low_confidence=ignored,
        blocking=sort_findings(blocking, worst_first=True),
        llm_triage=llm_triage,
    )


def _triage_note(review: dict[str, Any] | None, blocking: set[Finding]) -> str:
    """One line on the LLM's triage of the static findings; empty when there is none."""
    triage = [t for t in (review or {}).get("triage") or [] if isinstance(t, dict)]
    if not triage:
        return ""
    doubted = [t for t in triage if t.get("verdict") == "likely_false_positive"]
    blocked = {(f.path, f.line, f.rule) for f in blocking}
    still = sum(1 for t in doubted if (t.get("path"), t.get("line"), t.get("rule")) in blocked)
    note = (
        f"LLM triage: {len(triage) - len(doubted)} static findings confirmed, "
        f"{len(doubted)} likely false positives"
    )
    if doubted:
        note += (
            " — still counted: an LLM verdict can make the gate stricter, never more permissive"
            + (f" ({still} of them block)" if still else "")
        )
    return note


def render_markdown(output: Output) -> str:
    """The final approval section of the run report."""
    c = output.counts
    verdict = "✅ Approved" if output.approved else "❌ Rejected"
    parts = [
        "## Final approval",
        "",
        f"**{verdict}** — {output.summary}",
        "",
        md_table(
            ["Critical", "High", "Medium", "Low", "Info", "Received"],
            [(c.critical, c.high, c.medium, c.low, c.info, output.total_findings)],
        ),
        "",
        "### Checks",
        "",
        *[f"- {reason}" for reason in output.reasons],
    ]
    if output.llm_triage:
        parts += ["", output.llm_triage]
    if output.blocking:
        parts += ["", "### Blocking findings", "", findings_table(output.blocking, limit=20)]
    return "\n".join(parts) + "\n"
