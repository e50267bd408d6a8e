"""``agentrt metrics``: what agents cost and how well they do, from the recorded runs.

Exit codes (:class:`agentrt.cli.output.ExitCode`): 0 success; 1 no records to show (nothing
recorded yet, or nothing matches the filters); 2 bad input (an unreadable ``--since``, an
unknown format, a missing ``--path``), one line on stderr and no traceback. Importing this
module is cheap (typer only), so mounting it costs other commands nothing; it never imports
Prefect.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentrt.cli.output import ExitCode, fail, print_json, tables_to_fit

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd
    from rich.table import Table

app = typer.Typer(
    name="metrics",
    help="Agent performance metrics: summary, export and manifest recommendations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since", help="Only runs since a duration ago (7d, 12h, 2w) or a date (2026-11-01)."
    ),
]
WorkflowOpt = Annotated[str | None, typer.Option("--workflow", "-w", help="Only this workflow.")]
PathOpt = Annotated[
    Path | None,
    typer.Option(
        "--path",
        help="Metrics folder or file (default: $AGENTRT_METRICS_DIR, else $AGENTRT_HOME/metrics).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _load(path: Path | None, since: str | None, workflow: str | None) -> pd.DataFrame:
    """The matching records, or exit 2 (bad input) / 1 (nothing recorded or matching)."""
    from agentrt.flows.metrics import MetricsError, MetricsWarning, load_records
    from agentrt.flows.settings import metrics_dir

    if path is not None and not path.exists():
        raise fail(f"--path {path}: no such file or folder", ExitCode.BAD_INPUT)
    with warnings.catch_warnings(record=True) as caught:
        # Only the loader's own warnings are the user's business; anything else (a
        # ResourceWarning from garbage collection, a library's deprecation) stays quiet.
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", MetricsWarning)
        try:
            frame = load_records(path, since=since, workflow=workflow)
        except MetricsError as exc:
            raise fail(str(exc), ExitCode.BAD_INPUT) from None
    for warning in caught:
        typer.echo(f"warning: {warning.message}", err=True)
    if frame.empty:
        where = path or metrics_dir()
        given = (since and f"--since {since}", workflow and f"--workflow {workflow}")
        filters = " ".join(f for f in given if f)
        scope = f" matching {filters}" if filters else ""
        raise fail(
            f"no agent metrics{scope} in {where}; records are written at the end of every "
            "workflow run (`agentrt run`)",
            ExitCode.FAILURE,
        )
    return frame


def _pct(value: Any) -> str:
    return "—" if _absent(value) else f"{float(value):.0%}"


def _num(value: Any, fmt: str = ",.0f") -> str:
    return "—" if _absent(value) else format(float(value), fmt)


def _absent(value: Any) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))


def _usd(value: Any) -> str:
    """``$0.0123``: enough digits for a cheap model's cents; ``—`` when unknown."""
    if _absent(value):
        return "—"
    value = float(value)
    return (
        f"${value:,.2f}" if value >= 100 else f"${value:.4f}" if value >= 0.01 else f"${value:.6f}"
    )


def _cost_cell(cost: Any, calls: Any, unpriced: Any = 0) -> str:
    """The cost of an agent's or workflow's LLM calls: ``—`` without calls, ``unpriced``
    when no call's model has a known price, the known sum otherwise (``+N unpriced``)."""
    if _absent(calls) or not int(calls):
        return "—"
    if _absent(cost):
        return "unpriced"
    more = f" (+{int(unpriced)} unpriced)" if not _absent(unpriced) and int(unpriced) else ""
    return _usd(cost) + more


@app.command("summary")
def summary_command(
    since: SinceOpt = None,
    workflow: WorkflowOpt = None,
    path: PathOpt = None,
    by: Annotated[
        str,
        typer.Option(
            "--by",
            help="agent: everything per agent (default); workflow: LLM calls, tokens and cost "
            "per workflow.",
        ),
    ] = "agent",
    as_json: JsonOpt = False,
) -> None:
    """Per agent: runs, success rate, p50/p95 wall time, tokens, LLM cost, efficiency.

    Per agent also its cache hits; then the LLM cost per workflow
    (`--by workflow` for that table alone)."""
    from agentrt.flows.metrics import cost_summary, jsonable, low_efficiency, summarize

    if by not in ("agent", "workflow"):
        raise fail(f"--by {by!r}: use agent or workflow", ExitCode.BAD_INPUT)
    frame = _load(path, since, workflow)
    if by == "workflow":
        _workflow_costs(cost_summary(frame, by="workflow"), as_json)
        return
    table = summarize(frame)
    costs = cost_summary(frame, by="agent").set_index("agent_id")
    low = low_efficiency(frame)
    if as_json:
        print_json(jsonable(table))
        for warning in low:
            typer.echo(f"warning: {warning.render()}", err=True)
        return
    from rich.console import Console
    from rich.table import Table

    runs = frame["flow_run_id"].nunique()
    first, last = frame["run_started_at"].min(), frame["run_started_at"].max()
    title = (
        f"{len(frame)} records from {runs} run{'s' if runs != 1 else ''}, "
        f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"
    )
    caption = (
        "success, retried, fell back and cache hits: share of runs; tokens: context tokens "
        "delivered (mean); efficiency: referenced / delivered context tokens (docs/metrics.md)"
    )
    cells = []
    for row in table.to_dict(orient="records"):
        llm = (
            "—"
            if _absent(row["llm_input_tokens"]) and _absent(row["llm_output_tokens"])
            else f"{_num(row['llm_input_tokens'])}/{_num(row['llm_output_tokens'])}"
        )
        cells.append({
            "agent": str(row["agent_id"]),
            "runs": f"{row['runs']}" + (f" (+{row['skipped']} skipped)" if row["skipped"] else ""),
            "success": _pct(row["success_rate"]),
            "retried": _pct(row["retry_rate"]),
            "fell back": _pct(row["fallback_rate"]),
            "p50 s": _num(row["p50_wall_s"], ".2f"),
            "p95 s": _num(row["p95_wall_s"], ".2f"),
            "tokens": _num(row["tokens_delivered_mean"]),
            "cache hits": _pct(row["cache_hit_rate"]),
            "efficiency": _pct(row["context_efficiency"]),
            "LLM in/out": llm,
            "LLM cost": _cost_cell(
                row["cost_usd"],
                costs.at[row["agent_id"], "llm_calls"],
                costs.at[row["agent_id"], "unpriced_calls"],
            ),
        })  # fmt: skip
    groups = (
        ("runs", "success", "retried", "fell back"),
        ("p50 s", "p95 s", "tokens", "cache hits", "efficiency"),
        ("LLM in/out", "LLM cost"),
    )

    def make(columns: Sequence[str], part: int) -> Table:
        out = Table(title=title if part <= 0 else None)
        out.add_column(columns[0], no_wrap=True)
        for header in columns[1:]:
            out.add_column(header, justify="right", no_wrap=True)
        for row in cells:
            out.add_row(*(row[c] for c in columns))
        return out

    console = Console()
    for out in tables_to_fit(console, make, ["agent", *(c for g in groups for c in g)], groups):
        console.print(out)
    console.print(caption, style="dim", highlight=False)
    by_workflow = cost_summary(frame, by="workflow")
    if int(by_workflow["llm_calls"].sum()):
        for out in _cost_tables(by_workflow, console):
            console.print(out)
    for warning in low:
        console.print(f"[yellow]warning:[/yellow] {warning.render()}", highlight=False)


def _cost_tables(costs: pd.DataFrame, console: Any) -> list[Table]:
    """The LLM cost per workflow: one table, or two (costs, then models) where one is wider
    than the terminal."""
    from rich.table import Table

    rows = []
    for row in costs.to_dict(orient="records"):
        calls = row["llm_calls"]
        tokens = f"{_num(row['llm_input_tokens'])}/{_num(row['llm_output_tokens'])}"
        rows.append({
            "workflow": str(row["workflow"]),
            "runs": str(row["runs"]),
            "LLM calls": str(calls),
            "LLM in/out": tokens if calls else "—",
            "cost": _cost_cell(row["cost_usd"], calls, row["unpriced_calls"]),
            "per run": _usd(row["cost_per_run"]) if calls else "—",
            "models": row["models"] or "",
        })  # fmt: skip
    caption = (
        "US dollars from the models' prices (agentrt/agents/prices.toml, AGENTRT_PRICES); "
        "unpriced: calls to models without a known price"
    )
    groups = (("runs", "LLM calls", "LLM in/out", "cost", "per run"), ("models",))

    def make(columns: Sequence[str], part: int) -> Table:
        table = Table(
            title="LLM cost per workflow" if part <= 0 else None,
            caption=caption if part in (-1, 0) else None,
        )
        for header in columns:
            prose = header in ("workflow", "models")
            table.add_column(header, justify="left" if prose else "right", no_wrap=not prose)
        for row in rows:
            table.add_row(*(row[c] for c in columns))
        return table

    return tables_to_fit(console, make, ["workflow", *(c for g in groups for c in g)], groups)


def _workflow_costs(costs: pd.DataFrame, as_json: bool) -> None:
    from agentrt.flows.metrics import jsonable

    if as_json:
        print_json(jsonable(costs))
        return
    from rich.console import Console

    console = Console()
    for table in _cost_tables(costs, console):
        console.print(table)


@app.command("export")
def export_command(
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv, parquet or json.")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    since: SinceOpt = None,
    workflow: WorkflowOpt = None,
    path: PathOpt = None,
) -> None:
    """Export the records (one row per agent attempt) as csv, parquet or json."""
    from agentrt.flows.metrics import MetricsError, export_records

    fmt = fmt.lower()
    if fmt not in ("csv", "parquet", "json"):
        raise fail(f"--format {fmt!r}: use csv, parquet or json", ExitCode.BAD_INPUT)
    if fmt == "parquet" and output is None:
        raise fail("--format parquet is binary: pass --output PATH", ExitCode.BAD_INPUT)
    frame = _load(path, since, workflow)
    try:
        text = export_records(frame, fmt, output)
    except (MetricsError, OSError) as exc:
        raise fail(f"export to {output or 'stdout'} failed: {exc}", ExitCode.BAD_INPUT) from None
    if text is not None:
        sys.stdout.write(text)
    else:
        typer.echo(f"wrote {len(frame)} records to {output}", err=True)


@app.command("recommend")
def recommend_command(
    since: SinceOpt = None,
    workflow: WorkflowOpt = None,
    path: PathOpt = None,
    agent_path: Annotated[
        list[Path] | None,
        typer.Option(
            "--agent-path", "-A", help="Extra folder or file of agent manifests (repeatable)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Propose manifest changes (optimal_tokens, fallbacks, cache) from observed usage."""
    from agentrt.flows.metrics import low_efficiency, recommend

    frame = _load(path, since, workflow)
    proposals = recommend(frame, _manifests(agent_path, frame["agent_id"].dropna().unique()))
    # Low efficiency the rules could not turn into a proposal (too few runs, nothing lower
    # to propose) is still said: usage is not balanced then.
    proposed = {p.agent_id for p in proposals if p.kind == "low_context_efficiency"}
    low = [w for w in low_efficiency(frame) if w.agent_id not in proposed]
    if as_json:
        print_json([p.model_dump() for p in proposals])
        for warning in low:
            typer.echo(f"warning: {warning.render()}", err=True)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for warning in low:
        console.print(f"[yellow]warning:[/yellow] {warning.render()}", highlight=False)
    if not proposals:
        if low:
            console.print(
                f"No changes to propose from {len(frame)} records, but context efficiency is "
                "low (above): too few runs to propose a value, or optimal_tokens is already "
                "at what is referenced; sharpen the query."
            )
        else:
            console.print(f"No changes to propose from {len(frame)} records: usage looks balanced.")
        return
    unknown = any(p.current is None for p in proposals)
    out = Table(
        title=f"{len(proposals)} proposed manifest change{'s' if len(proposals) > 1 else ''}",
        caption="?: the agent's manifest is not registered here (add --agent-path)"
        if unknown
        else None,
        show_lines=True,
    )
    for header in ("agent", "change", "current → proposed", "evidence"):
        out.add_column(header, overflow="fold")
    for p in proposals:
        out.add_row(p.agent_id, p.field, f"{p.current or '?'} → {p.proposed}", p.evidence)
    console.print(out)


def _manifests(agent_path: list[Path] | None, agent_ids: Any) -> dict[str, Any]:
    """The registered manifests of the recorded agents, for current values; agents that
    are no longer registered are judged on their records alone."""
    from agentrt.agents.registry import AgentNotFound, Registry

    registry = Registry.discover(agent_path or [])
    manifests = {}
    for agent_id in agent_ids:
        try:
            manifests[str(agent_id)] = registry.get(str(agent_id)).manifest
        except AgentNotFound:
            continue
    return manifests


def main() -> None:
    app()


if __name__ == "__main__":
    main()
