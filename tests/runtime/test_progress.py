"""The end-of-run summary table (``agentrt run``) in narrow and wide terminals."""

from __future__ import annotations

from rich.console import Console

from agentrt.flows.progress import render_summary
from agentrt.flows.results import StepResult
from tests.metrics.builders import run_result

NOTE = "ConnectionError after 3 tries"
NOTED = f"{NOTE}; answered by documentation_basic@1.0.0"


def _result() -> object:
    return run_result([
        StepResult(step="docs", agent="documentation_generation@1.0.0", state="fallback",
                   attempts=3, duration_seconds=4.2, tokens_allocated=8000, reason=NOTE,
                   used_agent="documentation_basic@1.0.0"),
        StepResult(step="review", agent="code_review@1.0.0", state="completed", attempts=1,
                   duration_seconds=1.7, tokens_allocated=7611),
    ])  # fmt: skip


def _render(width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(render_summary(_result()))  # type: ignore[arg-type]
    return console.export_text()


def test_a_wide_terminal_shows_the_notes_in_the_table() -> None:
    text = _render(200)
    row = next(line for line in text.splitlines() if "documentation_generation@1.0.0" in line)
    # The step's own agent, and in its note which fallback answered; not the grant its own
    # agent would have had (8,000), which the fallback never asked for.
    assert NOTED in row and "fallback" in row and "8,000" not in row
    assert row.startswith("│ documentation_generation@1.0.0 ")
    review = next(line for line in text.splitlines() if "code_review@1.0.0" in line)
    assert "7,611" in review  # its grant: it did not say what it delivered


def test_a_narrow_terminal_shows_the_notes_below_whole_names() -> None:
    text = _render(80)
    lines = text.splitlines()
    assert "…" not in text and max(map(len, lines)) <= 80
    row = next(line for line in lines if line.startswith("│ documentation_generation@1.0.0 "))
    assert "fallback" in row and NOTE not in row
    # The note, whole, on lines of its own after the table (wrapped at the width).
    after = " ".join(lines[lines.index(next(x for x in lines if x.startswith("└"))) + 1 :])
    assert " ".join(f"documentation_generation@1.0.0: {NOTED}".split()) in " ".join(after.split())
    assert "code_review@1.0.0:" not in after  # no note, no line
