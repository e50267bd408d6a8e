"""The end-of-run summary table (``agentrt run``) in narrow and wide terminals."""

from __future__ import annotations

from rich.console import Console

from agentrt.flows.progress import render_summary
from agentrt.flows.results import StepResult
from tests.metrics.builders import run_result

NOTE = "ConnectionError after 3 tries; the fallback documentation_basic answered instead"


def _result() -> object:
    return run_result([
        StepResult(step="docs", agent="documentation_generation@1.0.0", state="fallback",
                   attempts=3, duration_seconds=4.2, tokens_delivered=7611, reason=NOTE),
        StepResult(step="review", agent="code_review@1.0.0", state="completed", attempts=1,
                   duration_seconds=1.7, tokens_delivered=7611),
    ])  # fmt: skip


def _render(width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(render_summary(_result()))  # type: ignore[arg-type]
    return console.export_text()


def test_a_wide_terminal_shows_the_notes_in_the_table() -> None:
    text = _render(200)
    row = next(line for line in text.splitlines() if "documentation_generation@1.0.0" in line)
    assert NOTE in row and "fallback" in row and "7,611" in row


def test_a_narrow_terminal_shows_the_notes_below_whole_names() -> None:
    text = _render(80)
    lines = text.splitlines()
    assert "…" not in text and max(map(len, lines)) <= 80
    row = next(line for line in lines if line.startswith("│ documentation_generation@1.0.0 "))
    assert "fallback" in row and "7,611" in row and NOTE not in row
    # The note, whole, on lines of its own after the table (wrapped at the width).
    after = " ".join(lines[lines.index(next(x for x in lines if x.startswith("└"))) + 1 :])
    assert " ".join(f"documentation_generation@1.0.0: {NOTE}".split()) in " ".join(after.split())
    assert "code_review@1.0.0:" not in after  # no note, no line
