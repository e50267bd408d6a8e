"""Importable Prefect flows for deployments (``prefect.yaml`` entrypoints).

``prefect deploy`` and every flow run a worker starts load a flow from a file path and an
attribute name, e.g. ``flows/deployments.py:code_analysis``. This module builds one flow
per built-in workflow when it is imported, from the same manifests ``agentrt run`` uses:
:func:`agentrt.flows.run.prepare` plans the workflow and
:func:`agentrt.flows.compiler.build_flow` compiles
it, so a deployed run has the same task runs (``agent@version``), retries, cache, report
and artifacts as a local one.

A deployed flow takes one parameter, ``params`` (a dict, e.g. ``{"repo": "/src/app",
"since": "HEAD~3"}``). Missing parameters get the workflow's defaults and values are
converted to their declared types, so an event trigger can pass only what it knows.

The task runner can be chosen per deployment without editing the workflow, through the
work pool's job variables (``job_variables: {env: {...}}`` in ``prefect.yaml``):

``AGENTRT_TASK_RUNNER``
    ``thread`` | ``process`` | ``dask`` | ``ray`` (default: the workflow's ``task_runner``).
``AGENTRT_TASK_RUNNER_ADDRESS``
    A Dask scheduler (``tcp://host:8786``) or Ray cluster address; without one, dask starts
    a local cluster.
``AGENTRT_TASK_RUNNER_WORKERS``
    Worker processes of that local cluster.

This module imports Prefect (it is only ever loaded by Prefect).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from prefect import Flow

from agentrt.flows.artifacts import artifacts_mode
from agentrt.flows.compiler import build_flow
from agentrt.flows.plan import Plan
from agentrt.flows.run import prepare
from agentrt.flows.settings import metrics_dir
from agentrt.flows.workflow import TaskRunnerSpec

__all__ = ["code_analysis", "deployment_flow", "review_chain", "runner_from_env", "use_checkout"]

# The checkout (or site-packages) this module was imported from: it holds flows/deployments.py.
CODE_ROOT = Path(__file__).resolve().parents[1]


def use_checkout(directory: str | None = None) -> dict[str, str]:
    """Pull step: work in the folder that holds the agentrt code (``prefect.yaml``'s ``pull``).

    The worker's flow process starts in a temporary folder; the deployment entrypoint
    (``flows/deployments.py:…``) and the default ``repo: "."`` are relative to the code. The
    folder is ``directory``, else ``$AGENTRT_CODE_DIR``, else the installation this module
    was imported from, so a worker on any host with agentrt installed finds its own copy.
    """
    target = Path(directory or os.environ.get("AGENTRT_CODE_DIR") or CODE_ROOT).expanduser()
    if not (target / "flows" / "deployments.py").is_file():
        raise FileNotFoundError(
            f"{target} does not contain flows/deployments.py; point AGENTRT_CODE_DIR (or the "
            "pull step's directory) at an agentrt checkout"
        )
    os.chdir(target)
    return {"directory": str(target.resolve())}


def runner_from_env(spec: TaskRunnerSpec, env: dict[str, str] | None = None) -> TaskRunnerSpec:
    """``spec`` with the ``AGENTRT_TASK_RUNNER*`` overrides of ``env`` applied."""
    env = dict(os.environ if env is None else env)
    update: dict[str, Any] = {}
    if kind := env.get("AGENTRT_TASK_RUNNER", "").strip():
        update["type"] = kind
    if address := env.get("AGENTRT_TASK_RUNNER_ADDRESS", "").strip():
        update["address"] = address
    if workers := env.get("AGENTRT_TASK_RUNNER_WORKERS", "").strip():
        update["workers"] = workers
    if not update:
        return spec
    try:
        return TaskRunnerSpec.model_validate({**spec.model_dump(), **update})
    except ValueError as exc:
        raise ValueError(
            f"invalid AGENTRT_TASK_RUNNER* settings {update}: {exc}; use "
            "AGENTRT_TASK_RUNNER=thread|process|dask|ray, an address string and a worker count"
        ) from None


def deployment_flow(workflow: str, *, env: dict[str, str] | None = None) -> Flow[..., Any]:
    """The deployable flow of ``workflow`` (a name or a YAML path).

    The flow is named after the workflow and takes ``params: dict | None``; its result is
    the run result as JSON data, and a failed required agent fails the flow run.
    """
    plan, _defaults = prepare(workflow, strict=False)
    spec = runner_from_env(plan.workflow.task_runner, env)
    if spec != plan.workflow.task_runner:
        plan = dataclasses.replace(
            plan, workflow=plan.workflow.model_copy(update={"task_runner": spec})
        )
    # Inline: automations that read a run's artifacts when it completes find them.
    inner = build_flow(plan, spool_root=metrics_dir(), artifacts=artifacts_mode("inline"))
    return _with_param_defaults(plan, inner)


def _with_param_defaults(plan: Plan, inner: Flow[..., Any]) -> Flow[..., Any]:
    manifest = plan.workflow

    async def run(params: dict[str, Any] | None = None) -> Any:
        # A bad parameter (unknown name, wrong type, missing required value) fails the run
        # here with the workflow's own message, before any agent starts.
        values = manifest.resolve_params(dict(params or {}))
        return await inner.fn(values)

    run.__doc__ = f"Run the {manifest.name} workflow. params: " + (
        ", ".join(f"{k} ({p.type}, default {p.default!r})" for k, p in manifest.params.items())
        or "none"
    )
    return Flow(
        fn=run,
        name=inner.name,
        description=inner.description,
        task_runner=inner.task_runner,
        persist_result=False,
        validate_parameters=False,
        log_prints=False,
    )


code_analysis = deployment_flow("code-analysis")
review_chain = deployment_flow("review-chain")
