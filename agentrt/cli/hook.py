"""``agentrt hook``: the Claude Code hook on the command line (:mod:`agentrt.claude.hook`).

Claude Code runs ``agentrt hook`` before and after every subagent; that bare call (no
arguments) is served without building the typer CLI (:func:`main`), and ``agentrt`` itself
sends it here before importing anything else (:func:`agentrt.cli.main`). ``agentrt hook
install`` registers the hook in a project (:mod:`agentrt.claude.install`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from agentrt.claude.hook import CHUNK_ENV, OUTPUT_ENV, TOTAL_ENV, run_hook

if TYPE_CHECKING:
    import typer

    from agentrt.claude.repo_context import RepoSettings

    app: typer.Typer  # built on first access, see __getattr__

__all__ = ["app", "main"]


def _serve_stdin(
    output: str | None,
    total_tokens: int | None,
    chunk_tokens: int | None,
    repo_settings: RepoSettings | None = None,
) -> int:
    """Read one event from stdin, handle it, write stdout/stderr; return the exit code."""
    if sys.stdin is None or sys.stdin.isatty():
        sys.stderr.write(
            "agentrt hook: expects a Claude Code hook event as JSON on stdin; "
            "register it with `agentrt hook install`\n"
        )
        return 0
    data = sys.stdin.buffer.read().decode("utf-8", errors="replace")
    outcome = run_hook(
        data,
        output=output,
        total_tokens=total_tokens,
        chunk_tokens=chunk_tokens,
        repo_settings=repo_settings,
    )
    if outcome.stdout:
        sys.stdout.write(outcome.stdout + "\n")
    for message in outcome.messages:
        sys.stderr.write(f"agentrt hook: {message}\n")
    return outcome.exit_code


_HELP = (
    "Claude Code hook: hands Task/Agent subagents the parent session's context, condensed to a "
    "token budget (cc-sessions compatible). Without a subcommand, reads one hook event as JSON "
    "on stdin."
)


def _build_app() -> typer.Typer:
    """The typer app (``agentrt hook`` and ``agentrt hook install``).

    Built on first access of :data:`app`, so the bare hook process, which never needs it, does
    not pay typer's import.
    """
    # The commands' annotations name ``typer``; typer resolves them in this module's globals.
    global typer
    import typer

    from agentrt.claude.install import HOOK_COMMAND, InstallError, install_hooks
    from agentrt.claude.repo_context import RepoSettings
    from agentrt.cli.output import ExitCode, fail, print_json

    app = typer.Typer(name="hook", invoke_without_command=True, add_completion=False, help=_HELP)

    @app.callback()
    def hook(
        ctx: typer.Context,
        output: Annotated[
            str | None,
            typer.Option(
                "--output",
                envvar=OUTPUT_ENV,
                help="Folder for the chunk files (default: <project>/sessions/transcripts).",
            ),
        ] = None,
        total_tokens: Annotated[
            int | None,
            typer.Option("--total-tokens", envvar=TOTAL_ENV, min=200, help="Token budget in all."),
        ] = None,
        chunk_tokens: Annotated[
            int | None,
            typer.Option("--chunk-tokens", envvar=CHUNK_ENV, min=100, help="Token limit per file."),
        ] = None,
        repo_context: Annotated[
            bool | None,
            typer.Option(
                "--repo-context/--no-repo-context",
                help="Add repository context for the subagent's task (default on; "
                "AGENTRT_HOOK_REPO_CONTEXT).",
                show_default=False,
            ),
        ] = None,
        repo_share: Annotated[
            float | None,
            typer.Option(
                "--repo-share",
                min=0.0,
                max=0.9,
                help="Share of the budget kept for repository context (default 0.3; "
                "AGENTRT_HOOK_REPO_SHARE).",
            ),
        ] = None,
        repo_seconds: Annotated[
            float | None,
            typer.Option(
                "--repo-seconds",
                min=0.0,
                help="Time limit in seconds of the repository selection (default 5; "
                "AGENTRT_HOOK_REPO_SECONDS).",
            ),
        ] = None,
    ) -> None:
        """Handle one Claude Code hook event read from stdin (exit code 0, whatever happens)."""
        if ctx.invoked_subcommand is not None:
            return
        settings = None
        if (repo_context, repo_share, repo_seconds) != (None, None, None):
            messages: list[str] = []
            settings = RepoSettings.from_env(os.environ, messages)
            settings = RepoSettings(
                enabled=settings.enabled if repo_context is None else repo_context,
                share=settings.share if repo_share is None else repo_share,
                seconds=settings.seconds if repo_seconds is None else repo_seconds,
            )
            settings = replace(settings, enabled=settings.enabled and settings.share > 0)
        raise typer.Exit(_serve_stdin(output, total_tokens, chunk_tokens, settings))

    @app.command()
    def install(
        project: Annotated[
            Path,
            typer.Option("--project", help="Project whose .claude/settings.json to update."),
        ] = Path("."),
        command: Annotated[
            str, typer.Option("--command", help="Command Claude Code runs for the hook.")
        ] = HOOK_COMMAND,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print what was done as JSON.")
        ] = False,
    ) -> None:
        """Register the hook (PreToolUse and PostToolUse, matcher Task|Agent) in the project."""
        try:
            report = install_hooks(project.resolve(), command)
        except (InstallError, OSError) as exc:
            raise fail(str(exc), ExitCode.FAILURE) from None
        if as_json:
            print_json(report)
        elif report["changed"]:
            events = ", ".join(a["event"] for a in report["added"])
            backup = f" (previous file saved to {report['backup']})" if report["backup"] else ""
            typer.echo(f"Added {events} hooks to {report['settings']}{backup}.")
        else:
            typer.echo(f"Hooks already installed in {report['settings']}; nothing changed.")

    return app


def __getattr__(name: str) -> Any:
    """``app`` is built lazily (see :func:`_build_app`)."""
    if name == "app":
        built = globals()["app"] = _build_app()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> None:
    """Entry point. The bare hook call (no arguments: how Claude Code runs it) is served
    without building the typer CLI and exits without tearing the interpreter down, which
    saves a tenth of a second on every subagent start; anything else goes to :data:`app`."""
    args = sys.argv[1:] if argv is None else argv
    if args:
        __getattr__("app")(args)
        return
    code = _serve_stdin(None, None, None)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the parsed transcript needs no orderly teardown


if __name__ == "__main__":
    main()
