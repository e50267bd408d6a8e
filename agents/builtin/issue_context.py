"""The ``issue-context`` workflow's agents: an issue's text in, the context a fixing agent
needs out (ranked files, units and their impact neighbours, packed within a budget).

* ``issue_candidates`` (:func:`candidates`): the files (with outlines) and units of the
  repository most relevant to the issue, then the callers, tests and importers of the best
  definitions (:func:`agentrt.context.issue.issue_candidates`).
* ``issue_rerank`` (``kind: llm``; :func:`finish` is its output hook): a model sees the
  candidates (as the upstream output of ``issue_candidates``, fenced as untrusted data,
  within its small grant) and picks, in order, the files and units a fix most likely
  touches — localisation in the manner of Agentless. Every pick must be one of the
  candidates, or the model is sent back. Without a model, ``issue_rerank_basic``
  (:func:`keep_ranking`) stands in: no picks, the ranking's order.
* ``issue_context`` (:func:`pack`): the candidates packed within ``budget`` tokens, picks
  first (:func:`agentrt.context.issue.select_issue`). Its output — ranked files, units with
  their lines, kind and why, and the packed context — is the report's first section
  (``.agentrt/reports/issue-context/latest.md``, and ``latest.json``).

:func:`rerank` runs ``issue_rerank`` outside a workflow on the same runner and hook
(:func:`agentrt.agents.llm.run_llm_agent`), for ``python -m bench.context_selection
--rerank llm``. Nothing here imports pydantic-ai at module level: the report imports this
module for :func:`render_markdown`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from agentrt.agents.builtin.common import md_code, md_table

if TYPE_CHECKING:
    from pydantic_ai.models import Model

    from agentrt.agents.agent_context import AgentContext
    from agentrt.agents.llm import LLMCall
    from agentrt.agents.registry import Registry
    from agentrt.context.issue import IssueCandidates, IssuePicks

__all__ = [
    "BASIC",
    "Candidates",
    "CandidatesInput",
    "ContextInput",
    "IssueContext",
    "Picks",
    "RerankInput",
    "as_candidates",
    "candidates",
    "finish",
    "keep_ranking",
    "pack",
    "picks_of",
    "render_markdown",
    "rerank",
]

#: What :func:`keep_ranking` writes in ``written_by``.
BASIC = "issue_rerank_basic (no model): the ranking's order"
#: The step id whose output the re-ranker reads (``context.sources`` of ``issue_rerank``).
CANDIDATES_STEP = "issue_candidates"
#: At most this many picks of each kind.
MAX_PICKS = 10


# --------------------------------------------------------------------------------------------
# issue_candidates


class CandidatesInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo: str = Field(description="Path to the repository root.")
    issue: str = Field(min_length=1, description="The issue or task text (the query).")
    max_files: int = Field(12, gt=0, le=100, description="Ranked files to offer.")
    max_units: int = Field(20, gt=0, le=200, description="Ranked units to offer.")
    outline_tokens: int = Field(100, ge=0, description="Tokens of each file's outline.")


class CandidateFile(BaseModel):
    path: str = Field(description="Repository-relative path.")
    why: str = Field(description="Why it is a candidate.")
    outline: str = Field("", description="Its skeleton: signatures, docstrings, bodies elided.")


class CandidateUnit(BaseModel):
    path: str
    name: str = Field(description="Qualified name: parse_header, Header.parse, <module>:1.")
    kind: str = Field(description="function, method, class, block or window.")
    lines: str = Field(description="start-end, 1-based, inclusive.")
    why: str


class Candidates(BaseModel):
    """The candidates, most relevant first; neighbours (callers, tests, importers) last.
    Compact (no scores, lines as ``start-end``): the re-ranker reads them in its prompt."""

    summary: str
    files: list[CandidateFile]
    units: list[CandidateUnit]


def candidates(inputs: CandidatesInput, ctx: AgentContext | None = None) -> Candidates:
    """The repository's files and units ranked for the issue, and their neighbours."""
    from agentrt.context.issue import issue_candidates

    found = issue_candidates(
        inputs.repo,
        inputs.issue,
        max_files=inputs.max_files,
        max_units=inputs.max_units,
        outline_tokens=inputs.outline_tokens,
    )
    return as_candidates(found)


def as_candidates(found: IssueCandidates) -> Candidates:
    """The context manager's candidates as this agent's compact output."""
    neighbours = found.stats.get("neighbours_of") or []
    around = f"; neighbours of {', '.join(neighbours)}" if neighbours else ""
    return Candidates(
        summary=f"{len(found.files)} files and {len(found.units)} units ranked for the "
        f"issue{around}",
        files=[CandidateFile(path=f.path, why=f.why, outline=f.outline) for f in found.files],
        units=[
            CandidateUnit(
                path=u.path, name=u.name, kind=u.kind, lines=f"{u.start_line}-{u.end_line}",
                why=u.why,
            )
            for u in found.units
        ],
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# issue_rerank (LLM) and issue_rerank_basic


class RerankInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, description="The issue or task text.")


class UnitPick(BaseModel):
    path: str = Field(description="The unit's path, exactly as the candidates list it.")
    name: str = Field(description="The unit's name, exactly as the candidates list it.")


class Picks(BaseModel):
    """The files and units a fix most likely touches, most likely first."""

    files: list[str] = Field(
        default_factory=list,
        max_length=MAX_PICKS,
        description="Candidate file paths, most likely to need a change first.",
    )
    units: list[UnitPick] = Field(
        default_factory=list,
        max_length=MAX_PICKS,
        description="Candidate units (functions, methods, classes) a fix most likely "
        "changes or must read, most likely first.",
    )
    reason: str = Field("", description="Why these, in one or two sentences.")
    # Set by the runtime, not by the model (kept out of the schema the model is shown).
    written_by: SkipJsonSchema[str | None] = None


def _clean_path(path: str) -> str:
    """``./a.py``, ```a.py```, ``a.py:12`` -> ``a.py``."""
    clean = re.sub(r":\d+(?:-\d+)?$", "", path.strip().strip("`").replace("\\", "/"))
    return clean.removeprefix("./")


def _candidates_of(upstream: Mapping[str, Any]) -> Candidates | None:
    """The candidates among the upstream outputs the prompt was given."""
    for value in upstream.values():
        if isinstance(value, Candidates):
            return value
        if isinstance(value, Mapping) and "files" in value and "units" in value:
            try:
                return Candidates.model_validate(value)
            except ValueError:
                continue
    return None


def finish(output: Picks, inputs: RerankInput, call: LLMCall) -> Picks:
    """Check the model's picks: every file is a candidate file (or holds a candidate unit)
    and every unit a candidate unit (by path and name; a unique short name is made
    qualified), else :class:`~agentrt.agents.llm.OutputRejected` sends the model back with
    what is wrong. Repeated picks are dropped."""
    from agentrt.agents.llm import OutputRejected

    found = _candidates_of(call.upstream)
    units = found.units if found is not None else []
    paths = {f.path for f in found.files} if found is not None else set()
    paths |= {u.path for u in units}
    problems: list[str] = []
    files: list[str] = []
    for index, raw in enumerate(output.files):
        path = _clean_path(raw)
        if path not in paths:
            problems.append(f"files[{index}] {raw!r} is not one of the candidates")
        elif path not in files:
            files.append(path)
    picked: list[UnitPick] = []
    for index, pick in enumerate(output.units):
        path, name = _clean_path(pick.path), pick.name.strip().strip("`").removesuffix("()")
        same = [u for u in units if u.path == path]
        match = [u for u in same if u.name == name] or [
            u for u in same if u.name.rsplit(".", 1)[-1] == name
        ]
        if len(match) != 1:
            problems.append(
                f"units[{index}] {pick.path}:{pick.name} is not one of the candidate units"
                if not match
                else f"units[{index}] {pick.name!r} is ambiguous in {path}: use its full name"
            )
            continue
        chosen = UnitPick(path=path, name=match[0].name)
        if chosen not in picked:
            picked.append(chosen)
    if problems:
        raise OutputRejected(
            "; ".join(problems[:5])
            + ". Pick only files and units listed in the candidates (upstream output "
            f"{CANDIDATES_STEP}), by their path and name exactly as written there."
        )
    return output.model_copy(update={"files": files, "units": picked, "written_by": call.model})


def keep_ranking(inputs: RerankInput, ctx: AgentContext | None = None) -> Picks:
    """No model: no picks, so the context keeps the ranking's order."""
    return Picks(reason="No model re-ranked the candidates: the ranking's order is kept.",
                 written_by=BASIC)  # fmt: skip


def rerank(
    issue: str,
    found: Candidates,
    *,
    model: Model | None = None,
    registry: Registry | None = None,
    budget: int | None = None,
) -> Picks:
    """``issue_rerank`` on ``found`` outside a workflow: the same manifest, prompt, grant
    (its ``optimal_tokens`` unless ``budget`` is given), runner and output hook as in
    ``issue-context``. ``model`` replaces the configured one (tests pass a FunctionModel).
    Raises :class:`~agentrt.agents.llm.LLMUnavailableError` when no picks can be had."""
    from types import MappingProxyType

    from agentrt.agents.agent_context import AgentContext
    from agentrt.agents.llm import run_llm_agent
    from agentrt.agents.registry import Registry

    registry = registry or Registry.discover(env=False, entry_points=False)
    agent = registry.get("issue_rerank")
    grant = budget or agent.manifest.context.optimal_tokens
    ctx = AgentContext(
        agent_id=agent.manifest.id,
        version=str(agent.manifest.version),
        step="issue_rerank",
        workflow="",
        params={},
        budget_tokens=grant,
        attempt=1,
        token_limit=grant,
        upstream=MappingProxyType({CANDIDATES_STEP: found}),
    )
    output = run_llm_agent(agent, RerankInput(task=issue), ctx, model=model)
    return output if isinstance(output, Picks) else Picks.model_validate(output)


def picks_of(picks: Picks | None) -> IssuePicks | None:
    """The context manager's :class:`~agentrt.context.issue.IssuePicks` of ``picks``."""
    from agentrt.context.issue import IssuePicks

    if picks is None or not (picks.files or picks.units):
        return None
    return IssuePicks(list(picks.files), [(u.path, u.name) for u in picks.units])


# --------------------------------------------------------------------------------------------
# issue_context


class ContextInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo: str = Field(description="Path to the repository root.")
    issue: str = Field(min_length=1, description="The issue or task text (the query).")
    budget: int | None = Field(
        None,
        gt=0,
        description="Tokens of packed context (a hard limit); default: the runtime's grant.",
    )
    picks: Picks | None = Field(None, description="The re-ranker's picks (None: the ranking).")


class ContextItem(BaseModel):
    path: str
    start_line: int
    end_line: int
    kind: str = Field(description="span, skeleton or file.")
    score: float
    tokens: int
    why: str
    text: str


class RankedFile(BaseModel):
    path: str
    score: float = Field(description="The ranking's relevance in [0, 1] (neighbours: scaled).")
    why: str


class RankedUnit(BaseModel):
    path: str
    name: str
    kind: str
    start_line: int
    end_line: int
    score: float
    why: str


class IssueContext(BaseModel):
    """What a fixing agent reads: ranked files and units, and the packed context."""

    summary: str
    issue: str = Field(description="The issue's first line.")
    budget: int
    tokens: int
    encoding: str
    reranked_by: str | None = Field(
        None, description="The model whose picks came first; None: the ranking's order."
    )
    files: list[RankedFile] = Field(description="Ranked files and neighbours, picks first.")
    units: list[RankedUnit] = Field(description="Ranked units and neighbours, picks first.")
    items: list[ContextItem] = Field(description="The packed context, within budget.")


def pack(inputs: ContextInput, ctx: AgentContext | None = None) -> IssueContext:
    """The candidates packed within ``budget`` tokens, the re-ranker's picks first."""
    from agentrt.agents.builtin.context_gathering import budget_of
    from agentrt.context.issue import select_issue

    budget = budget_of(inputs.budget, ctx)
    picks = picks_of(inputs.picks)
    selection = select_issue(inputs.repo, inputs.issue, budget, picks=picks)
    data = selection.to_json()
    if ctx is not None:
        ctx.tokens_delivered = selection.tokens
    by = inputs.picks.written_by if selection.picked and inputs.picks is not None else None
    order = f"re-ranked by {by}" if by else "the ranking's order"
    files = {item["path"] for item in data["items"]}
    return IssueContext(
        summary=f"{len(data['items'])} items from {len(files)} files, {selection.tokens:,} of "
        f"{budget:,} tokens ({order})",
        issue=(inputs.issue.strip().splitlines() or [""])[0][:200],
        budget=budget,
        tokens=selection.tokens,
        encoding=selection.encoding,
        reranked_by=by,
        files=[RankedFile.model_validate(f) for f in data["files"]],
        units=[RankedUnit.model_validate(u) for u in data["units"]],
        items=[ContextItem.model_validate(i) for i in data["items"]],
    )


# --------------------------------------------------------------------------------------------
# The report


def _files_table(files: list[CandidateFile] | list[RankedFile]) -> str:
    return md_table(
        ["#", "file", "why"], [(n, md_code(f.path), f.why) for n, f in enumerate(files, 1)]
    )


def _units_table(units: list[CandidateUnit] | list[RankedUnit]) -> str:
    def lines(u: CandidateUnit | RankedUnit) -> str:
        return u.lines if isinstance(u, CandidateUnit) else f"{u.start_line}-{u.end_line}"

    return md_table(
        ["#", "unit", "lines", "kind", "why"],
        [
            (n, md_code(f"{u.path}:{u.name}"), lines(u), u.kind, u.why)
            for n, u in enumerate(units, 1)
        ],
    )


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def render_markdown(output: Candidates | Picks | IssueContext) -> str:
    """The report's section of each agent of ``issue-context``; ``issue_context``'s is the
    report's first section: files, units, then the packed context."""
    if isinstance(output, Candidates):
        return "\n\n".join(
            [f"**{output.summary}**", _files_table(output.files), _units_table(output.units)]
        )
    if isinstance(output, Picks):
        by = output.written_by or "a model"
        lines = [f"_Picks of {md_code(by)}._", "", output.reason or ""]
        lines += [f"{n}. {md_code(p)}" for n, p in enumerate(output.files, 1)]
        if output.units:
            lines += ["", "Units:", ""]
            for n, u in enumerate(output.units, 1):
                lines.append(f"{n}. {md_code(f'{u.path}:{u.name}')}")
        return "\n".join(lines).strip()
    parts = [
        f"## Context for the issue: {output.issue}",
        "",
        f"_{output.summary}._",
        "",
        "### Files",
        "",
        _files_table(output.files) if output.files else "_None matched._",
        "",
        "### Units",
        "",
        _units_table(output.units) if output.units else "_None matched._",
        "",
        "### Context",
    ]
    for item in output.items:
        fence = _fence(item.text)
        parts += [
            "",
            f"#### {item.path}:{item.start_line}-{item.end_line} ({item.kind}) — {item.why}",
            f"{fence}\n{item.text.rstrip(chr(10))}\n{fence}",
        ]
    return "\n".join(parts)
