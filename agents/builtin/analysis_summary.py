"""A one-page guide to a repository for a newcomer (``analysis_summary``, ``kind: llm``), and
its deterministic fallback (``analysis_summary_basic``, ``kind: python``).

The last step of ``code-analysis``. It reads what the steps before it found, as *digests*:
its input fields are named after those steps (``architecture_analysis``, ``code_review``,
``documentation_generation``), so the workflow fills each with that step's output, and the
digest models keep only what a guide needs (the packages and their layers, entry points,
hot spots, cycles; findings and rules; documentation coverage and gaps) and ignore the rest
(the API reference alone is tens of thousands of tokens). ``readme`` is the README's first
paragraph, read from the repository when the input validates. ``files`` are the files
``context_gathering`` gathered; the LLM runner delivers them again as context, within what
the agent's grant leaves once the instructions, the output schema and the digests are paid
(:func:`agentrt.agents.llm.fit_prompt`: when the digests do not fit, findings are ranked by
severity and lists cut, most severe first).

Both agents answer with the same :class:`Output`: what the repository is, its main packages
and how data flows between them, where the risks are, what to read first. The report
renders it first (the agents have the ``summary`` capability, :mod:`agentrt.flows.report`).

* :func:`finish` is the LLM agent's output hook: every path the model names (risks, files
  to read first) must be a file or folder of the repository, or the model is sent back.
* :func:`basic` writes the page without a model: the README's first paragraph (else the
  architecture's summary), the packages by layer, the import edges between them, the worst
  findings and import cycles, the documentation gaps, and the gathered files to read first.

Nothing here imports pydantic-ai: the report imports this module for :func:`render_markdown`.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from agentrt.agents.builtin.common import (
    Severity,
    md_code,
    md_table,
    repo_relative,
    resolve_repo,
    severity_rank,
)

if TYPE_CHECKING:
    from agentrt.agents.agent_context import AgentContext
    from agentrt.agents.llm import LLMCall

__all__ = [
    "ArchitectureDigest",
    "DocumentationDigest",
    "Input",
    "Output",
    "ReviewDigest",
    "basic",
    "finish",
    "render_markdown",
]

#: What :func:`basic` writes in ``written_by``.
BASIC = "analysis_summary_basic (no model)"
#: At most this many entries per list of the page.
MAX_PACKAGES = 10
MAX_RISKS = 8
MAX_READ_FIRST = 8


# --------------------------------------------------------------------------------------------
# Digests of the upstream outputs: the fields a guide needs, the rest ignored.


class _Digest(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PackageDigest(_Digest):
    name: str
    modules: int = 0
    layer: int = 0
    in_cycle: bool = False
    depends_on: list[str] = Field(default_factory=list)
    used_by: list[str] = Field(default_factory=list)


class EntryPointDigest(_Digest):
    kind: str
    name: str
    target: str
    path: str


class HotSpotDigest(_Digest):
    module: str
    path: str
    fan_in: int
    fan_out: int


class CycleDigest(_Digest):
    size: int
    path: list[str] = Field(description="One shortest cycle: first module repeated at the end.")
    imports: list[str] = Field(default_factory=list, description="file:line of each import.")


class FindingDigest(_Digest):
    path: str
    line: int = 0
    rule: str
    severity: Severity
    message: str


class RuleDigest(_Digest):
    rule: str
    severity: Severity
    count: int


class ArchitectureDigest(_Digest):
    """From ``architecture_analysis``."""

    summary: str = ""
    packages: list[PackageDigest] = Field(default_factory=list)
    entry_points: list[EntryPointDigest] = Field(default_factory=list)
    hot_spots: list[HotSpotDigest] = Field(default_factory=list)
    cycles: list[CycleDigest] = Field(default_factory=list)


class ReviewDigest(_Digest):
    """From ``code_review`` (or any reviewer with ``summary``, ``findings`` and ``rules``)."""

    summary: str = ""
    rules: list[RuleDigest] = Field(default_factory=list)
    findings: list[FindingDigest] = Field(default_factory=list)


class DocCoverage(_Digest):
    documented: int = 0
    total: int = 0
    percent: float = 0.0


class DocumentationDigest(_Digest):
    """From ``documentation_generation``."""

    summary: str = ""
    coverage: DocCoverage | None = None
    undocumented: list[FindingDigest] = Field(default_factory=list)


class Input(BaseModel):
    """The repository, the workflow's task, the gathered files and the analysers' digests
    (each None when that step did not run or produced nothing)."""

    model_config = ConfigDict(extra="forbid")

    repo: str = Field(description="Path to the repository root.")
    task: str = Field("", description="What the workflow was about (empty: an overview).")
    readme: str | None = Field(
        None,
        description="What the repository says it is: its README's first paragraph, read "
        "from the repository when not given (readme_paragraph).",
    )
    files: list[str] | None = Field(
        None, description="The files context_gathering gathered, most relevant first."
    )
    architecture_analysis: ArchitectureDigest | None = None
    code_review: ReviewDigest | None = None
    documentation_generation: DocumentationDigest | None = None

    @model_validator(mode="after")
    def _read_readme(self) -> Input:
        if self.readme is None:
            self.readme = readme_paragraph(Path(self.repo)) or ""
        return self


# --------------------------------------------------------------------------------------------
# The page


class PackageNote(BaseModel):
    name: str = Field(description="A package (or top-level folder) of the repository.")
    role: str = Field(description="What it does and what it uses, in one sentence.")


class Risk(BaseModel):
    path: str = Field(
        description="The repository-relative file or folder the risk is in, exactly as the "
        "input or context shows it."
    )
    severity: Severity
    why: str = Field(description="What could go wrong there and why, in one sentence.")


class ReadFirst(BaseModel):
    path: str = Field(description="A repository-relative file, as the input or context shows it.")
    why: str = Field(description="What a newcomer learns from it, in one sentence.")


class Output(BaseModel):
    """A one-page guide to the repository."""

    overview: str = Field(description="What the repository is and does: one short paragraph.")
    packages: list[PackageNote] = Field(
        default_factory=list,
        max_length=MAX_PACKAGES,
        description="Its main packages, most important first.",
    )
    data_flow: str = Field(
        description="How data and control flow through the packages (entry points, layers, "
        "who calls whom): one short paragraph."
    )
    risks: list[Risk] = Field(
        default_factory=list,
        max_length=MAX_RISKS,
        description="Where the risks are, worst first: findings that matter, import cycles, "
        "complex or undocumented code that many modules depend on.",
    )
    read_first: list[ReadFirst] = Field(
        default_factory=list,
        max_length=MAX_READ_FIRST,
        description="The files to read first, in reading order.",
    )
    # Set by the runtime, not by the model (kept out of the schema the model is shown).
    written_by: SkipJsonSchema[str | None] = None


# --------------------------------------------------------------------------------------------
# The LLM agent's output hook


def _relative(path: str, root: Path) -> str:
    """A repository-relative POSIX path for what the model wrote (``./a.py``, ``/abs/a.py``,
    ``a.py:12``, ```a.py```)."""
    clean = re.sub(r":\d+(?::\d+)?$", "", path.strip().strip("`"))  # a line (and column)
    return repo_relative(clean, root)


def _exists(root: Path, path: str, *, folder: bool) -> bool:
    target = (root / path).resolve()
    if not target.is_relative_to(root):
        return False
    return target.is_file() or (folder and target.is_dir())


def finish(output: Output, inputs: Input, call: LLMCall) -> Output:
    """Check the model's page: every risk's path is a file or folder of the repository and
    every file to read first is a file of it (paths become repository-relative), else
    :class:`~agentrt.agents.llm.OutputRejected` sends the model back with what is wrong."""
    from agentrt.agents.llm import OutputRejected

    root = resolve_repo(inputs.repo)
    problems: list[str] = []
    risks = []
    for index, risk in enumerate(output.risks):
        path = _relative(risk.path, root)
        if not _exists(root, path, folder=True):
            problems.append(f"risks[{index}].path {risk.path!r} is not in the repository")
        risks.append(risk.model_copy(update={"path": path}))
    reads = []
    for index, read in enumerate(output.read_first):
        path = _relative(read.path, root)
        if not _exists(root, path, folder=False):
            problems.append(
                f"read_first[{index}].path {read.path!r} is not a file of the repository"
            )
        reads.append(read.model_copy(update={"path": path}))
    if problems:
        raise OutputRejected(
            "; ".join(problems[:5])
            + ". Use repository-relative paths exactly as the input and the context headers "
            "(`## path:start-end`) show them, or leave the entry out."
        )
    return output.model_copy(update={"risks": risks, "read_first": reads, "written_by": call.model})


# --------------------------------------------------------------------------------------------
# The deterministic fallback


_BADGE = re.compile(r"^\s*(\[!\[|!\[|<)")  # badges, images, HTML at the top of a README
_LIST = re.compile(r"^\d+[.)]\s")  # a numbered list item


def readme_paragraph(root: Path, *, words: int = 90) -> str | None:
    """The first prose paragraph of the repository's README (markdown, reST or text; not a
    heading, badge, list, table or code block), cut to ``words`` words; None without one."""
    names = ("README.md", "README.rst", "README.txt", "README", "readme.md")
    readme = next((root / n for n in names if (root / n).is_file()), None)
    if readme is None:
        return None
    try:
        text = readme.read_text(encoding="utf-8", errors="replace")[:20_000]
    except OSError:
        return None
    fenced = False
    paragraph: list[str] = []
    for line in [*text.splitlines(), ""]:
        stripped = line.strip()
        if stripped.startswith(("```", "~~~", "..")):
            fenced = not fenced if stripped.startswith(("```", "~~~")) else fenced
            paragraph = []
            continue
        if fenced:
            continue
        if re.fullmatch(r"[=\-~^\"'`#*+]{3,}", stripped):
            paragraph = []  # a heading's underline (or overline), or a rule: not prose
            continue
        prose = (
            stripped
            and not stripped.startswith(("#", "|", ">", "- ", "* ", "+ "))
            and not _BADGE.match(stripped)
            and not _LIST.match(stripped)
        )
        if prose:
            paragraph.append(stripped)
        elif paragraph:
            break
    if not paragraph:
        return None
    cut = " ".join(paragraph).split()
    return " ".join(cut[:words]) + (" …" if len(cut) > words else "")


def _overview(readme: str | None, arch: ArchitectureDigest | None) -> str:
    facts = []
    if arch is not None and arch.summary:
        facts.append(arch.summary.rstrip(".") + ".")
    scripts = [e for e in (arch.entry_points if arch else []) if e.kind == "console_script"]
    if scripts:
        shown = ", ".join(f"`{e.name}` ({e.target})" for e in scripts[:3])
        facts.append(f"Command-line entry points: {shown}.")
    head = readme or "The repository has no README to say what it is."
    return " ".join([head, *facts]).strip()


def _packages(arch: ArchitectureDigest | None) -> list[PackageNote]:
    if arch is None:
        return []
    ranked = sorted(arch.packages, key=lambda p: (-p.modules, p.name))[:MAX_PACKAGES]
    notes = []
    for p in ranked:
        parts = [f"{p.modules} module{'s' if p.modules != 1 else ''}, layer {p.layer}"]
        if p.depends_on:
            parts.append("uses " + ", ".join(p.depends_on))
        if p.used_by:
            parts.append("used by " + ", ".join(p.used_by))
        if p.in_cycle:
            parts.append("in a package import cycle")
        notes.append(PackageNote(name=p.name, role="; ".join(parts) + "."))
    return notes


def _data_flow(arch: ArchitectureDigest | None) -> str:
    if arch is None or not arch.packages:
        return "No architecture analysis ran, so how data flows is not known."
    layers: dict[int, list[str]] = {}
    for p in arch.packages:
        layers.setdefault(p.layer, []).append(p.name)
    order = " → ".join(
        f"layer {n} ({', '.join(sorted(names))})"
        for n, names in sorted(layers.items(), reverse=True)
    )
    edges = [f"{p.name} → {', '.join(p.depends_on)}" for p in arch.packages if p.depends_on]
    parts = [f"Packages import downward, from the top layer to the bottom: {order}."]
    if edges:
        parts.append("Package imports: " + "; ".join(edges) + ".")
    scripts = [e for e in arch.entry_points if e.kind in ("console_script", "gui_script")]
    if scripts:
        parts.append("Control enters at " + ", ".join(f"`{e.target}`" for e in scripts[:3]) + ".")
    if arch.cycles:
        parts.append(f"{len(arch.cycles)} import cycle(s) tie modules together (see the risks).")
    return " ".join(parts)


def _risks(inputs: Input) -> list[Risk]:
    risks: list[Risk] = []
    arch = inputs.architecture_analysis
    for cycle in (arch.cycles if arch else [])[:2]:
        where = cycle.imports[0].rpartition(":")[0] if cycle.imports else cycle.path[0]
        risks.append(
            Risk(
                path=where,
                severity="medium",
                why=f"import cycle of {cycle.size} modules: {' → '.join(cycle.path)}.",
            )
        )
    # The worst findings, one per file, info left out.
    findings = list(inputs.code_review.findings) if inputs.code_review else []
    findings.sort(key=lambda f: (-severity_rank(f.severity), f.path, f.line))
    seen: set[str] = set()
    for f in findings:
        if len(seen) >= 4 or f.severity == "info":
            break
        if f.path in seen:
            continue
        seen.add(f.path)
        risks.append(
            Risk(path=f.path, severity=f.severity, why=f"line {f.line}, {f.rule}: {f.message}")
        )
    docs = inputs.documentation_generation
    if docs is not None and docs.undocumented:
        worst, count = Counter(f.path for f in docs.undocumented).most_common(1)[0]
        share = f" ({docs.coverage.percent:.0f}% documented)" if docs.coverage else ""
        risks.append(
            Risk(
                path=worst,
                severity="low",
                why=f"{len(docs.undocumented)} public objects are undocumented{share}, "
                f"{count} of them here.",
            )
        )
    return risks[:MAX_RISKS]


def _read_first(inputs: Input) -> list[ReadFirst]:
    arch = inputs.architecture_analysis
    fan_in = {h.path: h.fan_in for h in (arch.hot_spots if arch else [])}
    reads = []
    for path in inputs.files or []:
        if path in fan_in:
            why = f"imported by {fan_in[path]} modules"
        elif inputs.task:
            why = "gathered for the task"
        else:
            why = "central to the repository (gathered for the overview)"
        reads.append(ReadFirst(path=path, why=why + "."))
    if not reads and arch is not None:
        reads = [
            ReadFirst(path=h.path, why=f"imported by {h.fan_in} modules.") for h in arch.hot_spots
        ]
    return reads[:MAX_READ_FIRST]


def basic(inputs: Input, ctx: AgentContext | None = None) -> Output:
    """The guide without a model: a templated page from the same inputs (see the module)."""
    if ctx is not None:
        ctx.tokens_delivered = 0  # it reads digests, not repository context
    return Output(
        overview=_overview(inputs.readme, inputs.architecture_analysis),
        packages=_packages(inputs.architecture_analysis),
        data_flow=_data_flow(inputs.architecture_analysis),
        risks=_risks(inputs),
        read_first=_read_first(inputs),
        written_by=BASIC,
    )


# --------------------------------------------------------------------------------------------
# The report


def render_markdown(output: Output) -> str:
    """The guide, as the first section of the run report."""
    by = output.written_by or "a model"
    parts = [
        "## A guide to this repository",
        "",
        f"_Written by {md_code(by)} from the analysers' outputs._",
        "",
        output.overview,
    ]
    if output.packages:
        parts += [
            "",
            "### Main packages",
            "",
            md_table(
                ["package", "what it does"], [(md_code(p.name), p.role) for p in output.packages]
            ),
        ]
    parts += ["", "### How data flows", "", output.data_flow]
    parts += ["", "### Where the risks are", ""]
    parts += [f"- **{r.severity}** {md_code(r.path)}: {r.why}" for r in output.risks] or [
        "_None stood out._"
    ]
    parts += ["", "### What to read first", ""]
    reads = [f"{n}. {md_code(r.path)}: {r.why}" for n, r in enumerate(output.read_first, 1)]
    parts += reads or ["_Nothing was gathered._"]
    return "\n".join(parts) + "\n"
