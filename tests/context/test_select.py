"""Tests for agentrt.context.select (and the repository index of .relevance behind it)."""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from agentrt.context import relevance
from agentrt.context.relevance import IndexStats, build_index, rank
from agentrt.context.select import Selection, select, select_texts
from agentrt.context.sources import SourceError, TextSource, scan_repository
from agentrt.context.store import ContextStore
from agentrt.context.tokens import count_tokens

BILLING = textwrap.dedent(
    '''\
    """Billing: invoices and payments."""

    from shop.models import Customer


    class Invoice:
        """An invoice for a customer."""

        def __init__(self, customer: Customer, amount: int) -> None:
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

MODELS = textwrap.dedent(
    '''\
    """Shop models."""


    class Customer:
        def __init__(self, name: str) -> None:
            self.name = name

        def greeting(self) -> str:
            return f"Hello {self.name}"
    '''
)


def _filler(i: int) -> str:
    return "".join(
        f"def helper_{i}_{j}(value):\n    return value * {j} + {i}  # arithmetic\n\n"
        for j in range(30)
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "shop").mkdir(parents=True)
    (root / "shop" / "__init__.py").write_text("")
    (root / "shop" / "billing.py").write_text(BILLING)
    (root / "shop" / "models.py").write_text(MODELS)
    for i in range(6):
        (root / "shop" / f"util_{i}.py").write_text(_filler(i))
    (root / "README.md").write_text("# Shop\n\nA tiny shop with billing.\n")
    return root


@pytest.fixture
def store(tmp_path: Path) -> ContextStore:
    relevance._MEMORY.clear()
    return ContextStore(tmp_path / "store")


def test_select_finds_the_named_method(repo: Path, store: ContextStore) -> None:
    query = "Invoice.apply_discount allows a negative discount, which raises the amount"
    selection = select(repo, query, 400, store=store)
    assert selection.items
    top = selection.items[0]
    assert top.path == "shop/billing.py"
    assert "def apply_discount(self, percent: int) -> int:" in selection.text
    assert 'raise ValueError("discount above 100%")' in selection.text
    assert selection.tokens <= 400


def test_selection_token_accounting(repo: Path, store: ContextStore) -> None:
    for budget in (30, 120, 400, 5000):
        selection = select(repo, "customer greeting and invoice totals", budget, store=store)
        assert selection.tokens == sum(item.tokens for item in selection.items)
        assert selection.tokens <= budget
        assert count_tokens(selection.text) <= budget
        assert count_tokens(selection.to_markdown()) <= budget
        for item in selection.items:
            assert item.tokens == count_tokens(item.text)


def test_items_are_verbatim_with_correct_line_numbers(repo: Path, store: ContextStore) -> None:
    selection = select(repo, "apply_discount percent", 300, store=store)
    for item in selection.items:
        lines = (repo / item.path).read_text().split("\n")
        if item.kind in ("span", "file"):
            assert item.text == "\n".join(lines[item.start_line - 1 : item.end_line]) + "\n"
        else:
            assert item.kind == "skeleton" and "elided" in item.text


def test_to_json_shape(repo: Path, store: ContextStore) -> None:
    selection = select(repo, "Customer greeting", 500, store=store)
    data = json.loads(json.dumps(selection.to_json()))
    assert set(data) == {"budget", "tokens", "encoding", "items"}
    assert data["budget"] == 500 and data["encoding"] == "cl100k_base"
    assert data["tokens"] == selection.tokens
    assert data["items"], "something selected"
    for item in data["items"]:
        assert set(item) == {"path", "start_line", "end_line", "kind", "score", "tokens", "text"}
        assert item["kind"] in {"file", "skeleton", "span"}
        assert 0.0 <= item["score"] <= 1.0
        assert isinstance(item["start_line"], int) and item["start_line"] <= item["end_line"]
    markdown = selection.to_markdown()
    first = data["items"][0]
    assert f"## {first['path']}:{first['start_line']}-{first['end_line']}" in markdown


def test_empty_query_gives_an_overview(repo: Path, store: ContextStore) -> None:
    selection = select(repo, "", 2000, store=store)
    assert selection.items
    assert {item.kind for item in selection.items} <= {"skeleton", "file"}
    assert selection.tokens <= 2000


def test_a_query_of_template_comments_only_gives_the_overview(
    repo: Path, store: ContextStore
) -> None:
    # Ranking drops HTML comments; the choice of an overview must agree with it.
    overview = select(repo, "", 2000, store=store)
    commented = select(
        repo, "<!-- invoice -->\n<!-- please read the guidelines -->", 2000, store=store
    )
    assert [(i.path, i.kind) for i in commented.items] == [(i.path, i.kind) for i in overview.items]


def test_threshold_filters(repo: Path, store: ContextStore) -> None:
    everything = select(repo, "invoice amount", 5000, store=store, threshold=0.0)
    strict = select(repo, "invoice amount", 5000, store=store, threshold=0.99)
    assert len(strict.items) < len(everything.items)


def test_preferred_files_are_packed_first(repo: Path, store: ContextStore) -> None:
    query = "Invoice.apply_discount for a Customer: the discount percent"
    plain = select(repo, query, 120, store=store)
    assert [i.path for i in plain.items] == ["shop/billing.py"]  # the budget fits one file
    assert plain.stats["preferred"] == []

    preferred = select(repo, query, 120, store=store, prefer=["shop/models.py"])
    assert preferred.items[0].path == "shop/models.py"
    assert "class Customer:" in preferred.text
    assert preferred.stats["preferred"] == ["shop/models.py"]
    for budget in (60, 120, 200, 400):
        chosen = select(repo, query, budget, store=store, prefer=["shop/models.py"])
        assert chosen.tokens <= budget
        assert count_tokens(chosen.to_markdown()) <= budget
        assert count_tokens(chosen.text) <= budget
    # With room for everything relevant, the preferred file comes first and nothing is lost.
    roomy = select(repo, query, 2000, store=store)
    roomy_first = select(repo, query, 2000, store=store, prefer=["shop/models.py"])
    assert roomy.items[0].path == "shop/billing.py"
    assert roomy_first.items[0].path == "shop/models.py"
    assert sorted(i.text for i in roomy_first.items) == sorted(i.text for i in roomy.items)


def test_preferred_paths_may_be_absolute_and_are_kept_inside_the_repository(
    repo: Path, store: ContextStore, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text("class Customer:\n    pass\n")
    query = "Invoice.apply_discount for a Customer: the discount percent"
    selection = select(
        repo,
        query,
        120,
        store=store,
        prefer=[str(repo / "shop" / "models.py"), str(outside), "../outside.py", "nowhere.py"],
    )
    assert selection.stats["preferred"] == ["shop/models.py"]
    assert selection.items[0].path == "shop/models.py"
    # A preferred file the query has nothing to do with is not delivered for being preferred.
    unrelated = select(repo, query, 2000, store=store, prefer=["shop/util_3.py"])
    assert "shop/util_3.py" not in {i.path for i in unrelated.items}


def test_bad_input(repo: Path, store: ContextStore) -> None:
    with pytest.raises(ValueError, match="budget"):
        select(repo, "x", 0, store=store)
    with pytest.raises(ValueError, match="threshold"):
        select(repo, "x", 10, store=store, threshold=2)
    with pytest.raises(SourceError):
        select(repo / "missing", "x", 10, store=store)


def _age(root: Path) -> None:
    """Make every file look old, so size+mtime can be trusted (see the racy-git margin)."""
    old = time.time() - 3600
    for path in root.rglob("*"):
        os.utime(path, (old, old))


def test_incremental_reindex_parses_only_changed_files(repo: Path, store: ContextStore) -> None:
    _age(repo)
    first = IndexStats()
    build_index(repo.resolve(), scan_repository(repo), store, first)
    assert first.parsed == first.files == 10
    assert first.index_source == "built"

    again = IndexStats()
    build_index(repo.resolve(), scan_repository(repo), store, again)
    assert (again.parsed, again.read, again.index_source) == (0, 0, "memory")

    relevance._MEMORY.clear()  # as a new process would: everything from the store
    fresh = IndexStats()
    build_index(repo.resolve(), scan_repository(repo), store, fresh)
    assert (fresh.parsed, fresh.read, fresh.index_source) == (0, 0, "store")

    (repo / "shop" / "models.py").write_text(MODELS + "\n\ndef farewell():\n    return 'bye'\n")
    changed = IndexStats()
    index = build_index(repo.resolve(), scan_repository(repo), store, changed)
    assert changed.parsed == 1
    assert changed.read == 1
    assert changed.index_source == "built"
    assert "farewell" in index.definitions
    ranking = rank(index, "farewell")
    best = int(ranking.file_scores.argmax())
    assert index.paths[best] == "shop/models.py"


def test_touch_without_change_does_not_reparse(repo: Path, store: ContextStore) -> None:
    _age(repo)
    build_index(repo.resolve(), scan_repository(repo), store, IndexStats())
    relevance._MEMORY.clear()
    now = time.time()
    os.utime(repo / "shop" / "billing.py", (now, now))
    stats = IndexStats()
    build_index(repo.resolve(), scan_repository(repo), store, stats)
    assert stats.read == 1 and stats.parsed == 0  # re-hashed, same content, not re-parsed


def test_traceback_mentions_pin_the_function(repo: Path, store: ContextStore) -> None:
    query = (
        "Traceback (most recent call last):\n"
        '  File "/site-packages/shop/models.py", line 9, in greeting\n'
        "TypeError: boom"
    )
    selection = select(repo, query, 200, store=store)
    assert selection.items[0].path == "shop/models.py"
    assert "def greeting(self) -> str:" in selection.text


def test_select_on_a_real_tree(store: ContextStore) -> None:
    import json as json_module

    root = Path(json_module.__file__).parent
    selection = select(root, "JSONDecodeError raised with line and column", 1500, store=store)
    assert any(item.path == "decoder.py" for item in selection.items)
    assert "class JSONDecodeError(ValueError):" in selection.text
    assert selection.tokens <= 1500


def test_select_texts() -> None:
    sources = [
        TextSource("notes", "".join(f"note {i}: nothing here\n" for i in range(200)), "note"),
        TextSource(
            "log", "start\n" * 50 + "ERROR: disk quota exceeded on /var\n" + "ok\n" * 50, "log"
        ),
    ]
    selection = select_texts(sources, "disk quota error", 100)
    assert isinstance(selection, Selection)
    assert "disk quota exceeded" in selection.text
    assert selection.tokens <= 100
    assert count_tokens(selection.to_markdown()) <= 100


def test_best_unit_of_the_top_file_is_offered_at_its_file_score(
    repo: Path, store: ContextStore
) -> None:
    from agentrt.context.select import BEST_UNIT_WEIGHT, _candidates

    scan = scan_repository(repo)
    index = build_index(scan.root, scan, store, IndexStats())
    billing = index.paths.index("shop/billing.py")
    models = index.paths.index("shop/models.py")
    file_scores = np.zeros(index.n_files, dtype=np.float32)
    file_scores[billing], file_scores[models] = 1.0, 0.5
    unit_scores = np.zeros(len(index.unit_file), dtype=np.float32)
    units = index.file_units(billing)
    names = [index.unit(k)[1].name for k in units]
    best = units.start + names.index("Invoice.apply_discount")
    unit_scores[units] = 0.1
    unit_scores[best] = 0.3  # the top file's best unit scores low: units elsewhere match better
    for k in index.file_units(models):
        unit_scores[k] = 1.0
    candidates = _candidates(index, file_scores, unit_scores, False, 0.05)
    unit = index.unit(best)[1]
    offered = [
        c
        for c in candidates
        if c.path == "shop/billing.py"
        and c.kind == "span"
        and c.start_line <= unit.start_line
        and c.end_line >= unit.end_line
    ]
    assert max(c.score for c in offered) == pytest.approx(BEST_UNIT_WEIGHT)
    # Only the top file's: the second file's units keep their own scores.
    assert (
        max(c.score for c in candidates if c.path == "shop/models.py" and c.kind == "span") == 1.0
    )


@pytest.mark.parametrize("gc_enabled", [True, False])
def test_index_in_worker_processes_matches_in_process_and_restores_the_collector(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gc_enabled: bool
) -> None:
    import gc

    scan = scan_repository(repo)
    serial = build_index(scan.root, scan, ContextStore(tmp_path / "serial"), IndexStats())
    relevance._MEMORY.clear()
    monkeypatch.setattr(relevance, "_PARALLEL_MIN_FILES", 1)  # a pool even for 10 files
    was = gc.isenabled()
    (gc.enable if gc_enabled else gc.disable)()
    try:
        stats = IndexStats()
        pooled = build_index(scan.root, scan, ContextStore(tmp_path / "pooled"), stats)
        # The collector is paused while indexing (see _gc_paused) and left as it was found.
        assert gc.isenabled() is gc_enabled
    finally:
        (gc.enable if was else gc.disable)()
    assert stats.parsed == 10
    assert pooled.paths == serial.paths
    assert pooled.definitions == serial.definitions
    assert np.array_equal(pooled.file_bm25.terms, serial.file_bm25.terms)
    assert (pooled.unit_bm25.matrix != serial.unit_bm25.matrix).nnz == 0


def test_split_title() -> None:
    from agentrt.context.relevance import split_title

    assert split_title("Invoice totals are wrong") == ("", "Invoice totals are wrong")
    title, query = split_title(
        "\n  Invoice totals are wrong  \n<!-- Please read the guidelines -->\nsteps: ..."
    )
    assert title == "Invoice totals are wrong"
    assert "guidelines" not in query and "steps: ..." in query
    assert split_title("Title\n<!-- an unclosed template comment\nhides the rest")[1] == "Title\n "


def test_the_title_of_an_issue_names_its_subject(
    repo: Path, store: ContextStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The body talks mostly about the customer (how the bug was found); the title says what
    # is broken.
    query = (
        "Invoice discount is applied twice\n"
        "I made a customer with a name and printed the greeting. The customer greeting said\n"
        "hello, then the customer name, then the customer greeting again for each customer.\n"
    )
    scan = scan_repository(repo)
    index = build_index(scan.root, scan, store, IndexStats())

    def first() -> str:
        return index.paths[int(rank(index, query).file_scores.argmax())]

    assert first() == "shop/billing.py"
    monkeypatch.setattr(relevance, "W_TITLE_BOOST", 0.0)
    assert first() == "shop/models.py"


def test_a_small_budget_goes_to_the_top_files_units_before_other_files_whole(
    repo: Path, store: ContextStore
) -> None:
    """Below WIDE_BUDGET a second file whole (or its outline) is worth less than at large
    budgets: it would take the room of the top file's next units."""
    from agentrt.context.compress import split_lines
    from agentrt.context.packer import Candidate, FileView, pack, render_markdown
    from agentrt.context.select import WIDE_BUDGET, _candidates, file_weights, line_token_counts
    from agentrt.context.tokens import TokenCounter

    # The top file is too long to be offered whole; the second is short.
    (repo / "shop" / "orders.py").write_text(
        "".join(f"def order_{i}(x):\n    y = x + {i}\n    return y * 2\n\n" for i in range(60))
    )
    counter = TokenCounter()
    scan = scan_repository(repo)
    index = build_index(scan.root, scan, store, IndexStats())
    orders, util = index.paths.index("shop/orders.py"), index.paths.index("shop/util_0.py")
    file_scores = np.zeros(index.n_files, dtype=np.float32)
    file_scores[orders], file_scores[util] = 1.0, 0.9
    unit_scores = np.zeros(len(index.unit_file), dtype=np.float32)
    units = {index.unit(k)[1].name: k for k in index.file_units(orders)}
    unit_scores[units["order_3"]] = 1.0
    unit_scores[units["order_40"]] = 0.25  # the top file's next unit
    views = {}
    for f in (orders, util):
        path = index.paths[f]
        lines = split_lines((repo / path).read_text())
        views[path] = FileView(
            path, lines, line_token_counts(lines, counter), index.structures[f].skeleton
        )
    best = index.unit(units["order_3"])[1]
    # Room for the best unit and the second file whole, not for the next unit as well.
    both = pack(
        views,
        [
            Candidate("shop/orders.py", "span", 1.0, best.start_line, best.end_line),
            Candidate("shop/util_0.py", "file", 1.0),
        ],
        10**6,
        counter.count,
    )
    budget = count_tokens(render_markdown(both)) + 20
    assert budget < WIDE_BUDGET

    def delivered(weights: tuple[float, float]) -> str:
        candidates = _candidates(index, file_scores, unit_scores, False, 0.05, 1, weights)
        return render_markdown(pack(views, candidates, budget, counter.count))

    assert "def order_40(" in delivered(file_weights(budget))
    assert "def order_40(" not in delivered(file_weights(WIDE_BUDGET))  # large budgets


def test_spans_are_padded_less_at_small_budgets(repo: Path, store: ContextStore) -> None:
    """Below WIDE_BUDGET a unit's span has SMALL_BUDGET_SPAN_PADDING lines around it (the
    padding of every span adds up to room for another file), SPAN_PADDING above."""
    from agentrt.context.select import (
        SMALL_BUDGET_SPAN_PADDING,
        SPAN_PADDING,
        WIDE_BUDGET,
        _candidates,
        file_weights,
        span_padding,
    )

    scan = scan_repository(repo)
    index = build_index(scan.root, scan, store, IndexStats())
    billing = index.paths.index("shop/billing.py")
    file_scores = np.zeros(index.n_files, dtype=np.float32)
    file_scores[billing] = 1.0
    unit_scores = np.zeros(len(index.unit_file), dtype=np.float32)
    k = next(k for k in index.file_units(billing) if index.unit(k)[1].name == "total")
    unit_scores[k] = 1.0
    unit = index.unit(k)[1]
    assert SMALL_BUDGET_SPAN_PADDING < SPAN_PADDING
    # Python keeps its padding at every budget (its fixes touch the lines around a function).
    assert span_padding(4_000, "shop/billing.py") == SPAN_PADDING
    assert span_padding(4_000, "src/billing.rs") == SMALL_BUDGET_SPAN_PADDING
    for budget, padding in ((4_000, SPAN_PADDING), (WIDE_BUDGET, SPAN_PADDING)):
        candidates = _candidates(
            index, file_scores, unit_scores, False, 0.05, 1, file_weights(budget), budget
        )  # fmt: skip
        span = next(c for c in candidates if c.kind == "span" and c.score == 1.0)
        assert span.start_line == unit.start_line - padding
