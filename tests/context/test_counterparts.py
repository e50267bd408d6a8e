"""Tests for agentrt.context.counterparts: a C/C++ definition delivered with its header
declaration (and a header class with its member's definition), with a why, in budget."""

from __future__ import annotations

import textwrap
from pathlib import Path

from agentrt.context.counterparts import COUNTERPART_BUDGET, Counterpart, find_counterparts
from agentrt.context.relevance import build_index, rank
from agentrt.context.select import Selection, _reader, select
from agentrt.context.sources import scan_repository
from agentrt.context.store import ContextStore
from agentrt.context.tokens import count_tokens

FOO_H = textwrap.dedent(
    """\
    #pragma once
    #include <string>

    namespace shop {

    /// A basket of goods.
    class Foo {
    public:
        Foo();
        ~Foo();

        /// Adds the price of an item to the total, in cents.
        int bar(int cents);
        std::string label() const;
        int count() const { return count_; }

    private:
        int total_ = 0;
        int count_ = 0;
    };

    }  // namespace shop
    """
)

FOO_CPP = textwrap.dedent(
    """\
    #include "foo.h"

    namespace shop {

    Foo::Foo() = default;
    Foo::~Foo() = default;

    int Foo::bar(int cents) {
        if (cents < 0) {
            cents = 0;
        }
        total_ += cents;
        count_ += 1;
        return total_;
    }

    std::string Foo::label() const {
        return "basket of " + std::to_string(count_);
    }

    }  // namespace shop
    """
)

STACK_H = textwrap.dedent(
    """\
    #ifndef STACK_H
    #define STACK_H

    struct stack {
        int *items;
        int size;
    };

    /* Pushes a value on the stack; returns 0 when it is full. */
    int stack_push(struct stack *s,
                   int value);
    int stack_pop(struct stack *s);

    #endif
    """
)

# Headers longer than a whole-file candidate (select.SMALL_FILE_LINES), as real ones are.
FILLER_C = "".join(
    f"/* Frees the queue number {i}. */\nint queue_free_{i}(int q);\n" for i in range(120)
)
FILLER_CPP = "".join(
    f"    /// Zone {i} of the shelf.\n    int zone_{i}() const;\n" for i in range(120)
)
FOO_H = FOO_H.replace("private:", FILLER_CPP + "\nprivate:")
STACK_H = STACK_H.replace("#endif", FILLER_C + "\n#endif")

STACK_C = textwrap.dedent(
    """\
    #include "stack.h"

    int stack_push(struct stack *s, int value) {
        if (s->size >= 64) {
            return 0;
        }
        s->items[s->size++] = value;
        return 1;
    }

    int stack_pop(struct stack *s) {
        return s->items[--s->size];
    }
    """
)


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _select(root: Path, query: str, tmp_path: Path, budget: int = COUNTERPART_BUDGET) -> Selection:
    return select(root, query, budget, store=ContextStore(tmp_path / "store"))


def _counterparts(root: Path, query: str, tmp_path: Path) -> list[Counterpart]:
    scan = scan_repository(root)
    index = build_index(scan.root, scan, ContextStore(tmp_path / "store"))
    ranking = rank(index, query)
    return find_counterparts(
        index, ranking.unit_scores, 0.05, _reader({f.path: f for f in scan.files})
    )


def _delivered(selection: Selection, path: str, line: str) -> list[str]:
    """The notes of the items of ``path`` that hold ``line``."""
    return [
        item.why
        for item in selection.items
        if item.path == path and any(x.strip() == line for x in item.text.splitlines())
    ]


def test_cpp_method_definition_brings_its_declaration(tmp_path: Path) -> None:
    root = _write(tmp_path / "repo", {"include/foo.h": FOO_H, "src/foo.cpp": FOO_CPP})
    (root / "src" / "foo.cpp").write_text(FOO_CPP.replace('"foo.h"', '"../include/foo.h"'))
    query = "Foo::bar adds negative cents as zero"
    selection = _select(root, query, tmp_path)
    assert _delivered(selection, "src/foo.cpp", "int Foo::bar(int cents) {")
    notes = _delivered(selection, "include/foo.h", "int bar(int cents);")
    assert notes, selection.to_markdown()
    assert "declaration of shop::Foo::bar (src/foo.cpp:8)" in notes[0]
    # Offered short: the declaration and its comment, not the whole class.
    (offered,) = [
        c for c in _counterparts(root, query, tmp_path) if c.why.startswith("declaration of")
    ]
    assert offered.candidate.path == "include/foo.h" and offered.candidate.kind == "span"
    assert offered.candidate.end_line - offered.candidate.start_line + 1 == 4
    assert count_tokens(selection.to_markdown()) <= COUNTERPART_BUDGET


def test_c_function_definition_brings_its_prototype(tmp_path: Path) -> None:
    root = _write(tmp_path / "repo", {"stack.h": STACK_H, "stack.c": STACK_C})
    selection = _select(root, "stack_push writes past the end when the stack is full", tmp_path)
    assert _delivered(selection, "stack.c", "int stack_push(struct stack *s, int value) {")
    notes = _delivered(selection, "stack.h", "int stack_push(struct stack *s,")
    assert notes and "declaration of stack_push (stack.c:3)" in notes[0]
    # The whole prototype (two lines) and the comment above it.
    text = "".join(i.text for i in selection.items if i.path == "stack.h")
    assert "int value);" in text and "Pushes a value" in text


def test_header_class_brings_its_member_definition(tmp_path: Path) -> None:
    root = _write(tmp_path / "repo", {"foo.h": FOO_H, "foo.cpp": FOO_CPP})
    found = _counterparts(root, "the basket label of Foo", tmp_path)
    whys = {c.why for c in found}
    assert "definition of shop::Foo::label, a member of shop::Foo (foo.h:6)" in whys
    assert "declaration of shop::Foo::label (foo.cpp:17)" in whys
    # Inline definitions and calls are not declarations.
    assert not any("count" in w for w in whys)


def test_repository_without_headers_selects_as_before(tmp_path: Path) -> None:
    root = _write(tmp_path / "repo", {"stack.c": STACK_C, "main.py": "def push():\n    pass\n"})
    selection = _select(root, "stack_push writes past the end", tmp_path)
    assert selection.items and not any(i.why for i in selection.items)
    assert _counterparts(root, "stack_push writes past the end", tmp_path) == []


def test_small_budgets_go_to_the_code(tmp_path: Path) -> None:
    root = _write(tmp_path / "repo", {"stack.h": STACK_H, "stack.c": STACK_C})
    query = "stack_push writes past the end when the stack is full"
    for budget in (200, 1000, COUNTERPART_BUDGET - 1):
        selection = _select(root, query, tmp_path, budget)
        assert not any("declaration of" in i.why for i in selection.items)
        assert count_tokens(selection.to_markdown()) <= budget


def test_out_of_line_definition_in_a_header_brings_its_declaration(tmp_path: Path) -> None:
    # simdjson's layout: the class in element.h, its methods' bodies in element-inl.h.
    element_h = "#pragma once\n\nclass element {\npublic:\n  int depth() const;\n};\n"
    inline_h = textwrap.dedent(
        """\
        #pragma once
        #include "element.h"

        inline int element::depth() const {
          return nesting + 1;
        }
        """
    )
    root = _write(tmp_path / "repo", {"element.h": element_h, "element-inl.h": inline_h})
    found = _counterparts(root, "element::depth returns the nesting plus one", tmp_path)
    declaration = [c for c in found if c.candidate.path == "element.h"]
    assert [c.why for c in declaration] == ["declaration of element::depth (element-inl.h:4)"]
    assert declaration[0].candidate.start_line <= 5 <= declaration[0].candidate.end_line
