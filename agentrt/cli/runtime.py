"""The runtime's commands: ``agentrt run``, ``agentrt workflows``, ``agentrt agents``,
``agentrt schema`` (typer + rich).

Exit codes (:class:`agentrt.cli.output.ExitCode`): 0 ok, 1 the work failed (a run failed), 2 bad
input (invalid manifest, unknown agent or workflow, bad parameter). User errors never show a
traceback. Commands that run no flow do not import Prefect, so they start fast.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from agentrt.agents.diagnostics import ManifestError
from agentrt.agents.registry import AgentNotFound, Registry, ResolutionError
from agentrt.cli.output import ExitCode, fail, print_json, read_text_file, tables_to_fit
from agentrt.errors import AgentrtError

agents_app = typer.Typer(help="Discover, inspect and validate agents.", no_args_is_help=True)
workflows_app = typer.Typer(help="List and inspect workflows.", no_args_is_help=True)

out = Console()
err = Console(stderr=True)

AgentPath = Annotated[
    list[Path] | None,
    typer.Option(
        "--agent-path", "-A", help="Extra folder or file of agent manifests (repeatable)."
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def register(app: typer.Typer) -> None:
    """Add these commands to the root ``agentrt`` app."""
    app.command()(run)
    app.command()(schema)
    app.add_typer(agents_app, name="agents")
    app.add_typer(workflows_app, name="workflows")


def _registry(agent_path: list[Path] | None) -> Registry:
    return Registry.discover(agent_path or [])


# -- agents --------------------------------------------------------------------------
@agents_app.command("list")
def agents_list(
    capability: Annotated[
        str | None, typer.Option(help="Only agents with this capability.")
    ] = None,
    agent_path: AgentPath = None,
    as_json: JsonFlag = False,
) -> None:
    """List registered agents (the latest version of each)."""
    registry = _registry(agent_path)
    agents = registry.find(capability)
    if as_json:
        print_json(
            [
                {
                    "id": a.id,
                    "version": str(a.version),
                    "versions": [str(v.version) for v in registry.versions(a.id)],
                    "kind": a.manifest.kind,
                    "capabilities": a.manifest.capabilities,
                    "description": a.manifest.description,
                    "source": a.where(),
                }
                for a in agents
            ]
        )
        return
    rows = []
    for a in agents:
        versions = [str(v.version) for v in registry.versions(a.id)]
        rows.append({
            "id": a.id,
            "version": versions[-1] + (f" (+{len(versions) - 1})" if len(versions) > 1 else ""),
            "kind": a.manifest.kind,
            "capabilities": ", ".join(a.manifest.capabilities),
            "description": a.manifest.description,
        })  # fmt: skip
    title = f"{len(agents)} agents" + (f" with {capability}" if capability else "")
    groups = (("version", "kind", "capabilities"), ("description",))
    maker = _table_maker(rows, title)
    for table in tables_to_fit(out, maker, ["id", *sum(groups, ())], groups, PROSE):
        out.print(table)
    if registry.problems:
        err.print(
            f"[yellow]{len(registry.problems)} manifest problem(s); run `agentrt agents validate`"
        )


#: Columns of the lists that wrap (see :func:`tables_to_fit`).
PROSE = ("capabilities", "description")


def _table_maker(rows: list[dict[str, str]], title: str) -> Callable[[Sequence[str], int], Table]:
    """Builds the table of ``rows`` for :func:`tables_to_fit`: names and numbers whole,
    prose (descriptions, capabilities) wrapped, paths folded."""

    def make(columns: Sequence[str], part: int) -> Table:
        table = Table(title=title if part <= 0 else None)
        for column in columns:
            wraps = column in PROSE or column == "file"
            table.add_column(column, no_wrap=not wraps, overflow="fold")
        for row in rows:
            table.add_row(*(row[c] for c in columns))
        return table

    return make


def _shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it (shorter)."""
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    return str(path)


@agents_app.command("show")
def agents_show(
    ref: Annotated[str, typer.Argument(help="ID, ID@VERSION or ID@SPEC (e.g. code_review@>=1).")],
    agent_path: AgentPath = None,
    as_json: JsonFlag = False,
) -> None:
    """Show one agent's manifest (the highest version matching the spec)."""
    registry = _registry(agent_path)
    agent_id, _, spec = ref.partition("@")
    if spec and spec[0].isdigit():
        spec = f"=={spec}"
    try:
        agent = registry.get(agent_id, spec or None)
    except (AgentNotFound, ValueError) as exc:
        raise fail(str(exc), ExitCode.BAD_INPUT) from None
    data = agent.manifest.model_dump(mode="json", exclude_defaults=False)
    data["source"] = agent.where()
    data["versions"] = [str(v.version) for v in registry.versions(agent.id)]
    if as_json:
        print_json(data)
        return
    import yaml

    out.print(f"[bold]{agent.key}[/bold]  ({agent.where()})")
    out.print(yaml.safe_dump(data, sort_keys=False), highlight=False, markup=False)


@agents_app.command("validate")
def agents_validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Manifest files or folders (default: every registered agent)."),
    ] = None,
    no_imports: Annotated[
        bool, typer.Option("--no-imports", help="Skip importing entrypoints and schemas.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Check manifests; print each problem as file:line: field: message. Exit 2 if any."""
    if paths:
        # The named manifests are checked against everything else that is registered, so
        # requirements on built-in or installed agents resolve.
        registry = Registry.discover(paths)
        named = [str(p.resolve()) for p in paths]

        def is_named(file: str) -> bool:
            return any(str(Path(file).resolve()).startswith(n) for n in named)

        problems = [
            p
            for p in registry.validate(check_imports=not no_imports)
            if is_named(p.file) or not Path(p.file).exists()
        ]
        sources = {a.source for a in registry if is_named(a.source)}
    else:
        registry = Registry.discover()
        problems = registry.validate(check_imports=not no_imports)
        sources = {a.source for a in registry}
    # Broken manifests are not in the registry; they count as checked manifests too.
    checked = len(sources | {p.file for p in problems})
    if as_json:
        print_json({"agents": checked, "problems": [p.to_dict() for p in problems]})
    elif problems:
        for p in problems:
            err.print(str(p), highlight=False, soft_wrap=True, markup=False)
        err.print(f"{len(problems)} problem(s) in {checked} agent manifest(s)")
    else:
        out.print(f"[green]ok[/green]: {checked} agent manifest(s), no problems")
    raise typer.Exit(ExitCode.BAD_INPUT if problems else ExitCode.OK)


@agents_app.command("new")
def agents_new(
    name: Annotated[
        str, typer.Argument(help="The agent's id (and module name), e.g. todo_counter.")
    ],
    folder: Annotated[
        Path, typer.Option("--dir", help="Where to write the agent (created if missing).")
    ] = Path("my_agents"),
    force: Annotated[bool, typer.Option(help="Overwrite files that exist.")] = False,
) -> None:
    """Scaffold an agent: NAME.yaml (manifest), NAME.py (typed function), test_NAME.py."""
    from agentrt.cli.scaffold import scaffold_agent

    try:
        written = scaffold_agent(name, folder, force=force)
    except (ValueError, OSError) as exc:
        raise fail(str(exc), ExitCode.BAD_INPUT) from None
    for path in written:
        out.print(f"wrote {path}", highlight=False)
    out.print(
        f"next: agentrt agents validate {folder} · pytest {folder} · "
        f"agentrt run WORKFLOW -A {folder} (a workflow with `- agent: {name}`)",
        highlight=False,
    )


# -- workflows -----------------------------------------------------------------------
@workflows_app.command("list")
def workflows_list(as_json: JsonFlag = False) -> None:
    """List the workflows agentrt can run."""
    from agentrt.flows.workflow import discover_workflows

    found, problems = discover_workflows()
    if as_json:
        print_json(
            [
                {"name": n, "description": wf.description, "steps": len(wf.steps), "file": str(p)}
                for n, (p, wf) in sorted(found.items())
            ]
        )
    else:
        rows = [
            {"name": n, "steps": str(len(wf.steps)), "description": wf.description,
             "file": _shown_path(p)}
            for n, (p, wf) in sorted(found.items())
        ]  # fmt: skip
        groups = (("steps", "description"), ("file",))
        maker = _table_maker(rows, f"{len(found)} workflows")
        for table in tables_to_fit(out, maker, ["name", *sum(groups, ())], groups, PROSE):
            out.print(table)
    for p in problems:
        err.print(str(p), highlight=False, markup=False)


@workflows_app.command("show")
def workflows_show(
    name: Annotated[str, typer.Argument(help="Workflow name or path to its YAML file.")],
    agent_path: AgentPath = None,
    as_json: JsonFlag = False,
) -> None:
    """Show a workflow's plan: resolved agents, levels (run in parallel) and edges."""
    from agentrt.flows.run import prepare

    try:
        plan, params = prepare(name, registry=_registry(agent_path), strict=False)
    except ManifestError as exc:
        raise fail(exc.problems, ExitCode.BAD_INPUT) from None
    except (ValueError, AgentNotFound, ResolutionError) as exc:
        raise fail(str(exc), ExitCode.BAD_INPUT) from None
    if plan.type_problems:
        raise fail(plan.type_problems, ExitCode.BAD_INPUT)
    steps = {
        sid: {
            "agent": s.agent.key,
            "after": sorted(s.after),
            "inputs": {k: [r.describe() for r in v] for k, v in s.inputs.items()},
            "optional": s.optional,
            "fallbacks": [f.key for f in s.fallbacks],
            "implicit": s.implicit,
        }
        for sid, s in plan.steps.items()
    }
    from agentrt.flows.allocation import allocate_budget, budget_problems

    grants = allocate_budget(plan)
    allocation = {
        sid: {
            "tokens": g.tokens,
            "status": g.status,
            "reason": g.reason,
            "min_tokens": plan.steps[sid].agent.manifest.context.min_tokens,
            "optimal_tokens": plan.steps[sid].agent.manifest.context.optimal_tokens,
            "priority": plan.steps[sid].agent.manifest.priority,
            "runs": g.tokens > 0,
        }
        for sid, g in grants.items()
    }
    data = {
        "name": plan.workflow.name,
        "description": plan.workflow.description,
        "params": params,
        "levels": plan.levels,
        "edges": plan.edges(),
        "steps": steps,
        "budget": plan.workflow.budget.total_tokens,
        "allocation": allocation,
        "budget_problems": budget_problems(plan, grants),
        "resources": _resources(plan),
    }
    if as_json:
        print_json(data)
        return
    out.print(f"[bold]{plan.workflow.name}[/bold] — {plan.workflow.description}")
    for i, level in enumerate(plan.levels):
        parallel = " (parallel)" if len(level) > 1 else ""
        out.print(
            f"  level {i}{parallel}: " + ", ".join(f"{s} ({steps[s]['agent']})" for s in level)
        )
    out.print("  edges: " + (", ".join(f"{a} → {b}" for a, b in plan.edges()) or "none"))
    for sid, s in steps.items():
        extra = []
        if s["inputs"]:
            extra.append(
                "inputs " + ", ".join(f"{k}←{'+'.join(v)}" for k, v in s["inputs"].items())
            )
        if s["fallbacks"]:
            extra.append("fallbacks " + ", ".join(s["fallbacks"]))
        if s["optional"]:
            extra.append("optional")
        if s["implicit"]:
            extra.append("added: required by another agent")
        if extra:
            out.print(f"  {sid}: " + "; ".join(extra))
    total = plan.workflow.budget.total_tokens
    if allocation:
        out.print(f"  token budget: {f'{total:,}' if total else 'none set'}")
    for sid, a in allocation.items():
        flag = (
            ""
            if a["runs"]
            else " [yellow]⚠ 0 tokens: skipped[/yellow]"
            if plan.steps[sid].optional
            else " [red]✗ 0 tokens: the run cannot start[/red]"
        )
        out.print(f"    {sid}: {a['tokens']:,} tokens — {a['reason']}{flag}", highlight=False)
    for problem in data["budget_problems"]:
        err.print(problem, highlight=False, markup=False)
    res = data["resources"]
    if res and res["steps"]:
        out.print(
            f"  resources: {res['memory_mb']:,} MB ({res['memory_from']}), "
            f"{res['cpus']:g} cores ({res['cpus_from']})",
            highlight=False,
        )
        for sid, d in res["steps"].items():
            out.print(f"    {sid}: {d['memory_mb']:,} MB, {d['cpus']:g} cores", highlight=False)


def _resources(plan: Any) -> dict[str, Any] | None:
    """The run's memory and cores, and what each step that declares any reserves."""
    from agentrt.flows.resources import step_demand

    totals = plan.resources
    if totals is None:
        return None
    steps = {}
    for sid, s in plan.steps.items():
        demand = step_demand([s.agent, *s.fallbacks])
        if demand:
            steps[sid] = {"memory_mb": demand.memory_mb, "cpus": demand.cpus}
    return {
        "memory_mb": totals.memory_mb,
        "cpus": totals.cpus,
        "memory_from": totals.memory_from,
        "cpus_from": totals.cpus_from,
        "steps": steps,
    }


# -- run -----------------------------------------------------------------------------
def _parse_params(items: list[str] | None) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise fail(f"--param {item!r}: write it as NAME=VALUE", ExitCode.BAD_INPUT)
        params[key.strip()] = value
    return params


def _read_text_params(workflow: str, params: dict[str, str]) -> dict[str, str]:
    """``params`` with the value of each ``text`` parameter of ``workflow`` (a file, or
    ``-`` for standard input) replaced by that file's text, read here, before the flow
    starts; an unreadable file is bad input. A workflow that cannot be found is left to
    :func:`~agentrt.flows.run.prepare` to report."""
    from agentrt.flows.workflow import find_workflow

    try:
        _source, manifest = find_workflow(workflow)
    except (ManifestError, ValueError):
        return params
    return {
        name: read_text_file(f"--param {name}=", value)
        if name in manifest.params and manifest.params[name].type == "text"
        else value
        for name, value in params.items()
    }


def run(
    workflow: Annotated[str, typer.Argument(help="Workflow name or path to its YAML file.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE (repeatable).")
    ] = None,
    task_runner: Annotated[
        str | None,
        typer.Option(help="Override the workflow's task runner: thread|process|dask|ray."),
    ] = None,
    agent_path: AgentPath = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Exit 1 when a step got its output only through a fallback agent.",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Run a workflow as a Prefect flow, showing each agent's progress."""
    import asyncio

    from agentrt.flows.progress import LiveProgress, render_summary
    from agentrt.flows.results import RunEvents
    from agentrt.flows.run import arun_workflow, prepare
    from agentrt.flows.server_watch import PrefectServerUnavailable
    from agentrt.flows.settings import configure_prefect, route_prefect_logs

    # The live table and error reports replace Prefect's console log; logs still reach the
    # Prefect API (and UI), and what Prefect would print goes to .agentrt/logs/prefect.log.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    configure_prefect()
    params = _read_text_params(workflow, _parse_params(param))
    try:
        plan, _values = prepare(workflow, params, registry=_registry(agent_path))
    except ManifestError as exc:
        raise fail(exc.problems, ExitCode.BAD_INPUT) from None
    except (ValueError, AgentNotFound, ResolutionError) as exc:
        raise fail(str(exc), ExitCode.BAD_INPUT) from None
    from agentrt.flows.allocation import budget_problems

    if problems := budget_problems(plan):  # before any agent starts
        raise fail(["error: " + problems[0], *problems[1:]], ExitCode.FAILURE)
    if task_runner and task_runner not in ("thread", "process", "dask", "ray"):
        raise fail(
            f"--task-runner {task_runner!r}: use thread, process, dask or ray", ExitCode.BAD_INPUT
        )
    from agentrt.flows.artifacts import artifacts_mode

    try:
        artifacts_mode()
    except ValueError as exc:
        raise fail(str(exc), ExitCode.BAD_INPUT) from None

    from agentrt.flows.local_server import LocalServerError, connect

    # Before Prefect is imported: the run goes to the managed local server, unless
    # PREFECT_API_URL or AGENTRT_SERVER=ephemeral says otherwise.
    try:
        connect(lambda line: err.print(line, highlight=False, markup=False, soft_wrap=True))
    except LocalServerError as exc:  # an AGENTRT_SERVER* variable agentrt cannot use
        raise fail(str(exc), ExitCode.BAD_INPUT) from None

    prefect_log = route_prefect_logs()
    live = not as_json and out.is_terminal and not os.environ.get("CI")
    progress = LiveProgress(
        err if as_json else out,
        f"agentrt run {plan.workflow.name}",
        plan.levels,
        {sid: s.agent.key for sid, s in plan.steps.items()},
    )
    events = RunEvents(on_step=progress.on_step)
    try:
        if live:
            with progress:
                result = asyncio.run(
                    arun_workflow(
                        plan.workflow, params, plan=plan, events=events, task_runner=task_runner
                    )
                )
        else:
            if not as_json:
                out.print(f"running {plan.workflow.name} ({len(plan.steps)} agents)…")
            result = asyncio.run(
                arun_workflow(
                    plan.workflow, params, plan=plan, events=events, task_runner=task_runner
                )
            )
    except PrefectServerUnavailable as exc:
        raise fail(str(exc), ExitCode.FAILURE) from None
    except (ValueError, AgentrtError) as exc:
        # A task runner that is not installed, an entrypoint that cannot be imported: said in
        # one line, as before the run.
        raise fail(str(exc), ExitCode.BAD_INPUT) from None
    if result.interrupted:
        # The Prefect server stopped answering: the table (what ran, what was kept) and one
        # line; nothing to wait for (history, artifacts) from a server that is gone.
        if as_json:
            print_json(result.model_dump(mode="json"))
        elif not live:
            out.print(render_summary(result))
        err.print(
            f"[red]✗[/red] {result.interrupted} · Prefect's log: {_short(str(prefect_log))}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(ExitCode.FAILURE)
    ui_url = _flow_run_url(result)
    if as_json:
        data = result.model_dump(mode="json")
        data["flow_run_url"] = ui_url
        print_json(data)
    else:
        if not live:
            out.print(render_summary(result))
        for error in result.errors:
            err.print(f"[red]✗[/red] {error.render()}", highlight=False)
        out.print(_closing_summary(result), highlight=False)
        paths = result.report_paths
        if "latest_markdown" in paths:
            out.print(f"report: {_short(paths['markdown'])} (also {_short(paths['json'])})")
        elif "error" in paths:
            err.print(paths["error"])
    _wait_for_history(result, quiet=as_json or not live)
    from agentrt.flows.artifacts import drain_artifacts

    # Published in the background since the run returned; usually done by now.
    for problem in drain_artifacts():
        err.print(f"artifacts not published: {problem}", highlight=False)
    if ui_url and not as_json:
        out.print(f"flow run: {ui_url}", highlight=False, soft_wrap=True)
    if strict and result.state == "completed" and result.fallbacks:
        err.print(
            f"--strict: {result.outcome}; fix the failing agents (see the notes) or run "
            "without --strict",
            highlight=False,
        )
        raise typer.Exit(ExitCode.FAILURE)
    raise typer.Exit(ExitCode.OK if result.state == "completed" else ExitCode.FAILURE)


def _flow_run_url(result: Any) -> str | None:
    """The flow run's page in the Prefect UI; None on Prefect's ephemeral server (no UI)."""
    from prefect.settings import get_current_settings
    from prefect.utilities.urls import url_for

    if not result.flow_run_id or not get_current_settings().api.url:
        return None
    return url_for("flow-run", obj_id=result.flow_run_id)


def _wait_for_history(result: Any, *, quiet: bool) -> None:
    """Let the embedded Prefect server record the run before this process (and the server
    with it) exits; see flows/history.py. A real server needs no wait."""
    from agentrt.flows.history import embedded_server, task_run_ids, wait_until_recorded

    if not embedded_server():
        return
    status = None if quiet else err.status("recording the run in Prefect's database…")

    def show(done: int, total: int) -> None:
        if status is not None:
            status.update(f"recording the run in Prefect's database: {done}/{total} task runs")

    try:
        with status if status is not None else contextlib.nullcontext():
            recorded, expected = wait_until_recorded(result, on_progress=show)
    except KeyboardInterrupt:
        recorded, expected = -1, len(task_run_ids(result))
    except Exception as exc:  # the history is a courtesy: never fail a finished run for it
        err.print(f"could not check Prefect's run history: {type(exc).__name__}: {exc}")
        return
    if recorded < expected:
        err.print(
            f"note: Prefect's embedded server had recorded {max(recorded, 0)} of {expected} "
            "task runs when agentrt stopped waiting; the Prefect UI may show the rest as "
            "pending. The local server (unset AGENTRT_SERVER=ephemeral) or a Prefect "
            "server (PREFECT_API_URL) keeps the full history.",
            highlight=False,
        )


def _short(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def _closing_summary(result: Any) -> str:
    from agentrt.agents.builtin.coverage import display_language
    from agentrt.flows.report import count_findings, coverage_lines

    counts = result.counts()
    total = len(result.steps)
    # A step whose LLM agent was not run (no model) and whose fallback came from the cache
    # ran nothing either.
    cached = counts.get("cached", 0) + sum(
        1 for s in result.steps.values() if s.no_model and s.from_cache
    )
    findings = sum(count_findings(s.output) for s in result.steps.values())
    # With a workflow budget: the context it paid for (steps with a grant). Agents that read
    # another step's context (ctx.upstream) record it as delivered to them too, for their
    # efficiency; summing those would count the same tokens once per reader.
    steps = list(result.steps.values())
    granted = [s for s in steps if s.tokens_allocated is not None]
    tokens = sum(s.tokens_delivered or 0 for s in granted or steps)
    states = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    head = f"{result.workflow} {result.outcome} in {result.duration_seconds:.1f}s"
    parts = [
        f"{total} agent{'s' if total != 1 else ''} ({states})",
        f"{findings:,} findings",
        f"{tokens:,} context tokens",
    ]
    line = f"{head}: " + " · ".join(parts)
    if result.no_model_line:  # said once: the steps' notes say only "no model configured"
        line += f"\n{result.no_model_line}"
    coverage = coverage_lines(result)
    blind = [row for row in coverage if row["unread_languages"]]
    if blind:
        languages = sorted({lang for row in blind for lang in row["unread_languages"]})
        shown = ", ".join(display_language(lang) for lang in languages[:6])
        more = f" and {len(languages) - 6} more" if len(languages) > 6 else ""
        line += (
            f"\n{len(blind)} of {len(coverage)} analyser tools do not read some of the code "
            f"here ({shown}{more}); their findings leave it out (see Coverage in the report)"
        )
    if cached == total:
        line += "\nall agents were served from cache: nothing changed since the last run"
    elif cached:
        line += f"\n{cached} of {total} agents were served from cache (their inputs did not change)"
    return line


# -- schema --------------------------------------------------------------------------
def schema(
    which: Annotated[str, typer.Argument(help="agent, workflow, or all.")] = "all",
) -> None:
    """Print the JSON Schema of agent and/or workflow manifests."""
    from agentrt.agents.manifest import AgentManifest
    from agentrt.flows.workflow import WorkflowManifest

    schemas = {
        "agent": AgentManifest.model_json_schema(),
        "workflow": WorkflowManifest.model_json_schema(),
    }
    if which == "all":
        print_json(schemas)
    elif which in schemas:
        print_json(schemas[which])
    else:
        raise fail(f"unknown schema {which!r}; use agent, workflow or all", ExitCode.BAD_INPUT)
