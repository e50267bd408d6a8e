"""``agentrt server``: the local Prefect server agentrt manages (start, stop, status).

The server itself is :mod:`agentrt.flows.local_server`. None of these commands imports
Prefect: the health check is one HTTP request.

Exit codes: 0 ok (``status``: the server is running); 1 the server could not be started or
stopped (``status``: it is not running); 2 bad input (an ``AGENTRT_SERVER*`` variable).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from agentrt.cli.output import ExitCode, fail, print_json
from agentrt.flows.local_server import (
    LocalServerError,
    ServerSettingError,
    ServerStatus,
    ensure_server,
    idle_minutes,
    server_mode,
    status,
    stop_server,
)

app = typer.Typer(
    name="server",
    help="The local Prefect server agentrt manages for `agentrt run` (start, stop, status).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the server's state as JSON.")]


def _error(exc: LocalServerError) -> typer.Exit:
    code = ExitCode.BAD_INPUT if isinstance(exc, ServerSettingError) else ExitCode.FAILURE
    return fail(str(exc), code)


def _idle_text(minutes: float) -> str:
    return "never stops when idle" if minutes <= 0 else f"stops after {minutes:g} idle minutes"


def _describe(found: ServerStatus) -> list[str]:
    data = found.to_dict()
    server = found.server
    if server is None:
        lines = [f"local Prefect server: {found.state} ({found.detail})"]
    else:
        lines = [
            f"local Prefect server: {found.state} ({found.detail})",
            f"  UI {server.url} · API {server.api_url}",
            f"  Prefect {server.prefect_version}, pid {server.pid}, started {server.started_at}",
        ]
        if found.idle_seconds is not None:
            lines.append(
                f"  idle for {found.idle_seconds / 60:.1f} min; {_idle_text(server.idle_minutes)}"
            )
        lines.append(f"  data: {server.prefect_home} · log: {server.log}")
    lines.append(f"  runs use: {data['runs_use']}")
    return lines


@app.command("status")
def status_command(as_json: JsonFlag = False) -> None:
    """Whether the local server runs: its URLs, Prefect version, pid and idle time.

    Exit codes: 0 running; 1 not running (stopped, stale, another Prefect
    version, not answering); 2 bad input.
    """
    try:
        found = status()
        data: dict[str, Any] = found.to_dict()
    except LocalServerError as exc:
        raise _error(exc) from None
    if as_json:
        print_json(data)
    else:
        typer.echo("\n".join(_describe(found)))
    raise typer.Exit(ExitCode.OK if found.state == "running" else ExitCode.FAILURE)


@app.command("start")
def start_command(
    as_json: JsonFlag = False,
    api_url: Annotated[
        bool,
        typer.Option("--api-url", help="Print only the API URL (for PREFECT_API_URL=$(…))."),
    ] = False,
) -> None:
    """Start the local server (or find the running one) and say where it is.

    `agentrt run` starts it by itself when it needs it; this is for the UI,
    workers and scripts.

    Exit codes: 0 running; 1 it could not be started; 2 bad input.
    """
    try:
        server_mode()
        idle_minutes()
        server = ensure_server(lambda line: typer.echo(line, err=True))
        found = status()
    except LocalServerError as exc:
        raise _error(exc) from None
    if api_url:
        typer.echo(server.api_url)
    elif as_json:
        print_json(found.to_dict())
    else:
        typer.echo("\n".join(_describe(found)))


@app.command("stop")
def stop_command(as_json: JsonFlag = False) -> None:
    """Stop the local server (its data stays).

    Exit codes: 0 stopped, or it was not running; 1 it could not be stopped.
    """
    try:
        found = stop_server()
    except LocalServerError as exc:
        raise _error(exc) from None
    server = found.server
    if as_json:
        print_json({"stopped": found.state != "stale" and server is not None, **found.to_dict()})
    elif server is None:
        typer.echo("no local Prefect server was running")
    elif found.state == "stale":
        typer.echo(
            f"no local Prefect server was running (removed a stale state file: {found.detail})"
        )
    else:
        typer.echo(f"stopped the local Prefect server on {server.url} (pid {server.pid})")
