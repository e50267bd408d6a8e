"""Tests for agentrt.context.companions: changelog heads, doc sections and build lines that
go with the delivered code, inside the budget."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agentrt.context import companions
from agentrt.context.select import Selection, select
from agentrt.context.store import ContextStore
from agentrt.context.tokens import count_tokens

BILLING = textwrap.dedent(
    '''\
    """Billing: invoices and payments."""


    class Invoice:
        """An invoice for a customer."""

        def __init__(self, customer: str, amount: int) -> None:
            self.customer = customer
            self.amount = amount

        def apply_discount(self, percent: int) -> int:
            """Reduce the amount by ``percent``."""
            if percent > 100:
                raise ValueError("discount above 100%")
            self.amount = self.amount * (100 - percent) // 100
            return self.amount


    def total(invoices: list[Invoice]) -> int:
        return sum(i.amount for i in invoices)
    '''
)

CHANGELOG = textwrap.dedent(
    """\
    # Changelog

    ## Unreleased

    ### Fixed

    - Invoices of zero keep their customer (#12)

    ## 1.2.0 (2026-01-10)

    ### Added

    - Payments by card (#9)
    - Refunds (#10)

    ## 1.1.0 (2025-11-02)

    - First release
    """
)

API_DOC = textwrap.dedent(
    """\
    # Billing API

    Invoices and what they cost.

    ## Invoices

    An `Invoice` has a customer and an amount.

    ## Discounts

    `apply_discount` lowers what a bill costs, by a share of it.
    See the pricing guide for examples.

    ## Payments

    Payments are recorded against an invoice.
    """
)

#: Shares no word with the documentation: the ranking finds the code, not the section.
QUERY = "ValueError raised when percent exceeds 100 is wrong: it should clamp the percent"


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _select(repo: Path, store: Path, budget: int, query: str = QUERY) -> Selection:
    selection = select(repo, query, budget, store=ContextStore(store))
    assert count_tokens(selection.to_markdown()) <= budget
    return selection


def _lines(text: str, start: int, end: int) -> str:
    return "".join(text.splitlines(keepends=True)[start - 1 : end])


def test_changelog_head_is_delivered_after_the_code_when_the_budget_allows(tmp_path: Path) -> None:
    repo = _write(
        tmp_path / "repo",
        {"shop/billing.py": BILLING, "CHANGELOG.md": CHANGELOG, "docs/api.md": API_DOC},
    )
    selection = _select(repo, tmp_path / "store", 8000)
    paths = [item.path for item in selection.items]
    assert "shop/billing.py" in paths
    heads = [item for item in selection.items if item.path == "CHANGELOG.md"]
    assert len(heads) == 1
    head = heads[0]
    # From the top through the first lines of the second release heading: the section a
    # new entry goes in and what a release section looks like.
    assert (head.start_line, head.end_line) == (1, 12)
    assert head.text == _lines(CHANGELOG, 1, 12)
    assert head.why.startswith("changelog: where an entry for this change goes")
    # After the code.
    assert paths.index("CHANGELOG.md") > paths.index("shop/billing.py")
    assert "changelog:" in selection.to_markdown()


def test_no_companion_when_the_budget_is_tight(tmp_path: Path) -> None:
    repo = _write(
        tmp_path / "repo",
        {"shop/billing.py": BILLING, "CHANGELOG.md": CHANGELOG, "docs/api.md": API_DOC},
    )
    budget = int(companions.MIN_COMPANION_TOKENS / companions.COMPANION_SHARE) - 200
    selection = _select(repo, tmp_path / "store", budget)
    assert selection.items
    assert not [item for item in selection.items if item.why.startswith(("changelog", "document"))]


def test_doc_section_naming_a_delivered_function_is_delivered(tmp_path: Path) -> None:
    repo = _write(
        tmp_path / "repo",
        {"shop/billing.py": BILLING, "CHANGELOG.md": CHANGELOG, "docs/api.md": API_DOC},
    )
    selection = _select(repo, tmp_path / "store", 8000)
    docs = [item for item in selection.items if item.path == "docs/api.md"]
    assert docs, [(i.path, i.why) for i in selection.items]
    # The "Discounts" section, heading to the line before the next heading (and the
    # "Invoices" one, which names the class).
    spans = {(item.start_line, item.end_line): item for item in docs}
    assert (9, 13) in spans
    assert spans[9, 13].text.startswith("## Discounts")
    assert "apply_discount" in spans[9, 13].why
    assert "## Payments" not in "".join(item.text for item in docs)


def _big_repo(root: Path) -> Path:
    """Much more code matching the query than the budgets below hold."""
    many = "".join(
        f"\n\ndef apply_discount_{i}(invoice, percent):\n"
        f"    # discount {i}: percent of the invoice amount\n"
        + "".join(f"    step_{j} = invoice.amount * percent // {j + 1}\n" for j in range(12))
        + "    return invoice\n"
        for i in range(80)
    )
    files = {"shop/billing.py": BILLING + many, "CHANGELOG.md": CHANGELOG, "docs/api.md": API_DOC}
    return _write(root, files)


def test_companions_never_push_the_delivery_over_the_budget(tmp_path: Path) -> None:
    # From DISPLACE_BUDGET on, the code is packed again around the companions.
    repo = _big_repo(tmp_path / "repo")
    store = tmp_path / "store"
    for budget in (600, 3000, 4000, companions.DISPLACE_BUDGET, 12000):
        selection = _select(repo, store, budget)
        assert selection.tokens <= budget
        if budget >= companions.DISPLACE_BUDGET:
            paths = [i.path for i in selection.items]
            assert "CHANGELOG.md" in paths and "shop/billing.py" in paths
            assert paths.index("CHANGELOG.md") > max(
                n for n, path in enumerate(paths) if path == "shop/billing.py"
            )


def test_below_the_displace_budget_the_code_is_what_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _big_repo(tmp_path / "repo")
    store = tmp_path / "store"
    budgets = (3000, 5000, companions.DISPLACE_BUDGET - 1)
    on = [_select(repo, store, b).items for b in budgets]
    monkeypatch.setattr(companions, "MIN_COMPANION_TOKENS", 10**9)  # companions off
    off = [_select(repo, store, b).items for b in budgets]
    for with_them, without in zip(on, off, strict=True):
        assert [i for i in with_them if i.path == "shop/billing.py"] == without


def test_changelog_names() -> None:
    assert companions.is_changelog("CHANGELOG.md")
    assert companions.is_changelog("jib-core/CHANGELOG.md")
    assert companions.is_changelog("History.md")
    assert companions.is_changelog("CHANGES")
    assert companions.is_changelog("release-notes/VERSION-2.x")
    assert not companions.is_changelog("release-notes/CREDITS-2.x")
    assert not companions.is_changelog("src/changes.rs")
    assert not companions.is_changelog("docs/history/intro.md")


C_PARSER = textwrap.dedent(
    """\
    #include "parser.h"

    int parse_header(const char *line, struct header *out) {
        if (line == NULL) {
            return -1;
        }
        out->length = strlen(line);
        return 0;
    }
    """
)

CMAKE = textwrap.dedent(
    """\
    cmake_minimum_required(VERSION 3.10)
    project(tiny C)

    # Sources, kept in alphabetical order
    add_library(tiny
        src/lexer.c
        src/parser.c
        src/writer.c
    )

    target_include_directories(tiny PUBLIC include)
    install(TARGETS tiny)
    """
)


def test_build_lines_listing_a_delivered_source_are_delivered(tmp_path: Path) -> None:
    repo = _write(
        tmp_path / "repo",
        {
            "src/parser.c": C_PARSER,
            "src/lexer.c": "int lex(void) { return 0; }\n",
            "include/parser.h": "struct header { int length; };\n",
            "CMakeLists.txt": CMAKE,
        },
    )
    selection = _select(repo, tmp_path / "store", 8000, "parse_header crashes on a NULL line")
    build = [item for item in selection.items if item.path == "CMakeLists.txt"]
    assert build, [(i.path, i.why) for i in selection.items]
    assert build[0].why == "build file listing src/parser.c"
    assert "src/parser.c" in build[0].text
    assert (build[0].start_line, build[0].end_line) == (4, 10)


def test_nothing_changes_without_changelog_docs_or_build_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _write(tmp_path / "repo", {"shop/billing.py": BILLING, "shop/notes.py": "X = 1\n"})
    store = tmp_path / "store"
    with_companions = [_select(repo, store, b).to_json() for b in (300, 4000, 8000)]
    monkeypatch.setattr(companions, "MIN_COMPANION_TOKENS", 10**9)  # companions off
    without = [_select(repo, store, b).to_json() for b in (300, 4000, 8000)]
    assert with_companions == without
    assert all(not item.get("why") for s in with_companions for item in s["items"])


def test_an_overview_gets_no_companions(tmp_path: Path) -> None:
    repo = _write(
        tmp_path / "repo",
        {"shop/billing.py": BILLING, "CHANGELOG.md": CHANGELOG, "docs/api.md": API_DOC},
    )
    selection = _select(repo, tmp_path / "store", 8000, "")
    assert not [item for item in selection.items if item.why.startswith(("changelog", "documents"))]
