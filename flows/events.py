"""Repository events for event-triggered deployments (sent by ``agentrt events push``).

A git hook (or CI job) announces new commits with::

    agentrt events push --repo /srv/checkouts/myproject --rev "$newrev" --since "$oldrev"

which emits the Prefect event ``agentrt.repo.pushed`` with the payload ``repo`` (absolute
path), ``rev`` and ``since`` (both resolved to commit ids when the repository is a git work
tree). The ``review-on-push`` deployment in ``prefect.yaml`` has a trigger on that event
that starts the ``review-chain`` workflow with ``params = {repo, since}`` taken from the
payload, so only the files changed by the push are reviewed.

The command is :mod:`agentrt.cli.events`. Importing this module is cheap: Prefect is imported
only when an event is actually sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agentrt.context.git import git_stdout
from agentrt.errors import AgentrtError

__all__ = [
    "EVENT_PUSHED",
    "EventError",
    "PushEvent",
    "emit",
    "push_event",
]

EVENT_PUSHED = "agentrt.repo.pushed"
# What git passes a post-receive hook as the old revision of a newly created ref.
_NULL_REV = "0" * 40


class EventError(AgentrtError):
    """The event could not be built (``bad_input``) or delivered."""

    def __init__(self, message: str, *, bad_input: bool = False) -> None:
        super().__init__(message)
        self.bad_input = bad_input


@dataclass(frozen=True)
class PushEvent:
    """The ``agentrt.repo.pushed`` event as plain data (no Prefect needed to build it)."""

    repo: str
    rev: str
    since: str
    name: str = EVENT_PUSHED
    resource: dict[str, str] = field(default_factory=dict)

    @property
    def payload(self) -> dict[str, str]:
        return {"repo": self.repo, "since": self.since, "rev": self.rev}


def _git(repo: Path, *args: str) -> str | None:
    """``git -C repo ARGS`` stdout, or None when git fails or is not installed."""
    return git_stdout(repo, *args, timeout=30)


def _commit(repo: Path, rev: str, what: str) -> str:
    if rev.startswith("-"):  # never let a revision be read as a git option
        raise EventError(f"{what} {rev!r} is not a git revision", bad_input=True)
    commit = _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if commit is None:
        raise EventError(
            f"{what} {rev!r} is not a commit in {repo}; pass a commit, branch or tag that "
            "exists there (see `git log --oneline`)",
            bad_input=True,
        )
    return commit


def push_event(repo: str | Path, rev: str, since: str | None = None) -> PushEvent:
    """Build the push event for ``repo`` at ``rev``.

    In a git work tree, ``rev`` and ``since`` are resolved to commit ids (so the event
    still means the same thing after the branch moves). ``since`` defaults to the parent of
    ``rev``; git's all-zero "no previous revision" (a new branch) and a root commit mean
    "review the whole repository" (``since = ""``). Outside git, both are passed as given.
    """
    path = Path(repo).expanduser().resolve()
    if not path.is_dir():
        raise EventError(f"--repo {repo}: no such directory", bad_input=True)
    if not rev.strip():
        raise EventError("--rev must not be empty", bad_input=True)
    in_git = _git(path, "rev-parse", "--is-inside-work-tree") == "true"
    if since is not None and set(since) == {"0"}:
        since = ""
    if in_git:
        rev = _commit(path, rev, "--rev")
        if since is None:
            since = _git(path, "rev-parse", "--verify", "--quiet", f"{rev}^") or ""
        elif since:
            since = _commit(path, since, "--since")
    resource = {
        "prefect.resource.id": f"agentrt.repo.{path.name or 'root'}",
        "prefect.resource.name": path.name or str(path),
        "agentrt.repo.path": str(path),
    }
    return PushEvent(repo=str(path), rev=rev, since=since or "", resource=resource)


async def emit(event: PushEvent) -> str:
    """Send ``event`` to the Prefect server of ``PREFECT_API_URL``; return the event id.

    Unlike :func:`prefect.events.emit_event` (which queues the event in a background
    worker and only logs delivery errors), this fails loudly when the server is not there,
    which is what a git hook or CI step needs to know.
    """
    from prefect.client.orchestration import get_client
    from prefect.events import Event
    from prefect.events.clients import PrefectEventsClient
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    if not api_url:
        raise EventError(
            "no Prefect server configured: set PREFECT_API_URL to the server's API, e.g. "
            "PREFECT_API_URL=http://127.0.0.1:4200/api after `make server`, or start the "
            "local server (`agentrt server start`)",
            bad_input=True,
        )
    async with get_client() as client:
        problem = await client.api_healthcheck()
    if problem is not None:
        raise EventError(
            f"the Prefect server at {api_url} is not reachable ({type(problem).__name__}: "
            f"{problem}); start it with `make server` or fix PREFECT_API_URL"
        )
    prefect_event = Event(event=event.name, resource=event.resource, payload=event.payload)
    # The websocket client sends in order and closes cleanly on exit, so the event has
    # reached the server when the block ends.
    async with PrefectEventsClient(api_url=api_url, reconnection_attempts=2) as events:
        await events.emit(prefect_event)
    return str(prefect_event.id)
