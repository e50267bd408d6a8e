"""agentrt.context.references: which names each line uses, and what imports bind."""

from __future__ import annotations

from agentrt.context.references import (
    EXTRACTORS,
    Binding,
    FileReferences,
    Ref,
    file_references,
    python_references,
    register_extractor,
)

SOURCE = """\
import os.path
import pkg.utils as u
from . import sibling
from ..base import Header as H, parse
from star import *

LIMIT: int = 10
A, B = 1, 2


class Sub(H):
    def run(self, line):
        value = parse(line)
        self.check(value)
        super().run(line)
        return u.parse_header(os.path.join("a", line))
"""


def test_python_references_kinds_receivers_and_lines() -> None:
    refs = python_references("m.py", SOURCE)
    assert refs is not None
    got = set(refs.refs)
    assert Ref("H", 11, "name") in got  # a base class
    assert Ref("parse", 13, "call") in got
    assert Ref("check", 14, "attr_call", "self") in got
    assert Ref("run", 15, "attr_call", "super()") in got
    assert Ref("parse_header", 16, "attr_call", "u") in got
    assert Ref("join", 16, "attr_call", "os.path") in got
    assert Ref("path", 16, "attr", "os") in got
    assert not any(r.name == "value" and r.line == 13 for r in got)  # a store, not a use
    assert Ref("value", 14, "name") in got


def test_python_bindings_star_imports_and_assignments() -> None:
    refs = python_references("m.py", SOURCE)
    assert refs is not None
    assert refs.bindings["os"] == Binding("os", None, 1)
    assert refs.bindings["u"] == Binding("pkg.utils", None, 2)
    assert refs.bindings["sibling"] == Binding(".", "sibling", 3)
    assert refs.bindings["H"] == Binding("..base", "Header", 4)
    assert refs.bindings["parse"] == Binding("..base", "parse", 4)
    assert refs.star_imports == ["star"]
    assert refs.assigned == [("LIMIT", 7, 7), ("A", 8, 8), ("B", 8, 8)]


def test_unparsable_or_unknown_files_have_no_references() -> None:
    assert python_references("bad.py", "def broken(:\n") is None
    assert file_references("notes.txt", "parse(x)") is None
    assert file_references("Makefile", "all:") is None


def test_other_languages_plug_in_an_extractor() -> None:
    def extractor(path: str, text: str) -> FileReferences:
        return FileReferences(refs=[Ref(word, 1, "name") for word in text.split()])

    register_extractor([".foo"], extractor)
    try:
        refs = file_references("src/a.foo", "alpha beta")
        assert refs is not None and [r.name for r in refs.refs] == ["alpha", "beta"]
    finally:
        EXTRACTORS.pop(".foo")
