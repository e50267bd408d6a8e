"""agentrt.context.issue: candidates for an issue (ranked files and units, then the callers,
tests and importers of the best definitions) and their packing within a budget, picks
first. A small repository whose callers and tests are known."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrt.context.issue import IssuePicks, issue_candidates, select_issue
from agentrt.context.store import ContextStore
from agentrt.context.tokens import count_tokens

FILES = {
    "shop/__init__.py": "",
    "shop/tax.py": (
        '"""Tax rates."""\n\nRATES = {"eu": 0.2, "us": 0.07}\n\n\n'
        'def rate(region):\n    """The tax rate of a region."""\n    return RATES[region]\n'
    ),
    "shop/billing.py": (
        '"""Invoices."""\nfrom shop.tax import rate\n\n\n'
        "def invoice_total(lines, region):\n"
        "    subtotal = sum(price * qty for price, qty in lines)\n"
        "    return round(subtotal * (1 + rate(region)), 2)\n\n\n"
        "def discount(total, percent):\n    return total * (1 - percent / 100)\n"
    ),
    "shop/cli.py": (
        "from shop.billing import discount\n\n\ndef main():\n    print(discount(10.0, 5))\n"
    ),
    "tests/test_tax.py": (
        "from shop.tax import rate\n\n\ndef test_rate():\n    assert rate('eu') == 0.2\n"
    ),
}
ISSUE = "KeyError for an unknown region in the tax rate lookup\n\nrate() raises KeyError."


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shop")
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture
def store(tmp_path: Path) -> ContextStore:
    return ContextStore(tmp_path / "store")


def test_candidates_rank_the_named_unit_first_then_its_neighbours(
    shop: Path, store: ContextStore
) -> None:
    found = issue_candidates(shop, ISSUE, store=store)
    assert found.files[0].path == "shop/tax.py"
    assert "def rate(region):" in found.files[0].outline
    assert "return RATES[region]" not in found.files[0].outline  # an outline: bodies elided
    first = found.units[0]
    assert (first.path, first.name, first.kind) == ("shop/tax.py", "rate", "function")
    assert (first.start_line, first.end_line, first.why) == (6, 8, "named in the issue: rate")
    whys = {(u.path, u.name): u.why for u in found.units}
    assert "test of rate" in whys[("tests/test_tax.py", "test_rate")]
    assert "caller of rate" in whys[("shop/billing.py", "invoice_total")]
    assert "rate" in found.stats["neighbours_of"]


def test_the_selection_keeps_its_budget_and_says_why(shop: Path, store: ContextStore) -> None:
    for budget in (60, 200, 2000):
        selection = select_issue(shop, ISSUE, budget, store=store)
        assert count_tokens(selection.to_markdown()) <= budget
        assert selection.tokens <= budget
    assert not selection.picked
    items = {i.path: i.why for i in selection.items}
    assert selection.items[0].path == "shop/tax.py"
    assert "named in the issue: rate" in items["shop/tax.py"]
    assert "test of" in items["tests/test_tax.py"]
    assert "— named in the issue: rate" in selection.to_markdown()
    data = selection.to_json()
    assert data["files"][0]["path"] == "shop/tax.py" and data["items"][0]["why"]
    with pytest.raises(ValueError, match="positive"):
        select_issue(shop, ISSUE, 0, store=store)


def test_picks_come_first_in_their_order(shop: Path, store: ContextStore) -> None:
    picks = IssuePicks(["shop/cli.py", "nowhere.py"], [("shop/billing.py", "discount")])
    selection = select_issue(shop, ISSUE, 2000, picks=picks, store=store)
    assert selection.picked
    assert [f.path for f in selection.files][:2] == ["shop/cli.py", "shop/billing.py"]
    whys = [f.why for f in selection.files][:2]
    assert whys[0].startswith("re-ranked #1") and whys[1].startswith("re-ranked #2")
    assert (selection.units[0].name, selection.units[0].why) == ("discount", "re-ranked #1")
    assert [i.path for i in selection.items][:2] == ["shop/cli.py", "shop/billing.py"]
    # The neighbours are the picked definition's now: its caller in cli.py.
    assert "caller of discount" in selection.items[0].why
    # A small budget goes to the picks first.
    small = select_issue(shop, ISSUE, 120, picks=picks, store=store)
    assert small.items and small.items[0].path == "shop/cli.py"


# ------------------------------------------------------------ packed as select packs


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


MATRIX = (
    "#pragma once\n#include <cmath>\n\nnamespace geo {\n\n"
    "struct Matrix {\n    double a;\n    double b;\n    double c;\n    double d;\n};\n\n"
    "inline double determinant(const Matrix& m) {\n"
    "    double diagonal = m.a * m.d;\n"
    "    double anti_diagonal = m.b * m.c;\n"
    "    return diagonal - anti_diagonal;\n}\n\n"
    "inline double trace(const Matrix& m) {\n"
    "    double first = m.a;\n    double last = m.d;\n    return first + last;\n}\n\n"
    "}  // namespace geo\n"
)
#: What an amalgamation script writes: a banner, then the source without its includes.
SINGLE_HEADER = (
    "// geo single header, generated by amalgamate.py: do not edit\n#pragma once\n"
    "#include <cmath>\n\n// ---- next file ----\n"
    + "".join(line for line in MATRIX.splitlines(True) if not line.startswith("#"))
)


def test_an_amalgamation_comes_as_the_twin_of_its_source(tmp_path: Path) -> None:
    """The amalgamation does not compete with its source: the source is delivered, its
    copy right after it, said to be a twin."""
    root = _write(
        tmp_path / "geo",
        {"include/geo/matrix.hpp": MATRIX, "single_include/geo/geo.hpp": SINGLE_HEADER},
    )
    store = ContextStore(tmp_path / "store")
    selection = select_issue(root, "determinant of a Matrix is wrong", 2000, store=store)
    assert count_tokens(selection.to_markdown()) <= 2000
    items = selection.items
    source = next(
        n for n, i in enumerate(items)
        if i.path == "include/geo/matrix.hpp" and "anti_diagonal = m.b" in i.text
    )  # fmt: skip
    assert items[source].why.startswith("matches the issue")  # its own reason stays first
    twin = items[source + 1]
    assert twin.path == "single_include/geo/geo.hpp", [(i.path, i.why) for i in items]
    assert "inline double determinant(const Matrix& m) {" in twin.text
    assert "twin of include/geo/matrix.hpp:" in twin.why, twin.why
    assert all("twin of" in i.why for i in items if i.path == twin.path)
    # The listing names the source, not the amalgamation, first.
    assert selection.files[0].path == "include/geo/matrix.hpp"


BILLING = (
    '"""Billing: invoices."""\n\n\n'
    "def apply_discount(amount: int, percent: int) -> int:\n"
    '    """Reduce the amount by ``percent``."""\n'
    "    if percent > 100:\n"
    '        raise ValueError("discount above 100%")\n'
    "    return amount * (100 - percent) // 100\n"
)
CHANGELOG = (
    "# Changelog\n\n## Unreleased\n\n### Fixed\n\n- Invoices of zero keep their customer\n\n"
    "## 1.2.0 (2026-01-10)\n\n### Added\n\n- Payments by card\n- Refunds\n\n"
    "## 1.1.0 (2025-11-02)\n\n- First release\n"
)


def test_the_changelog_head_comes_after_the_code(tmp_path: Path) -> None:
    root = _write(tmp_path / "repo", {"shop/billing.py": BILLING, "CHANGELOG.md": CHANGELOG})
    store = ContextStore(tmp_path / "store")
    issue = "ValueError raised when percent exceeds 100: apply_discount should clamp it"
    selection = select_issue(root, issue, 8000, store=store)
    assert count_tokens(selection.to_markdown()) <= 8000
    paths = [i.path for i in selection.items]
    (head,) = [i for i in selection.items if i.path == "CHANGELOG.md"]
    assert head.start_line == 1 and "## 1.2.0 (2026-01-10)" in head.text
    assert head.why.startswith("changelog: where an entry for this change goes"), head.why
    assert paths.index("CHANGELOG.md") > paths.index("shop/billing.py")
    assert "— changelog: where an entry" in selection.to_markdown()
    # With picks too: the picked file first, the changelog after the code.
    picks = IssuePicks(["shop/billing.py"])
    picked = select_issue(root, issue, 8000, picks=picks, store=store)
    assert picked.items[0].path == "shop/billing.py"
    assert [i.path for i in picked.items][-1] == "CHANGELOG.md"


STACK_H = (
    "#ifndef STACK_H\n#define STACK_H\n\nstruct stack {\n    int *items;\n    int size;\n};\n\n"
    "/* Pushes a value on the stack; returns 0 when it is full. */\n"
    "int stack_push(struct stack *s,\n               int value);\n"
    "int stack_pop(struct stack *s);\n\n"
    # Longer than a whole-file candidate, as real headers are.
    + "".join(
        f"/* Frees the queue number {i}. */\nint queue_free_{i}(int q);\n" for i in range(120)
    )
    + "\n#endif\n"
)
STACK_C = (
    '#include "stack.h"\n\nint stack_push(struct stack *s, int value) {\n'
    "    if (s->size >= 64) {\n        return 0;\n    }\n"
    "    s->items[s->size++] = value;\n    return 1;\n}\n\n"
    "int stack_pop(struct stack *s) {\n    return s->items[--s->size];\n}\n"
)


def test_a_c_definition_comes_with_its_declaration(tmp_path: Path) -> None:
    root = _write(tmp_path / "repo", {"stack.h": STACK_H, "stack.c": STACK_C})
    store = ContextStore(tmp_path / "store")
    issue = "stack_push writes past the end when the stack is full"
    selection = select_issue(root, issue, 8000, store=store)
    assert count_tokens(selection.to_markdown()) <= 8000
    declared = [
        i for i in selection.items
        if i.path == "stack.h" and "int stack_push(struct stack *s," in i.text
    ]  # fmt: skip
    assert declared, [(i.path, i.start_line, i.end_line, i.why) for i in selection.items]
    assert "declaration of stack_push (stack.c:3)" in declared[0].why
    # A small budget goes to the code.
    small = select_issue(root, issue, 1000, store=store)
    assert not any("declaration of" in i.why for i in small.items)


def test_a_line_window_is_named_by_what_it_is_cut_from(tmp_path: Path) -> None:
    """A long function's line windows (``run:92``, ``run:122``) are reasons about ``run``:
    the why names it once, not each window (the header already gives the lines), nor the
    file the header names."""
    body = [f"    total_{i} = {i}\n" for i in range(150)]
    body[120] = "    frobnicate_widget(gear)  # jams when the gear slips\n"
    root = _write(tmp_path / "repo", {"app.py": "def run(gear):\n" + "".join(body)})
    store = ContextStore(tmp_path / "store")
    issue = "frobnicate_widget jams when the gear slips"
    selection = select_issue(root, issue, 400, store=store)
    (item,) = selection.items
    assert item.why == "matches the issue: run", item.why


def test_callers_take_only_the_room_select_leaves(tmp_path: Path) -> None:
    """Twelve small callers of the named definition are neighbours: they come in the room
    the ranking's candidates leave, never in place of one (scored as the unit they hang on,
    a caller's two lines were packed instead of ``rate`` itself at 120-130 tokens)."""
    files = {
        "shop/__init__.py": "",
        "shop/tax.py": FILES["shop/tax.py"],
        "shop/regions.py": (
            '"""Regions."""\n\n\ndef normalize_region(region):\n'
            '    """An unknown region name, lower-cased for the lookup."""\n'
            "    return region.strip().lower()\n"
        ),
    }
    for i in range(12):
        files[f"shop/orders{i}.py"] = (
            f"from shop.tax import rate\n\n\ndef order_total{i}(price, where):\n"
            "    return price * (1 + rate(where))\n"
        )
    root = _write(tmp_path / "repo", files)
    store = ContextStore(tmp_path / "store")
    for budget in (120, 125, 130):
        selection = select_issue(root, ISSUE, budget, store=store)
        paths = [i.path for i in selection.items]
        assert paths == ["shop/regions.py", "shop/tax.py"], (budget, paths)
    wide = select_issue(root, ISSUE, 600, store=store)
    callers = [i for i in wide.items if i.why == "caller of rate"]
    assert len(callers) >= 5  # the room left goes to the neighbours
    # A neighbour's score is its own (not the packing's, below every ranked candidate's).
    assert all(i.score > 0.01 for i in callers), [i.score for i in callers]


def test_a_why_names_one_unit_of_the_ranking_and_not_the_file(tmp_path: Path) -> None:
    """Three named functions delivered as one file: the why names the best of them once
    (not all three, nor the file the header names); each word costs the budget."""
    root = _write(
        tmp_path / "repo",
        {
            "doc.py": (
                '"""Documents."""\n\n\ndef parse_header(text):\n'
                '    return text.split("\\n", 1)[0]\n\n\n'
                'def parse_footer(text):\n    return text.rsplit("\\n", 1)[-1]\n\n\n'
                'def parse_body(text):\n    return text.split("\\n")[1:-1]\n'
            ),
            "other.py": "def unrelated():\n    return 1\n",
        },
    )
    issue = "parse_header, parse_footer and parse_body fail on an empty text"
    selection = select_issue(root, issue, 400, store=ContextStore(tmp_path / "store"))
    (item,) = selection.items
    label, _, names = item.why.partition(": ")
    assert label == "named in the issue", item.why
    assert names in ("parse_header", "parse_footer", "parse_body"), item.why


def test_a_ranked_candidate_is_packed_at_the_ranking_score(tmp_path: Path) -> None:
    """report.py's skeleton is both ranked (it says ``region``) and a neighbour (an
    importer of tax.py): it is packed at the ranking's score, not the importer's higher
    one (which put neighbours' skeletons before ranked files select packs), and what only
    a neighbour offers (the caller's lines) below everything the ranking offers."""
    from agentrt.context.issue import _RANKING_LABELS, _Ranked

    steps = "".join(f"\n\ndef step{j}(x):\n    return x + {j}\n" for j in range(40))
    files = {
        "shop/__init__.py": "",
        "shop/tax.py": FILES["shop/tax.py"],
        "shop/report.py": (
            "from shop.tax import rate\n\n\ndef report(region):\n    return rate(region)\n" + steps
        ),
    }
    root = _write(tmp_path / "repo", files)
    ranked = _Ranked.build(root, ISSUE, None, ContextStore(tmp_path / "store"), None)
    out = ranked.offer(None, 4000)
    ranking, near = [], []
    for key, candidate in out.rest.items():
        reasons = out.reasons[key]
        own = [s for (label, _), s in reasons.items() if label in _RANKING_LABELS]
        if own:
            assert candidate.score == max(own), (key, candidate.score, reasons)
            ranking.append(candidate.score)
        else:
            near.append(candidate.score)
    assert ("importer of", "tax.py") in out.reasons[("shop/report.py", "skeleton", 1, 0)]
    assert near and max(near) < min(ranking)
