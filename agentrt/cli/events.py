"""``agentrt events``: send agentrt events to a Prefect server (they trigger deployments).

The events themselves are built and sent by :mod:`agentrt.flows.events`. Importing this module
is cheap (typer only); Prefect is imported only when an event is actually sent.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from agentrt.cli.output import ExitCode, fail, print_json
from agentrt.flows.events import EventError, emit, push_event

app = typer.Typer(
    name="events",
    help="Send agentrt events to a Prefect server (they trigger deployments).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _events() -> None:
    """Send agentrt events to a Prefect server (they trigger deployments)."""
    # A callback keeps `events` a command group (`events push`) even with one command.


@app.command("push")
def push(
    repo: Annotated[Path, typer.Option("--repo", help="The repository (a git work tree).")],
    rev: Annotated[str, typer.Option("--rev", help="The pushed revision (e.g. $newrev).")],
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Review changes since this revision (default: the parent of --rev; "
            "all zeros or empty: the whole repository).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the event as JSON.")] = False,
) -> None:
    """Emit agentrt.repo.pushed (payload repo, since, rev): runs the review-on-push deployment.

    Sent to PREFECT_API_URL, else to the local server if it runs
    (`agentrt server status`).

    Exit codes: 0 sent; 1 the server could not be reached; 2 bad input.
    """
    from agentrt.flows.local_server import configured_api_url, running_server

    if not configured_api_url() and (server := running_server()) is not None:
        os.environ["PREFECT_API_URL"] = server.api_url  # the local server (make deploy's)
    try:
        event = push_event(repo, rev, since)
        event_id = asyncio.run(emit(event))
    except EventError as exc:
        raise fail(str(exc), ExitCode.BAD_INPUT if exc.bad_input else ExitCode.FAILURE) from None
    except (OSError, RuntimeError) as exc:  # websocket/HTTP failures after the health check
        raise fail(
            f"the event was not sent: {type(exc).__name__}: {exc}", ExitCode.FAILURE
        ) from None
    data: dict[str, Any] = {"id": event_id, "event": event.name, "payload": event.payload}
    if as_json:
        print_json(data)
    else:
        since_text = event.since[:12] or "the beginning (whole repository)"
        typer.echo(
            f"sent {event.name} {event_id}: {event.repo} at {event.rev[:12]} since {since_text}"
        )
