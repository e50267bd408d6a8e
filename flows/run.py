"""Run a workflow: load it, plan it, compile it to a Prefect flow, execute, keep the result.

This is the Python API behind ``agentrt run``::

    from agentrt.flows.run import run_workflow
    result = run_workflow("code-analysis", {"repo": "."})
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from agentrt.agents.redact import install_log_redaction
from agentrt.agents.registry import Registry
from agentrt.flows.artifacts import artifacts_mode
from agentrt.flows.plan import Plan, build_plan
from agentrt.flows.results import RunResult
from agentrt.flows.retry_policy import infrastructure_failure
from agentrt.flows.server_watch import PrefectServerUnavailable
from agentrt.flows.settings import configure_prefect, guard_embedded_server, metrics_dir, runs_dir
from agentrt.flows.workflow import WorkflowManifest, find_workflow

__all__ = ["arun_workflow", "prepare", "run_workflow"]


def prepare(
    workflow: str | WorkflowManifest,
    params: dict[str, Any] | None = None,
    *,
    registry: Registry | None = None,
    strict: bool = True,
) -> tuple[Plan, dict[str, Any]]:
    """Load and plan a workflow and resolve its parameters (no Prefect involved)."""
    source: Path | None = None
    if isinstance(workflow, str):
        source, workflow = find_workflow(workflow)
    registry = registry or Registry.discover()
    plan = build_plan(workflow, registry, source)
    return plan, workflow.resolve_params(params or {}, strict=strict)


async def arun_workflow(
    workflow: str | WorkflowManifest,
    params: dict[str, Any] | None = None,
    *,
    registry: Registry | None = None,
    events: Any = None,
    task_runner: str | None = None,
    plan: Plan | None = None,
) -> RunResult:
    """Run a workflow to the end; return its result whether it completed or failed."""
    configure_prefect()
    guard_embedded_server()
    from agentrt.flows.compiler import RunHandle, build_flow
    from agentrt.flows.prefect_compat import shared_sync_client

    install_log_redaction()  # Prefect's logging is set up now (importing it does that)

    mode = artifacts_mode("background")
    if plan is None:
        plan, values = prepare(workflow, params, registry=registry)
    else:
        values = plan.workflow.resolve_params(params or {})
    # The result file is written with the report, while Prefect records the flow run's end.
    handle = RunHandle(after_report=_save)
    flow_obj = build_flow(
        plan,
        events=events,
        task_runner=task_runner,
        spool_root=metrics_dir(),
        handle=handle,
        return_json=False,
        artifacts=mode,
        report_after_return=True,
    )
    try:
        with shared_sync_client():
            await flow_obj(params=values, return_state=True)
    except Exception as exc:
        # The Prefect server does not answer: at the start (one clear error), or it went
        # away during the run (the run's result says what was kept; Prefect's last calls
        # for the flow run fail at once, see flows/server_watch.py).
        server_error = infrastructure_failure(exc) == "server"
        if handle.result is None and server_error:
            raise _unavailable(exc) from None
        if handle.result is None or (handle.server_lost is None and not server_error):
            raise
        if handle.server_lost is None:  # gone after the agents, before the flow run's end
            _lost_at_the_end(handle, exc, plan)
        logging.getLogger("agentrt.server").warning(
            "the flow run's end could not be recorded: the Prefect server is gone (%s: %s)",
            type(exc).__name__,
            exc,
        )
    finally:
        if handle.server_lost is not None:
            from agentrt.flows.prefect_compat import resume_talking_to_server

            resume_talking_to_server()  # for the next run in this process
    result = handle.result
    if result is None:
        raise RuntimeError(f"workflow {plan.workflow.name!r} ended without a result")
    if handle.finishing is not None:
        await handle.finishing
    if (publish := handle.publish) is not None and handle.server_lost is None:
        publish()
    return result


def _lost_at_the_end(handle: Any, exc: BaseException, plan: Plan) -> None:
    from prefect.settings import get_current_settings

    from agentrt.flows.prefect_compat import stop_talking_to_server
    from agentrt.flows.server_watch import ServerLoss, describe

    result = handle.result
    stop_talking_to_server()
    url = get_current_settings().api.url or "(the local server)"
    loss = handle.server_lost = ServerLoss(str(url), "the end of the run", describe(exc))
    kept = sum(1 for s in result.steps.values() if s.state in ("completed", "cached", "fallback"))
    result.interrupted = loss.line(kept, len(plan.steps))
    result.state = "failed"


def _unavailable(exc: BaseException) -> PrefectServerUnavailable:
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url or "(the local server)"
    cause = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    reason = f"{type(exc).__name__}: {cause}" if cause else type(exc).__name__
    return PrefectServerUnavailable(
        f"the Prefect server at {url} does not answer ({reason[:200]}); start it, or unset "
        "PREFECT_API_URL to run without one"
    )


def run_workflow(
    workflow: str | WorkflowManifest,
    params: dict[str, Any] | None = None,
    **kwargs: Any,
) -> RunResult:
    """Synchronous :func:`arun_workflow` (not callable from inside a running event loop)."""
    return asyncio.run(arun_workflow(workflow, params, **kwargs))


def _save(result: RunResult) -> Path:
    folder = runs_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = result.started_at.strftime("%Y%m%dT%H%M%S")
    path = folder / f"{result.workflow}-{stamp}-{(result.flow_run_id or 'local')[:8]}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(result.redacted_json())
    tmp.replace(path)
    result.report_paths.setdefault("result", str(path))
    return path
