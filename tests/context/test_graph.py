"""Tests for agentrt.context.graph: imports resolved per language, references by name.

The repository is ``fixtures/polyglot`` (written for these tests), indexed as
``agentrt.context.select`` indexes a repository.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrt.context.compress import analyze
from agentrt.context.graph import RepoFiles, resolve_import, resolved_imports
from agentrt.context.relevance import RepoIndex, build_index, rank
from agentrt.context.select import select
from agentrt.context.sources import scan_repository
from agentrt.context.store import ContextStore

POLYGLOT = Path(__file__).parent / "fixtures" / "polyglot"


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> RepoIndex:
    store = ContextStore(tmp_path_factory.mktemp("store"))
    scan = scan_repository(POLYGLOT)
    return build_index(scan.root, scan, store)


def imported(index: RepoIndex, path: str) -> dict[str, float]:
    """Files that ``path`` imports, with the edge weights."""
    f = index.paths.index(path)
    row = index.imports.getrow(f)  # type: ignore[attr-defined]
    return {index.paths[c]: round(float(w), 3) for c, w in zip(row.indices, row.data, strict=True)}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # Go: an import path under go.mod's module is a folder: every file of the package.
        ("cmd/server/main.go", {"internal/cart/cart.go": 0.5, "internal/cart/total.go": 0.5}),
        # TypeScript: relative specifiers with extensions and index files.
        ("web/src/index.ts", {"web/src/api/index.ts": 1.0, "web/src/util/format.ts": 1.0}),
        ("web/src/api/index.ts", {"web/src/api/client.ts": 1.0}),
        ("web/src/components/CartView.tsx", {"web/src/api/client.ts": 1.0}),  # not 'react'
        # JavaScript: require() of a TypeScript file; a workspace package by package.json.
        ("web/legacy.js", {"web/src/util/format.ts": 1.0}),
        ("web/scripts/report.mjs", {"web/src/index.ts": 1.0}),
        # Rust: `mod x;`, `use crate::…`, `use super::…` (two imports of a file weigh 2).
        ("engine/src/lib.rs", {"engine/src/discount.rs": 2.0, "engine/src/tax/mod.rs": 1.0}),
        ("engine/src/tax/mod.rs", {"engine/src/tax/rates.rs": 1.0, "engine/src/discount.rs": 1.0}),
        # Java (and Kotlin, which imports Java classes) by package.
        (
            "java/src/main/java/com/shop/service/Checkout.java",
            {"java/src/main/java/com/shop/model/Item.java": 1.0},
        ),
        ("kotlin/Receipt.kt", {"java/src/main/java/com/shop/model/Item.java": 1.0}),
        # C/C++: the including file's folder first, then the tree.
        ("native/src/table.cpp", {"native/include/shop/hash.h": 1.0}),
        ("native/src/hash.c", {"native/include/shop/hash.h": 1.0}),
        ("ruby/lib/shop/invoice.rb", {"ruby/lib/shop/money.rb": 1.0}),
        # Imports of things outside the repository resolve to nothing.
        ("php/src/Models/Order.php", {}),
        ("csharp/Billing.cs", {}),
    ],
)
def test_imports_resolve_to_files(index: RepoIndex, path: str, expected: dict[str, float]) -> None:
    assert imported(index, path) == expected


def test_csharp_using_and_java_wildcard_name_packages() -> None:
    paths = ["a/Greeter.cs", "b/Program.cs", "x/A.java", "x/B.java", "y/Main.java"]
    texts = [
        "namespace Shop.Greeting { class Greeter {} }\n",
        "using Shop.Greeting;\nclass Program {}\n",
        "package p.q;\nclass A {}\n",
        "package p.q;\nclass B {}\n",
        "package y;\nimport p.q.*;\nimport p.q.B;\nclass Main {}\n",
    ]
    files = RepoFiles(paths, [analyze(p, t) for p, t in zip(paths, texts, strict=True)])
    assert resolve_import(files, 1, "Shop.Greeting") == [0]
    assert resolve_import(files, 4, "p.q.*") == [2, 3]
    assert resolve_import(files, 4, "p.q.B") == [3]
    # A package of more files than the limit names none of them, unless asked for all.
    assert resolve_import(files, 4, "p.q.*", limit=1) == []
    assert resolve_import(files, 4, "p.q.*", limit=None) == [2, 3]
    resolved = {(f, files.structures[f].imports[i]): t for f, i, t in resolved_imports(files)}
    assert resolved == {(1, "Shop.Greeting"): [0], (4, "p.q.*"): [2, 3], (4, "p.q.B"): [3]}


def test_workspace_crate_items_and_the_root_index_resolve() -> None:
    """``use other_crate::Item`` names that crate's root when no module file matches (an
    item defined or re-exported there); ``require('..')`` from a top folder, the root's
    index file."""
    paths = [
        "crates/matcher/Cargo.toml",
        "crates/matcher/src/lib.rs",
        "crates/search/Cargo.toml",
        "crates/search/src/lib.rs",
        "index.js",
        "examples/app.js",
    ]
    texts = [
        '[package]\nname = "grep-matcher"\n',
        "pub trait Matcher {}\n",
        '[package]\nname = "grep-search"\n',
        "use grep_matcher::Matcher;\n",
        "module.exports = {};\n",
        "const lib = require('..');\n",
    ]
    files = RepoFiles(paths, [analyze(p, t) for p, t in zip(paths, texts, strict=True)])
    assert resolve_import(files, 3, "grep_matcher::Matcher") == [1]
    assert resolve_import(files, 5, "..") == [4]


def test_include_picks_the_closest_of_same_named_headers() -> None:
    paths = ["lib/a/config.h", "lib/b/config.h", "lib/b/main.c", "tools/x/y.c"]
    texts = ["int a;\n", "int b;\n", '#include "config.h"\n', '#include "b/config.h"\n']
    files = RepoFiles(paths, [analyze(p, t) for p, t in zip(paths, texts, strict=True)])
    assert resolve_import(files, 2, "config.h") == [1]  # same folder
    assert resolve_import(files, 3, "b/config.h") == [1]  # by the path's tail


def test_swift_import_names_the_module_folder_of_swift_package_manager() -> None:
    paths = [
        "Package.swift",
        "Sources/Cart/Cart.swift",
        "Sources/Cart/Model/Item.swift",
        "Sources/App/main.swift",
        "Tests/CartTests/CartTests.swift",
    ]
    texts = [
        'import PackageDescription\nlet package = Package(name: "Shop")\n',
        "public struct Cart { var items: [Item] = [] }\n",
        "public struct Item { let price: Int }\n",
        "import Foundation\nimport struct Cart.Cart\nlet cart = Cart()\n",
        "import XCTest\n@testable import Cart\nfinal class CartTests: XCTestCase {}\n",
    ]
    files = RepoFiles(paths, [analyze(p, t) for p, t in zip(paths, texts, strict=True)])
    assert files.structures[3].imports == ["Foundation", "Cart.Cart"]
    assert resolve_import(files, 3, "Cart.Cart") == [1, 2]
    assert resolve_import(files, 3, "Foundation") == []  # a system module
    assert resolve_import(files, 4, files.structures[4].imports[1]) == [1, 2]


def referenced(index: RepoIndex, name: str) -> dict[str, float]:
    """Units that the unit ``name`` references, with weights."""
    k = next(
        k
        for k in range(len(index.unit_file))
        if index.unit(k)[1].name == name and index.unit(k)[1].kind != "declaration"
    )
    row = index.references.getrow(k)  # type: ignore[attr-defined]
    return {
        index.unit(int(c))[1].name: round(float(w), 3)
        for c, w in zip(row.indices, row.data, strict=True)
    }


def test_reference_graph_links_units_by_name(index: RepoIndex) -> None:
    assert referenced(index, "main.main") == {
        "cart.New": 1.0,
        "cart.Cart.AddItem": 1.0,
        "cart.Cart.Total": 1.0,
    }
    # The receiver's type is a reference too.
    assert referenced(index, "cart.Cart.Total") == {
        "cart.Cart": 1.0,
        "cart.applyBulkDiscount": 1.0,
    }
    assert referenced(index, "ApiClient.label") == {"formatPrice": 1.0}
    refs = referenced(index, "CartView")
    assert {"ApiClient", "ApiClient.fetchCart", "ApiClient.label"} <= set(refs)
    # Across files and languages' conventions: C++ calling a C function.
    assert referenced(index, "shop.PriceTable.lookup")["shop_hash"] == 1.0
    # A use refers to the definition, not to the prototype of a header (a unit too).
    lookup = next(
        k
        for k in range(len(index.unit_file))
        if index.unit(k)[1].name == "shop.PriceTable.lookup" and index.unit(k)[1].kind == "method"
    )
    targets = [index.unit(int(c)) for c in index.references.getrow(lookup).indices]  # type: ignore[attr-defined]
    assert ("native/src/hash.c", "function") in [(p, u.kind) for p, u in targets]
    # Rust: `Discount::new(rate).apply(cents)` and `tax::with_vat`.
    refs = referenced(index, "final_price")
    assert refs["Discount.apply"] == 1.0
    assert refs["with_vat"] == 1.0


def test_ambiguous_names_prefer_imported_files(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for package in ("a", "b"):
        (tmp_path / package / "util.go").write_text(
            f'package {package}\n\nfunc Render() string {{\n\treturn ""\n}}\n'
        )
    (tmp_path / "go.mod").write_text("module ex.com/m\n")
    (tmp_path / "main.go").write_text(
        'package main\n\nimport "ex.com/m/a"\n\nfunc main() {\n\ta.Render()\n}\n'
    )
    scan = scan_repository(tmp_path)
    index = build_index(scan.root, scan, ContextStore(tmp_path / ".store"))
    assert referenced(index, "main.main") == {"a.Render": 1.0}
    # Without an import to tell them apart, both candidates share the weight.
    (tmp_path / "main.go").write_text("package main\n\nfunc main() {\n\tRender()\n}\n")
    scan = scan_repository(tmp_path)
    index = build_index(scan.root, scan, ContextStore(tmp_path / ".store"))
    assert referenced(index, "main.main") == {"a.Render": 0.5, "b.Render": 0.5}


def test_test_windows_reference_what_they_test(tmp_path: Path) -> None:
    (tmp_path / "cart.go").write_text("package cart\n\nfunc AddItem() int {\n\treturn 1\n}\n")
    (tmp_path / "cart_test.go").write_text(
        "package cart\n\nfunc TestAddItem(t *testing.T) {\n\tAddItem()\n}\n"
    )
    scan = scan_repository(tmp_path)
    index = build_index(scan.root, scan, ContextStore(tmp_path / ".store"))
    assert referenced(index, "cart_test.go:1") == {"cart.AddItem": 1.0}


def test_file_graph_pagerank_sees_imports(index: RepoIndex) -> None:
    central = index.paths[int(index.centrality.argmax())]
    # The most imported and used files are central; a leaf script is not.
    assert (
        index.centrality[index.paths.index("web/src/util/format.ts")]
        > index.centrality[index.paths.index("web/scripts/report.mjs")]
    )
    assert central != "web/scripts/report.mjs"


# --------------------------------------------------------------------------- ranking


@pytest.mark.parametrize(
    ("query", "path", "unit"),
    [
        (
            "Cart.Total returns the wrong sum\nWith more than ten items the bulk discount "
            "is applied twice.",
            "internal/cart/total.go",
            "cart.Cart.Total",
        ),
        (
            "crate::discount::Discount::apply rounds down\nA 15% discount on 999 cents gives "
            "849 instead of 850.",
            "engine/src/discount.rs",
            "Discount.apply",
        ),
        (
            "fetchCart ignores the base URL\nApiClient requests /carts/me on the page's origin.",
            "web/src/api/client.ts",
            "ApiClient.fetchCart",
        ),
        (
            "`PriceTable::lookup` returns a negative bucket for long names",
            "native/src/table.cpp",
            "shop.PriceTable.lookup",
        ),
        (
            "thread 'main' panicked at engine/src/tax/mod.rs:5:5: attempt to multiply "
            "with overflow",
            "engine/src/tax/mod.rs",
            "with_vat",
        ),
        (
            "Checkout total is wrong\njava.lang.NullPointerException\n"
            "    at com.shop.service.Checkout.total(Checkout.java:11)",
            "java/src/main/java/com/shop/service/Checkout.java",
            "Checkout.total",
        ),
    ],
)
def test_rank_finds_the_unit_a_query_names(
    index: RepoIndex, query: str, path: str, unit: str
) -> None:
    ranking = rank(index, query)
    best_file = index.paths[int(ranking.file_scores.argmax())]
    best_path, best_unit = index.unit(int(ranking.unit_scores.argmax()))
    assert (best_file, best_path, best_unit.name) == (path, path, unit)


def test_select_delivers_the_named_go_function(tmp_path: Path) -> None:
    store = ContextStore(tmp_path / "store")
    selection = select(
        POLYGLOT, "applyBulkDiscount gives 10% off at exactly ten items", 300, store=store
    )
    spans = [(i.path, i.kind, i.text) for i in selection.items]
    assert spans[0][0] == "internal/cart/total.go"
    assert "func applyBulkDiscount(sum int, count int) int {" in spans[0][2]
    assert selection.tokens <= 300


def test_callee_boost_lifts_what_the_best_unit_uses(
    index: RepoIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = "Cart.Total is wrong for big carts"
    k = next(
        k for k in range(len(index.unit_file)) if index.unit(k)[1].name == "cart.applyBulkDiscount"
    )
    without = rank(index, query).unit_scores[k]
    monkeypatch.setattr("agentrt.context.relevance.W_UNIT_CALLEE", 0.3)
    assert rank(index, query).unit_scores[k] > without
