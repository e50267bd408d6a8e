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
