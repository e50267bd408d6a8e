"""Tests for agentrt.context.compress: structure, skeletons, line rendering, chunking."""

from __future__ import annotations

import ast
import inspect
import json
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrt.context import compress
from agentrt.context.compress import analyze, chunks, render_lines, skeleton, split_lines
from agentrt.context.tokens import count_tokens

SAMPLE = textwrap.dedent(
    '''\
    """Module docstring.

    More details that a skeleton leaves out.
    """

    import os
    from typing import Any

    LIMIT = 10


    @decorator(
        option=True,
    )
    def top(a: int,
            b: str = "x") -> str:
        """Return something.

        Long explanation.
        """
        value = a * 2
        return f"{b}{value}"


    class Thing(Base):
        """A thing."""

        size: int = 3

        def method(self) -> None:
            inner = 1
            print(inner)

        @property
        def prop(self) -> int:
            return self.size
    '''
)


def test_split_lines_counts_only_newlines() -> None:
    assert split_lines("a\fb\nc") == ["a\fb\n", "c"]
    assert split_lines("a\r\nb\n") == ["a\r\n", "b\n"]
    assert split_lines("") == []
    text = "x = 1\n\x0c\ny = 2\n"
    assert "".join(split_lines(text)) == text


def test_python_units_have_exact_line_ranges() -> None:
    structure = analyze("m.py", SAMPLE)
    lines = split_lines(SAMPLE)
    units = {u.name: u for u in structure.units}
    top = units["top"]
    assert lines[top.start_line - 1].startswith("@decorator(")
    assert lines[top.end_line - 1].strip() == 'return f"{b}{value}"'
    method = units["Thing.method"]
    assert method.kind == "method"
    assert lines[method.start_line - 1].strip() == "def method(self) -> None:"
    assert lines[method.end_line - 1].strip() == "print(inner)"
    prop = units["Thing.prop"]
    assert lines[prop.start_line - 1].strip() == "@property"
    cls = units["Thing"]
    assert cls.kind == "class" and cls.end_line < method.start_line
    assert structure.definitions[:2] == ["top", "Thing"]
    assert {"os", "typing", "typing.Any"} <= set(structure.imports)
    assert any(u.kind == "block" for u in structure.units)  # imports and LIMIT


def test_skeleton_keeps_signatures_and_elides_bodies() -> None:
    text = skeleton(SAMPLE, path="m.py")
    assert '"""Module docstring.' in text
    assert "More details" not in text
    assert "import os\n" in text and "LIMIT = 10\n" in text
    signature = '@decorator(\n    option=True,\n)\ndef top(a: int,\n        b: str = "x") -> str:\n'
    assert signature in text
    assert '"""Return something.' in text and "Long explanation" not in text
    assert "value = a * 2" not in text
    assert "class Thing(Base):" in text and "size: int = 3" in text
    assert "    def method(self) -> None:\n        ...  # lines" in text
    assert "    @property\n    def prop(self) -> int:" in text
    assert "print(inner)" not in text
    # Every line is either verbatim from the file or an elision marker with line numbers.
    original = set(split_lines(SAMPLE))
    for line in split_lines(text):
        assert line in original or "elided" in line


def test_skeleton_markers_name_the_hidden_lines() -> None:
    lines = split_lines(SAMPLE)
    text = skeleton(SAMPLE, path="m.py")
    for line in split_lines(text):
        if "elided" in line:
            start, end = (int(x) for x in line.split("# lines ")[1].split()[0].split("-"))
            hidden = lines[start - 1 : end]
            assert hidden and all(h not in ("",) for h in hidden)
            assert hidden[0].strip()  # a marker starts at real content


def test_skeleton_of_real_module_is_smaller_and_keeps_every_signature() -> None:
    source = inspect.getsource(json.decoder)
    structure = analyze("json/decoder.py", source)
    text = skeleton(source, structure)
    assert count_tokens(text) < count_tokens(source) / 2
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            header = split_lines(source)[node.lineno - 1]
            assert header in text, header


def test_non_python_text_gets_windows_and_headings() -> None:
    text = "# Title\n\nintro\n" + "".join(f"line {i}\n" for i in range(100)) + "## Part 2\nend\n"
    structure = analyze("README.md", text)
    assert all(u.kind == "window" for u in structure.units)
    assert structure.units[0].start_line == 1
    assert structure.units[-1].end_line == structure.n_lines
    sk = skeleton(text, structure, "README.md")
    assert "# Title\n" in sk and "## Part 2\n" in sk and "line 50\n" not in sk


def test_unparsable_python_falls_back_to_windows() -> None:
    structure = analyze("bad.py", "def broken(:\n    pass\n")
    assert not structure.parsed
    assert [u.kind for u in structure.units] == ["window"]


def test_render_lines_blank_runs_stay_and_content_runs_collapse() -> None:
    lines = ["a\n", "\n", "b\n", "c\n", "d\n"]
    assert render_lines(lines, [(1, 1), (3, 3)]) == "a\n\nb\n...  # lines 4-5 elided\n"
    assert render_lines(lines, []) == "...  # lines 1-5 elided\n"


def test_long_functions_also_get_windows() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(compress.LONG_UNIT_LINES + 20))
    structure = analyze("long.py", "def long():\n" + body)
    kinds = [u.kind for u in structure.units]
    assert kinds[0] == "function" and kinds.count("window") >= 3


# --------------------------------------------------------------------------- chunks


def test_chunks_prefers_blank_lines_and_definitions() -> None:
    pieces = list(chunks(SAMPLE, 40))
    assert "".join(pieces) == SAMPLE
    assert all(count_tokens(p) <= 40 for p in pieces)
    for piece in pieces[:-1]:
        assert piece.endswith("\n")  # pieces end at line ends...
        assert not piece.rstrip().endswith(")\n") or "@decorator" not in piece.splitlines()[-1]
    # ...and a decorator stays with its definition.
    assert not any(p.rstrip().endswith("option=True,\n)") for p in pieces)


def test_chunks_huge_single_line() -> None:
    line = "word " * 20_000 + "é" * 3_000 + "x" * 50_000
    pieces = list(chunks(line, 100))
    assert "".join(pieces) == line
    assert all(count_tokens(p) <= 100 for p in pieces)
    assert len(pieces) > 100


def test_chunks_edge_cases() -> None:
    assert list(chunks("", 10)) == []
    with pytest.raises(ValueError, match="positive"):
        list(chunks("x", 0))
    assert list(chunks("short\n", 1000)) == ["short\n"]


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=400), st.integers(min_value=1, max_value=30))
def test_chunks_property(text: str, limit: int) -> None:
    pieces = list(chunks(text, limit))
    assert "".join(pieces) == text
    for piece in pieces:
        # One character may need more tokens than a tiny limit allows; nothing else may.
        assert count_tokens(piece) <= limit or len(piece) == 1


@pytest.mark.parametrize(
    "text",
    ["\r0\n", "a = 1\rb = 2\n", "def f():\r    return 1\r\ndef g():\n    return 2\n"],
)
def test_lone_carriage_returns_do_not_shift_python_line_numbers(text: str) -> None:
    # ast ends a line at a lone \r; agentrt's lines end at \n only (split_lines).
    structure = analyze("m.py", text)
    assert structure.n_lines == len(split_lines(text))
    for unit in structure.units:
        assert 1 <= unit.start_line <= unit.end_line <= structure.n_lines, unit
    for start, end in structure.skeleton:
        assert 1 <= start <= end <= structure.n_lines
