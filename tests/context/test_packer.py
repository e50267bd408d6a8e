"""Tests for agentrt.context.packer: the budget is a hard limit, relevance decides what fits."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentrt.context.compress import analyze, split_lines
from agentrt.context.packer import Candidate, FileView, pack, render_markdown
from agentrt.context.select import line_token_counts
from agentrt.context.tokens import TokenCounter, count_tokens

COUNTER = TokenCounter()


def view(path: str, text: str) -> FileView:
    lines = split_lines(text)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return FileView(path, lines, line_token_counts(lines, COUNTER), analyze(path, text).skeleton)


def python_file(n_functions: int, body_lines: int) -> str:
    out = ['"""A module."""\n', "import os\n", "\n"]
    for i in range(n_functions):
        out.append(f"def function_{i}(x):\n")
        out.extend(f"    x = x + {j}  # step {j} of function {i}\n" for j in range(body_lines))
        out.append("    return x\n\n")
    return "".join(out)


def test_line_token_counts_add_up_to_the_file() -> None:
    text = python_file(5, 7)
    lines = split_lines(text)
    counts = line_token_counts(lines, COUNTER)
    assert counts.sum() == count_tokens(text)
    assert len(counts) == len(lines)


def test_most_relevant_span_first() -> None:
    text = python_file(20, 10)
    v = view("m.py", text)
    units = [u for u in analyze("m.py", text).units if u.kind == "function"]
    candidates = [
        Candidate("m.py", "span", 1.0 if u.name == "function_7" else 0.1, u.start_line, u.end_line)
        for u in units
    ]
    items = pack({"m.py": v}, candidates, 300, COUNTER.count)
    assert items, "something fits"
    assert any("def function_7(" in item.text for item in items)
    assert count_tokens(render_markdown(items)) <= 300


def test_skeleton_and_spans_of_one_file_merge_into_one_item() -> None:
    text = python_file(10, 5)
    v = view("m.py", text)
    unit = next(u for u in analyze("m.py", text).units if u.name == "function_3")
    candidates = [
        Candidate("m.py", "skeleton", 0.9),
        Candidate("m.py", "span", 1.0, unit.start_line, unit.end_line),
    ]
    items = pack({"m.py": v}, candidates, 10_000, COUNTER.count)
    assert [i.kind for i in items] == ["skeleton"]
    assert "    x = x + 4  # step 4 of function 3\n" in items[0].text  # the span, in full
    assert "step 4 of function 2" not in items[0].text  # other bodies elided
    assert "def function_2(x):\n    ...  # lines" in items[0].text


def test_whole_small_file() -> None:
    text = python_file(2, 2)
    items = pack(
        {"m.py": view("m.py", text)}, [Candidate("m.py", "file", 1.0)], 1000, COUNTER.count
    )
    assert len(items) == 1 and items[0].kind == "file" and items[0].text == text
    assert (items[0].start_line, items[0].end_line) == (1, len(split_lines(text)))


def test_nothing_fits() -> None:
    text = python_file(1, 200)
    items = pack({"m.py": view("m.py", text)}, [Candidate("m.py", "file", 1.0)], 20, COUNTER.count)
    assert items == []


def test_adjacent_spans_merge() -> None:
    text = python_file(4, 3)
    units = [u for u in analyze("m.py", text).units if u.kind == "function"]
    candidates = [Candidate("m.py", "span", 1.0, u.start_line, u.end_line) for u in units[:2]]
    items = pack({"m.py": view("m.py", text)}, candidates, 1000, COUNTER.count)
    assert len(items) == 1
    assert items[0].start_line == units[0].start_line and items[0].end_line == units[1].end_line


def test_spans_a_few_lines_apart_come_with_the_lines_between() -> None:
    # A fix often touches the lines between two delivered units (a declaration, the end of
    # one and the start of the next): eight lines apart, the spans are one item, gap included.
    text = "".join(f"line_{i} = compute({i}, step={i * 7})\n" for i in range(1, 41))
    candidates = [Candidate("m.py", "span", 1.0, 1, 10), Candidate("m.py", "span", 1.0, 19, 28)]
    items = pack({"m.py": view("m.py", text)}, candidates, 1000, COUNTER.count)
    assert [(i.start_line, i.end_line) for i in items] == [(1, 28)]
    assert "line_14 = compute(14" in items[0].text


_line = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=60
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    files=st.lists(st.lists(_line, min_size=1, max_size=40), min_size=1, max_size=4),
    budget=st.integers(min_value=1, max_value=600),
    data=st.data(),
)
def test_rendered_tokens_never_exceed_budget(files: list[list[str]], budget: int, data) -> None:
    views = {}
    candidates = []
    for i, lines in enumerate(files):
        path = f"dir/file_{i}.py"
        text = "\n".join(lines) + "\n"
        views[path] = view(path, text)
        n = len(split_lines(text))
        candidates.append(Candidate(path, "file", data.draw(st.floats(0.01, 1.0))))
        candidates.append(Candidate(path, "skeleton", data.draw(st.floats(0.01, 1.0))))
        for _ in range(3):
            start = data.draw(st.integers(1, n))
            end = data.draw(st.integers(start, n))
            candidates.append(Candidate(path, "span", data.draw(st.floats(0.01, 1.0)), start, end))
    items = pack(views, candidates, budget, COUNTER.count)
    assert count_tokens(render_markdown(items)) <= budget
    assert count_tokens("".join(i.text for i in items)) <= budget
    assert sum(count_tokens(i.text) for i in items) <= budget
    for item in items:  # spans and files are verbatim slices of their file
        if item.kind in ("span", "file"):
            original = "".join(views[item.path].lines[item.start_line - 1 : item.end_line])
            assert item.text == original


def test_line_token_counts_empty() -> None:
    assert line_token_counts([], COUNTER).shape == (0,)
    assert isinstance(line_token_counts(["a\n"], COUNTER), np.ndarray)


def test_first_candidates_go_in_before_better_value_ones() -> None:
    """``first`` is packed in order before the greedy; the rest only once all of it fits."""
    text = python_file(20, 10)
    v = view("m.py", text)
    units = {u.name: u for u in analyze("m.py", text).units if u.kind == "function"}
    big = units["function_3"]
    # Cheap and more relevant per token than the big span: the greedy alone prefers them.
    cheap = [Candidate("m.py", "span", 1.0, u.start_line, u.start_line) for u in units.values()]
    hunk = Candidate("m.py", "span", 0.2, big.start_line, big.end_line)
    budget = count_tokens(render_markdown(pack({"m.py": v}, [hunk], 10_000, COUNTER.count))) + 30
    alone = pack({"m.py": v}, [*cheap, hunk], budget, COUNTER.count)
    assert not any("step 9 of function 3" in item.text for item in alone)
    items = pack({"m.py": v}, cheap, budget, COUNTER.count, first=[hunk])
    assert any("step 9 of function 3" in item.text for item in items)
    assert count_tokens(render_markdown(items)) <= budget
    # First candidates that do not all fit: nothing else is added.
    half = Candidate(
        "m.py", "span", 0.2, units["function_9"].start_line, units["function_9"].end_line
    )
    items = pack({"m.py": v}, cheap, budget, COUNTER.count, first=[hunk, half])
    assert all(item.start_line >= big.start_line for item in items)
    assert not any("def function_9(" in item.text for item in items)
