"""What a workflow run leaves at its end: the metrics file, the report files, and the
makers of its Prefect artifacts (published by :mod:`agentrt.flows.artifacts`)."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from agentrt.flows.artifacts import ArtifactMaker
from agentrt.flows.plan import Plan
from agentrt.flows.results import AttemptRecord, RunResult

__all__ = ["write_run_outputs"]


async def write_run_outputs(
    plan: Plan, result: RunResult, spool: str | None, attempts: list[AttemptRecord]
) -> list[ArtifactMaker]:
    """Metrics and report files at the end of a run (never failing the run for them), and
    the makers of the run's artifacts (built where they are published: flows/artifacts.py).
    Where the files went, or why they did not, is in ``result.report_paths``."""
    from agentrt.flows.metrics import (
        finalize_run_records,
        log_low_efficiency,
        metrics_artifact_args,
    )
    from agentrt.flows.report import render_report, report_artifacts, write_report

    makers: list[ArtifactMaker] = []
    # In a worker thread: a Parquet write would hold up the event loop.
    metrics_path, written = await asyncio.to_thread(
        finalize_run_records, result, spool, plan, attempts
    )
    if metrics_path is not None:
        result.report_paths["metrics"] = str(metrics_path)
    warnings = await asyncio.to_thread(_efficiency_warnings, metrics_path, written)
    log_low_efficiency(warnings)
    try:
        markdown: str | None = render_report(plan, result, warnings)
    except Exception as exc:
        result.report_paths["error"] = f"report not written: {type(exc).__name__}: {exc}"
        markdown = None
    if markdown is not None:
        try:
            result.report_paths.update(write_report(plan, result, markdown))
        except Exception as exc:
            result.report_paths["error"] = f"report not written: {type(exc).__name__}: {exc}"
        makers.append(functools.partial(report_artifacts, result, markdown))
    if metrics_path is not None:
        # The records just written (no read-back), or the file if it already existed.
        records = written if written is not None else metrics_path

        def metrics_table() -> list[Any]:
            from prefect.artifacts import TableArtifact

            return [TableArtifact(**metrics_artifact_args(records, plan.workflow.name))]

        makers.append(metrics_table)
    return makers


def _efficiency_warnings(metrics_path: Any, written: Any) -> list[Any]:
    """The run's steps with low context efficiency, from the records just written or (a
    second finalize) the file's; none when there are no records. Never raises: a warning
    must not cost the report."""
    from agentrt.flows.metrics import load_records, low_efficiency

    try:
        if written is None and metrics_path is None:
            return []
        records = written if written is not None else load_records(metrics_path)
        return low_efficiency(records, by="step")
    except Exception:
        return []
