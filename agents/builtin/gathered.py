"""The context ``context_gathering`` selected for the workflow's task, as the analysers use it.

In ``code-analysis`` the analysers (``architecture_analysis``, ``code_review``,
``documentation_generation``) run after ``context_gathering`` and declare
``context: {sources: [context_gathering]}``: its validated output reaches them as
``ctx.upstream["context_gathering"]``. Each then reports, besides its whole-repository
analysis, a *focus*: what it found in the files the gathered context selected for the task,
most relevant file first (the order ``context_gathering`` ranked them in). Where no such
step ran (``review-chain``, an agent called on its own) ``ctx.upstream`` has no entry, the
focus is None and the output is what it always was.

An analyser that received gathered context reports its use through ``ctx``: the gathered
items' tokens as ``tokens_delivered``, and as ``tokens_referenced`` the items its focus cites
with a line (a finding, an import or a documented object inside the item's span;
:func:`agentrt.agents.citations.cited_items`, located citations only, as the runtime counts
them for the steps after a context deliverer). So its context efficiency is measured
(docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from agentrt.agents.builtin.common import Finding, md_code, md_table

if TYPE_CHECKING:
    from agentrt.agents.agent_context import AgentContext

__all__ = [
    "GATHERING_STEP",
    "Focus",
    "GatheredContext",
    "focus_markdown",
    "gathered_context",
    "report_use",
]

#: The step whose output the analysers read: ``context_gathering``'s default step id.
GATHERING_STEP = "context_gathering"


class Focus(BaseModel):
    """What an analyser found in the files gathered for the workflow's task."""

    task: str = Field(description="The task the context was gathered for ('' = overview).")
    files: list[str] = Field(
        description="The gathered files this agent analysed, most relevant first."
    )
    findings: list[Finding] = Field(
        description="Its findings in those files: most relevant file first, then by place."
    )


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, Mapping) else getattr(value, key, None)


@dataclass(frozen=True)
class GatheredContext:
    """``context_gathering``'s output, as the analysers read it."""

    task: str
    #: Distinct paths, most relevant first.
    files: list[str]
    #: The delivered items (``SelectionItem``: path, start_line, end_line, tokens, text).
    items: list[Any]

    @property
    def tokens(self) -> int:
        """The items' tokens: what was delivered to the reader."""
        from agentrt.agents.citations import item_tokens

        return sum(item_tokens(i) for i in self.items)

    def rank(self, path: str) -> int:
        """A path's position among the gathered files (len(files) when it is not one)."""
        try:
            return self.files.index(path)
        except ValueError:
            return len(self.files)

    def focus_files(self, analysed: Iterable[str]) -> list[str]:
        """The gathered files among ``analysed``, most relevant first."""
        seen = set(analysed)
        return [f for f in self.files if f in seen]

    def focus_findings(self, findings: Iterable[Finding]) -> list[Finding]:
        """The ``findings`` in gathered files: most relevant file first, then by place
        (their order in ``findings``, which analysers sort by place)."""
        chosen = [f for f in findings if self.rank(f.path) < len(self.files)]
        return sorted(chosen, key=lambda f: self.rank(f.path))


def gathered_context(ctx: AgentContext | None) -> GatheredContext | None:
    """The gathered context in ``ctx.upstream``, or None (no such step in the workflow, it
    was skipped or failed, or the agent runs outside a workflow)."""
    if ctx is None:
        return None
    output = ctx.upstream.get(GATHERING_STEP)
    if output is None:
        return None
    items = list(_get(output, "items") or [])
    files = list(_get(output, "files") or dict.fromkeys(str(_get(i, "path")) for i in items))
    return GatheredContext(task=str(_get(output, "task") or ""), files=files, items=items)


def report_use(ctx: AgentContext, gathered: GatheredContext, focus: Any) -> int:
    """Report the gathered context through ``ctx``: delivered, the items' tokens; referenced,
    the items ``focus`` cites with a line. Returns the referenced tokens."""
    from agentrt.agents.citations import cited_items

    ctx.tokens_delivered = gathered.tokens
    used = cited_items(gathered.items, focus, text=False, identifiers=False, file_level=False)
    return ctx.mark_referenced(used)


def focus_markdown(focus: Focus, *, limit: int = 30) -> list[str]:
    """The report's lines for a focus: the task, the files and the findings in them, in
    relevance order."""
    task = f"the task {md_code(focus.task)}" if focus.task else "the repository overview"
    lines = [
        "### Focus: the files gathered for the task",
        "",
        f"{len(focus.findings)} findings in the {len(focus.files)} files context_gathering "
        f"selected for {task}, most relevant first: "
        + (", ".join(md_code(f) for f in focus.files[:10]) or "none")
        + (f" (+{len(focus.files) - 10})" if len(focus.files) > 10 else ""),
    ]
    if focus.findings:
        shown = focus.findings[:limit]
        lines += [
            "",
            md_table(
                ["Location", "Severity", "Rule", "Message"],
                [(md_code(f.location), f.severity, md_code(f.rule), f.message) for f in shown],
            ),
        ]
        if len(focus.findings) > limit:
            lines += ["", f"_…and {len(focus.findings) - limit} more (see the JSON output)._"]
    return lines
