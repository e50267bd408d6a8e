"""LLM code review (agent ``llm_review``, ``kind: llm``): a prompted reviewer with typed output.

The model reads the context the context manager selected for the task (the files in
``files`` themselves when they fit the token slice, else the most relevant spans and
outlines) and answers with an :class:`Output`: a summary,
:class:`~agentrt.agents.builtin.common.Finding`
records and its confidence. The output is shaped like ``code_review``'s where downstream
consumers look (``summary``, ``findings``, ``counts``), so ``final_approval`` and the report
treat both alike, and ``code_review`` can stand in as the fallback when no model is available.

:func:`finish` is the manifest's entrypoint: the output hook the LLM runtime
(:mod:`agentrt.agents.llm`) applies after the model's answer validates. It makes every finding point
at a real line of a real file of the repository, or sends the model back to fix it; the
model never gets to invent locations. Severity counts are computed from the findings, never
taken from the model.

**Chunks.** A change bigger than the grant is reviewed in groups of files (the manifest's
``chunking``: ``files`` split by :func:`change_tokens`, what each file's hunks cost the
prompt), each group a model call of its own that sees that group's hunks and impact and the
analysers' findings on that group's files, so a static finding is triaged only by the call
that holds its file. :func:`merge_findings` and :func:`merge_triage` merge the calls'
answers (duplicates dropped).

Nothing here imports pydantic-ai: the report imports this module for :func:`render_markdown`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field
from pydantic.json_schema import SkipJsonSchema

from agentrt.agents.builtin.common import (
    Finding,
    SeverityCounts,
    findings_table,
    md_table,
    repo_relative,
    resolve_repo,
    sort_findings,
)

if TYPE_CHECKING:
    from agentrt.agents.llm import LLMCall

__all__ = [
    "TOOL",
    "Input",
    "Output",
    "Triage",
    "change_tokens",
    "finish",
    "merge_findings",
    "merge_triage",
    "render_markdown",
    "upstream_findings",
]

#: The ``tool`` of every finding this agent reports.
TOOL = "llm_review"


class Input(BaseModel):
    """What to review. A superset of ``code_review``'s required fields (its fallback)."""

    model_config = ConfigDict(extra="forbid")

    repo: str = Field(description="Path to the repository root.")
    files: list[str] | None = Field(
        default=None,
        description="Repository-relative paths to review (e.g. the files changed since a "
        "revision); None reviews what the context manager selects from the whole repository.",
    )
    task: str = Field(
        default="",
        description="What the change is about (an issue, a pull request description); it "
        "steers which code is selected as context and what the review focuses on.",
    )
    since: str = Field(
        default="",
        description="Git revision: when set, the context is the change since it (its hunks, "
        "then callers, tests, importers and callees: the manifest's context.change).",
    )


class Triage(BaseModel):
    """The reviewer's verdict on one finding of the static analysers (upstream)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="The static finding's path, exactly as given upstream.")
    line: int = Field(ge=0, description="The static finding's line.")
    rule: str = Field(description="The static finding's rule, exactly as given upstream.")
    verdict: Literal["confirmed", "likely_false_positive"]
    reason: str = Field(description="Why, in one sentence, from the code you were shown.")


class Output(BaseModel):
    """The review: a summary, findings at real places, and how sure the reviewer is."""

    summary: str = Field(
        description="One paragraph: what was reviewed and the most important problems found."
    )
    findings: list[Finding] = Field(
        default_factory=list,
        description="Problems found, each at a line of a file shown in the context.",
    )
    confidence: float = Field(
        ge=0,
        le=1,
        description="0 to 1: how sure you are that the review is correct and complete, given "
        "how much of the relevant code the context showed.",
    )
    triage: list[Triage] = Field(
        default_factory=list,
        description="Your verdict on findings of the static analysers (the upstream outputs), "
        "each named by its path, line and rule.",
    )
    # Set by the runtime, not by the model (kept out of the schema the model is shown).
    model: SkipJsonSchema[str | None] = None
    context_files: SkipJsonSchema[list[str]] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def counts(self) -> SeverityCounts:
        """Findings per severity, computed from ``findings`` (what ``code_review`` reports)."""
        return SeverityCounts.of(self.findings)


def _line_count(file: Path) -> int:
    with file.open("rb") as handle:
        return sum(1 for _ in handle)


def upstream_findings(upstream: Mapping[str, Any]) -> set[tuple[str, int, str]]:
    """``(path, line, rule)`` of every finding in the upstream outputs (their ``findings``)."""
    keys: set[tuple[str, int, str]] = set()
    for value in upstream.values():
        data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        found = data.get("findings") if isinstance(data, Mapping) else None
        for finding in found if isinstance(found, list) else []:
            if isinstance(finding, Mapping) and {"path", "line", "rule"} <= set(finding):
                keys.add((str(finding["path"]), int(finding["line"]), str(finding["rule"])))
    return keys


def _checked_triage(
    triage: Iterable[Triage], known: set[tuple[str, int, str]], root: Path
) -> tuple[list[Triage], list[str]]:
    """The entries that name a real upstream finding (one verdict each), and the problems."""
    kept: dict[tuple[str, int, str], Triage] = {}
    problems = []
    for index, entry in enumerate(triage):
        key = (repo_relative(entry.path, root), entry.line, entry.rule.strip())
        if key not in known:
            problems.append(
                f"triage[{index}] ({entry.path}:{entry.line} {entry.rule}) names no finding of "
                "the upstream outputs"
            )
            continue
        kept.setdefault(key, entry.model_copy(update={"path": key[0], "rule": key[2]}))
    return list(kept.values()), problems


def change_tokens(inputs: Mapping[str, Any], files: list[str]) -> list[int]:
    """What each of ``files`` costs a review's prompt, in tokens (``chunking.measure``):
    its hunks as the change's impact context delivers them when the input has a revision
    in ``since`` (:func:`agentrt.context.impact.change_sizes`), else the whole file (what
    a review without a change is shown of it)."""
    from agentrt.context.tokens import count_batch

    root = resolve_repo(str(inputs.get("repo") or "."))
    since = str(inputs.get("since") or "").strip()
    if since:
        from agentrt.context.impact import change_sizes

        sizes = change_sizes(root, since=since, paths=files)
        return [sizes.get(str(f), 0) for f in files]
    texts = []
    for rel in files:
        try:
            texts.append((root / str(rel)).read_text(encoding="utf-8", errors="replace"))
        except OSError:
            texts.append("")
    return count_batch(texts)


def _place(entry: Mapping[str, Any]) -> tuple[str, int, str]:
    return (str(entry.get("path")), int(entry.get("line") or 0), str(entry.get("rule")))


def merge_findings(values: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The chunks' findings as one list by place, each (path, line, rule) once: two chunks
    can see the same code (a caller of both groups' changes) and report it alike."""
    kept: dict[tuple[str, int, str], dict[str, Any]] = {}
    for findings in values:
        for finding in findings:
            kept.setdefault(_place(finding), finding)
    return [kept[key] for key in sorted(kept)]


def merge_triage(values: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The chunks' triage as one list by place. Each chunk may triage only the findings on
    its own files (the rest are not in its prompt), so no finding gets two verdicts; were
    it to, the first chunk's is kept."""
    return merge_findings(values)


def finish(output: Output, inputs: Input, call: LLMCall) -> Output:
    """Check and normalise the model's review; reject findings at places that do not exist.

    Paths become repository-relative, ``tool`` becomes ``llm_review`` and findings are sorted
    by place. A finding whose file is not in the repository, or whose line is past the end of
    the file, raises :class:`~agentrt.agents.llm.OutputRejected`, which sends the model back
    with the reason (the manifest's output retries bound how often). So does a ``triage``
    entry that names no upstream finding (path, line and rule); a finding triaged twice keeps
    its first verdict.
    """
    from agentrt.agents.llm import OutputRejected

    root = resolve_repo(inputs.repo)
    problems: list[str] = []
    findings: list[Finding] = []
    lengths: dict[str, int] = {}
    for index, finding in enumerate(output.findings):
        path = repo_relative(finding.path, root)
        file = (root / path).resolve()
        if not file.is_relative_to(root) or not file.is_file():
            problems.append(
                f"findings[{index}].path {finding.path!r} is not a file of the repository"
            )
            continue
        if path not in lengths:
            lengths[path] = _line_count(file)
        if finding.line > lengths[path]:
            problems.append(
                f"findings[{index}].line {finding.line} is past the end of {path} "
                f"({lengths[path]} lines)"
            )
            continue
        findings.append(finding.model_copy(update={"path": path, "tool": TOOL}))
    triage, triage_problems = _checked_triage(output.triage, upstream_findings(call.upstream), root)
    problems += triage_problems
    if problems:
        raise OutputRejected(
            "; ".join(problems[:5])
            + ". Use the paths and line numbers shown in the context headers "
            "(`## path:start-end`), or leave out findings you cannot place; triage only "
            "findings listed in the upstream outputs, by their path, line and rule."
        )
    return output.model_copy(
        update={
            "findings": sort_findings(findings),
            "triage": sorted(triage, key=lambda t: (t.path, t.line, t.rule)),
            "model": call.model,
            "context_files": list(call.context_paths),
        }
    )


def render_markdown(output: Output) -> str:
    """The LLM review section of the run report."""
    c = output.counts
    parts = [
        "## LLM review",
        "",
        output.summary,
        "",
        md_table(
            ["Critical", "High", "Medium", "Low", "Info", "Confidence"],
            [(c.critical, c.high, c.medium, c.low, c.info, f"{output.confidence:.2f}")],
        ),
    ]
    if output.model:
        seen = f", having seen {len(output.context_files)} files" if output.context_files else ""
        parts += ["", f"Reviewed by `{output.model}`{seen}."]
    parts += ["", "### Findings (worst first)", "", findings_table(output.findings)]
    if output.triage:
        rows = [
            (f"`{t.path}:{t.line}`", t.rule, t.verdict.replace("_", " "), t.reason)
            for t in output.triage
        ]
        parts += [
            "",
            "### Triage of the static findings",
            "",
            md_table(["Where", "Rule", "Verdict", "Reason"], rows),
        ]
    return "\n".join(parts) + "\n"
