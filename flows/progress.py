"""Live progress of a workflow run in the terminal (rich), and the end-of-run summary."""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.live import Live
from rich.table import Table
from rich.text import Text

from agentrt.flows.results import RunResult, StepResult

__all__ = ["LiveProgress", "RunSummary", "render_summary"]

STYLE = {
    "pending": "dim",
    "running": "yellow",
    "completed": "green",
    "cached": "cyan",
    "fallback": "magenta",
    "failed": "bold red",
    "skipped": "dim yellow",
}


class LiveProgress:
    """A table of agents (pending/running/done/failed/skipped) refreshed while the run goes."""

    def __init__(
        self, console: Console, title: str, levels: list[list[str]], agents: dict[str, str]
    ):
        self.console = console
        self.title = title
        self.levels = levels
        self.agents = agents
        self.states: dict[str, str] = dict.fromkeys(agents, "pending")
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.notes: dict[str, str] = {}
        self.t0 = time.perf_counter()
        self._lock = threading.Lock()
        self._live: Live | None = None

    def on_step(self, step: str, state: str, result: StepResult | None = None) -> None:
        with self._lock:
            self.states[step] = state
            now = time.perf_counter()
            if state == "running":
                # Chunked steps report again as their chunks finish ("chunk 2 of 5 done").
                self.started.setdefault(step, now)
                if result is not None and result.reason:
                    self.notes[step] = result.reason
            elif state != "pending":
                self.ended[step] = now
                if result is not None and result.note and state != "completed":
                    self.notes[step] = result.note
        if self._live is not None:
            self._live.update(self.render())

    def render(self) -> Any:
        table = Table(title=self.title, expand=False, title_justify="left")
        table.add_column("level", justify="right", style="dim")
        table.add_column("agent", no_wrap=True)
        table.add_column("state", no_wrap=True)
        table.add_column("time", justify="right")
        table.add_column("note", overflow="fold", max_width=60)
        now = time.perf_counter()
        for level, steps in enumerate(self.levels):
            for sid in steps:
                state = self.states.get(sid, "pending")
                begin = self.started.get(sid)
                end = self.ended.get(sid, now if state == "running" else None)
                took = f"{end - begin:.1f}s" if begin is not None and end is not None else ""
                table.add_row(
                    str(level),
                    self.agents[sid],
                    Text(state, STYLE.get(state, "")),
                    took,
                    self.notes.get(sid, ""),
                )
        counts: dict[str, int] = {}
        for state in self.states.values():
            counts[state] = counts.get(state, 0) + 1
        line = "  ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        return Group(table, Text(f"{line}   elapsed {now - self.t0:.1f}s", style="dim"))

    def __enter__(self) -> LiveProgress:
        self._live = Live(
            self.render(), console=self.console, refresh_per_second=8, transient=False
        )
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.__exit__(*exc)
            self._live = None


def render_summary(result: RunResult) -> RunSummary:
    """The end-of-run table: each agent's state, tries, time, tokens and note."""
    return RunSummary(result)


class RunSummary:
    """The end-of-run table; where it is wider than the terminal, the notes come as lines
    below it (rich would squeeze them, and the agents' names, into a few letters a row)."""

    def __init__(self, result: RunResult) -> None:
        self.result = result

    def table(self, notes: bool = True) -> Table:
        result = self.result
        table = Table(
            title=f"{result.workflow}: {result.outcome} in {result.duration_seconds:.1f}s"
        )
        table.add_column("agent", no_wrap=True)
        table.add_column("state", no_wrap=True)
        table.add_column("tries", justify="right")
        table.add_column("time", justify="right")
        table.add_column("tokens", justify="right")
        if notes:
            table.add_column("note", overflow="fold")
        for step in result.steps.values():
            # What it delivered; its grant when it did not say (0: it said it delivered none)
            # and it is the agent the grant was for, not a fallback.
            tokens = step.tokens_delivered
            if tokens is None and not _fallback(step):
                tokens = step.tokens_allocated
            table.add_row(
                step.agent,
                Text(step.state, STYLE.get(step.state, "")),
                str(step.attempts),
                f"{step.duration_seconds:.1f}s",
                f"{tokens:,}" if tokens else "",
                *([_note(step)] if notes else []),
            )
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        whole = self.table()
        natural = console.measure(whole, options=options.update_width(10_000)).maximum
        if natural <= options.max_width:
            yield whole
            return
        yield self.table(notes=False)
        for step in self.result.steps.values():
            if note := _note(step):
                yield Text(f"{step.agent}: {note}")


def _fallback(step: StepResult) -> str | None:
    """The fallback agent that answered for ``step``, if another than its own."""
    return step.used_agent if step.used_agent and step.used_agent != step.agent else None


def _note(step: StepResult) -> str:
    """``no model configured; answered by analysis_summary_basic@1.0.0``: the step's note,
    and which fallback answered (the row names the step's own agent, as the live table)."""
    fallback = _fallback(step)
    return "; ".join(p for p in (step.note, fallback and f"answered by {fallback}") if p)
