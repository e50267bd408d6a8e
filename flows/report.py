"""The run report: markdown + JSON on disk, and the same as Prefect artifacts.

Each agent's section comes from the ``render_markdown(output)`` function next to its
entrypoint (a convention of the built-in agents); agents without one get their output as
JSON. The report is written for failed runs too, with the error reports first.

A step whose agent has the ``summary`` capability (``analysis_summary``) is rendered first,
under the run's header: the page a reader starts from. An output with a
``language_coverage`` list (the built-in analysers':
:class:`agentrt.agents.builtin.coverage.ToolCoverage`) also gets its lines in the report's
Coverage section, one per tool, under the summary table: which files each tool read, by
language, and which code files it left out.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentrt.agents.redact import redact
from agentrt.flows.plan import Plan
from agentrt.flows.results import RunResult
from agentrt.flows.schemas import schema_model
from agentrt.flows.settings import agentrt_home

if TYPE_CHECKING:
    from agentrt.flows.metrics import EfficiencyWarning

__all__ = [
    "count_findings",
    "coverage_lines",
    "render_report",
    "report_artifacts",
    "write_report",
]


def count_findings(output: Any) -> int:
    if isinstance(output, dict):
        counts = output.get("counts")
        if isinstance(counts, dict) and all(isinstance(v, int) for v in counts.values()):
            return sum(counts.values())
        if isinstance(output.get("findings"), list):
            return len(output["findings"])
    return 0


def coverage_lines(result: RunResult) -> list[dict[str, Any]]:
    """One row per analyser tool of the run: ``step``, ``tool``, ``line`` (what it read and
    left out), ``skipped_files`` and ``unread_languages`` (languages of skipped files the tool
    does not read at all, as opposed to files it left out on purpose), from the outputs'
    ``language_coverage`` lists. A tool that read the same as in an earlier step (a fallback
    running the same analyser again, e.g. code_review standing in for llm_review) is listed
    once."""
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for sid, step in result.steps.items():
        output = step.output
        entries = output.get("language_coverage") if isinstance(output, dict) else None
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("line"), str):
                key = (str(entry.get("tool", "")), entry["line"])
                if key in seen:
                    continue
                seen.add(key)
                skipped = entry.get("skipped_files")
                unread = [
                    str(s.get("language"))
                    for s in entry.get("skipped") or []
                    if isinstance(s, dict) and s.get("reason") is None
                ]
                rows.append(
                    {
                        "step": sid,
                        "tool": str(entry.get("tool", "")),
                        "line": entry["line"],
                        "skipped_files": skipped if isinstance(skipped, int) else 0,
                        "unread_languages": unread,
                    }
                )
    return rows


def _render_step(plan: Plan, step_id: str, output: Any, agent_key: str) -> str:
    step = plan.steps[step_id]
    agent = next((a for a in [step.agent, *step.fallbacks] if a.key == agent_key), step.agent)
    module_name = agent.manifest.entrypoint.partition(":")[0]
    try:
        render = getattr(importlib.import_module(module_name), "render_markdown", None)
        if render is not None:
            model = schema_model(agent, "output")
            value = model.model_validate(output) if isinstance(model, type) else output
            return str(render(value))
    except Exception as exc:  # a broken renderer must not lose the report
        return f"_(rendering failed: {type(exc).__name__}: {exc})_\n\n" + _as_json(output)
    return _as_json(output)


#: Steps whose agent has this capability are the report's page for a reader: rendered
#: first, under the run's header, instead of among the steps' sections.
SUMMARY_CAPABILITY = "summary"


def _summary_pages(plan: Plan, result: RunResult) -> list[str]:
    """The steps with output whose agent (the one that produced it) has the ``summary``
    capability, e.g. ``analysis_summary``."""
    pages = []
    for sid, step in result.steps.items():
        if step.output is None or sid not in plan.steps:
            continue
        planned = plan.steps[sid]
        key = step.used_agent or step.agent
        agent = next((a for a in [planned.agent, *planned.fallbacks] if a.key == key), None)
        if agent is not None and SUMMARY_CAPABILITY in agent.manifest.capabilities:
            pages.append(sid)
    return pages


def _as_json(output: Any) -> str:
    text = json.dumps(output, indent=2, default=str)
    if len(text) > 20_000:
        text = text[:20_000] + "\n… (truncated; the JSON report has all of it)"
    return f"```json\n{text}\n```"


def summary_rows(result: RunResult) -> list[dict[str, Any]]:
    return [
        {
            "step": sid,
            "agent": s.used_agent or s.agent,
            "state": s.state,
            "attempts": s.attempts,
            "seconds": round(s.duration_seconds, 3),
            "tokens_allocated": s.tokens_allocated or 0,
            "tokens_delivered": s.tokens_delivered or 0,
            "findings": count_findings(s.output),
            "note": s.note,
        }
        for sid, s in result.steps.items()
    ]


def render_report(
    plan: Plan, result: RunResult, efficiency: Sequence[EfficiencyWarning] = ()
) -> str:
    """The markdown report, with secrets redacted; ``efficiency`` are the run's steps whose
    context efficiency is low (:func:`agentrt.flows.metrics.low_efficiency`), one warning
    line each."""
    return redact(_render(plan, result, efficiency))


def _render(plan: Plan, result: RunResult, efficiency: Sequence[EfficiencyWarning] = ()) -> str:
    repo = result.params.get("repo")
    lines = [
        f"# {result.workflow}: {result.outcome}",
        "",
        f"{plan.workflow.description}".strip(),
        "",
        f"- run: `{result.flow_run_id or 'local'}`, {result.started_at:%Y-%m-%d %H:%M:%S} UTC, "
        f"{result.duration_seconds:.1f} s",
    ]
    if repo:
        lines.append(f"- repository: `{repo}`")
    if result.no_model_line:
        lines.append(f"- {result.no_model_line}")
    if result.fallbacks:
        fell_back = ", ".join(
            s for s, r in result.steps.items() if r.state == "fallback" and not r.no_model
        )
        lines.append(
            f"- fallbacks: {fell_back} got their output from a fallback agent (their own "
            "agent failed; see the notes); `agentrt run --strict` fails such a run"
        )
    if result.interrupted:
        lines.append(f"- **interrupted**: {result.interrupted}")
    lines += [f"- **warning**: {w.render()}" for w in efficiency]
    pages = _summary_pages(plan, result)
    for sid in pages:
        step = result.steps[sid]
        lines += ["", _render_step(plan, sid, step.output, step.used_agent or step.agent)]
    lines += [
        "",
        "| step | agent | state | time | findings | note |",
        "|---|---|---|---:|---:|---|",
    ]
    for row in summary_rows(result):
        note = row["note"].replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| {row['step']} | {row['agent']} | {row['state']} | {row['seconds']:.2f}s | "
            f"{row['findings']} | {note} |"
        )
    coverage = coverage_lines(result)
    if coverage:
        lines += [
            "",
            "## Coverage",
            "",
            "What each analyser read, by language, and the code files it left out: its "
            "findings say nothing about files it did not read.",
            "",
        ]
        lines += [f"- **{row['step']}** · {row['line']}" for row in coverage]
    if result.errors:
        lines += ["", "## Errors", ""]
        lines += [
            (
                f"- **infrastructure** (step {e.step}, {e.agent}; not the agent's fault)"
                if e.cause == "infrastructure"
                else f"- **{e.agent}** ({e.phase})"
            )
            + f": {e.error_type}: {e.message}\n  - what to do: {e.suggestion}"
            for e in result.errors
        ]
    for sid, step in result.steps.items():
        if sid in pages:
            continue
        lines += ["", f"## {sid} ({step.used_agent or step.agent})", ""]
        if step.output is not None:
            lines.append(_render_step(plan, sid, step.output, step.used_agent or step.agent))
        else:
            lines.append(f"_{step.state}: {step.reason or 'no output'}_")
    return "\n".join(lines).rstrip() + "\n"


def write_report(plan: Plan, result: RunResult, markdown: str) -> dict[str, str]:
    """Write report.md and report.json; return their paths (also as ``latest.*``)."""
    output = result.params.get("output")
    base = Path(output) if output else agentrt_home() / "reports" / result.workflow
    stamp = result.started_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    folder = base / f"{stamp}-{(result.flow_run_id or 'local')[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    contents = {"markdown": markdown.encode(), "json": result.redacted_json()}
    paths = {"markdown": folder / "report.md", "json": folder / "report.json"}
    for kind, path in list(paths.items()):
        path.write_bytes(contents[kind])
        latest = base / f"latest{path.suffix}"
        latest.write_bytes(contents[kind])
        paths[f"latest_{kind}"] = latest
    return {k: str(v) for k, v in paths.items()}


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:100] or "agentrt"


def report_artifacts(result: RunResult, markdown: str) -> list[Any]:
    """The report and the agents table as Prefect artifacts (to publish on the flow run)."""
    from prefect.artifacts import MarkdownArtifact, TableArtifact

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    return [
        MarkdownArtifact(
            markdown=markdown if len(markdown) < 900_000 else markdown[:900_000] + "\n…",
            key=_key(f"{result.workflow}-report"),
            description=f"{result.workflow} report ({result.state}, {stamp})",
        ),
        TableArtifact(
            table=summary_rows(result),
            key=_key(f"{result.workflow}-agents"),
            description=f"Agents of {result.workflow} ({stamp})",
        ),
    ]
