"""architecture_analysis beyond Python: Go, TypeScript, Rust, Java and C repositories written
here, read through the context manager's parse (agentrt.agents.builtin.module_graph)."""

from __future__ import annotations

from pathlib import Path

from agentrt.agents.agent_context import AgentContext
from agentrt.agents.builtin import architecture, context_gathering
from agentrt.agents.builtin.architecture import Input, LanguageGraph, run
from agentrt.agents.builtin.common import scan_files
from agentrt.agents.builtin.module_graph import language_graphs

from .conftest import RepoFactory
from .test_architecture import CYCLE_REPO


def edges(root: Path) -> dict[str, set[tuple[str, str, str, str, int]]]:
    """Per language: (importer, imported, kind, file, line) of every edge."""
    reading = language_graphs(scan_files(root))
    return {
        g.family: {
            (a, b, data["kind"], data["path"], data["line"])
            for a, b, data in g.graph.edges(data=True)
        }
        for g in reading.graphs
    }


def packages(out: architecture.Output) -> dict[str, tuple[int, list[str], bool]]:
    return {p.name: (p.layer, p.depends_on, p.in_cycle) for p in out.packages}


def externals(out: architecture.Output) -> set[tuple[str, bool, int]]:
    return {(e.name, e.stdlib, e.imported_by) for e in out.external_imports}


def entries(out: architecture.Output) -> list[tuple[str, str, str, str, int]]:
    return [(e.kind, e.name, e.target, e.path, e.line) for e in out.entry_points]


GO = {
    "go.mod": """
        module example.com/shop

        go 1.21

        require (
        \tgithub.com/google/uuid v1.3.0
        )
    """,
    "cmd/shop/main.go": """
        package main

        import (
        \t"fmt"

        \t"example.com/shop/internal/cart"
        )

        // main runs the shop.
        func main() {
        \tfmt.Println(cart.Total())
        }
    """,
    "internal/cart/cart.go": """
        package cart

        import (
        \t"github.com/google/uuid"
        \t"golang.org/x/text/language"

        \t"example.com/shop/internal/money"
        )

        func Total() money.Amount {
        \t_, _ = uuid.New(), language.English
        \treturn money.Amount(0)
        }
    """,
    "internal/cart/item.go": """
        package cart

        import "example.com/shop/internal/money"

        type Item struct{ Price money.Amount }
    """,
    "internal/money/money.go": """
        package money

        import (
        \t"fmt"
        \t"strings"
        )

        type Amount int

        func (a Amount) String() string { return strings.TrimSpace(fmt.Sprint(int(a))) }
    """,
    "internal/cart/cart_test.go": """
        package cart

        import "testing"

        func TestTotal(t *testing.T) {}
    """,
}


def test_go_packages_are_folders(make_repo: RepoFactory) -> None:
    root = make_repo(GO)
    assert edges(root) == {
        "go": {
            ("cmd/shop", "internal/cart", "runtime", "cmd/shop/main.go", 6),
            # Imported by both files of the package: the first import is the edge's.
            ("internal/cart", "internal/money", "runtime", "internal/cart/cart.go", 7),
        }
    }
    out = run(Input(repo=str(root)))
    assert out.summary == (
        "3 modules (Go: 3 packages), 2 internal imports, 3 packages, 0 import cycles, "
        "1 entry points, 4 external top-level imports"
    )
    assert out.languages == [
        LanguageGraph(
            language="go",
            name="Go",
            module="package (folder)",
            modules=3,
            files=4,
            edges=2,
            cycles_not_looked_for="Go's compiler rejects import cycles",
        )
    ]
    # `internal` holds two of the three packages: split into its folders.
    assert packages(out) == {
        "internal/money": (0, [], False),
        "internal/cart": (1, ["internal/money"], False),
        "cmd": (2, ["internal/cart"], False),
    }
    # Module paths from go.mod's require, else host/owner/repo; the standard library whole.
    assert externals(out) == {
        ("fmt", True, 2),
        ("strings", True, 1),
        ("github.com/google/uuid", False, 1),
        ("golang.org/x/text", False, 1),
    }
    assert entries(out) == [
        ("main_function", "cmd/shop", "go run ./cmd/shop", "cmd/shop/main.go", 10)
    ]
    [coverage] = out.language_coverage
    assert coverage.line == (
        "import graph (ast, tree-sitter): 4 Go files; skipped 1 file in Go (1, test code)"
    )
    hot = {h.module: (h.path, h.fan_in, h.fan_out, h.language) for h in out.hot_spots}
    assert hot["internal/cart"] == ("internal/cart", 1, 1, "go")
    md = architecture.render_markdown(out)
    assert "| Go | package (folder) | 3 | 4 | 2 | not looked for: Go's compiler" in md
    assert "- **Go**" not in md and "`github.com/google/uuid` (1)" in md


def test_go_cycles_are_not_reported_but_tie_packages(make_repo: RepoFactory) -> None:
    """Go's compiler rejects import cycles: one in the graph is not reported as a cycle,
    but the packages it ties show as a package cycle in the layers."""
    back = 'package money\n\nimport "example.com/shop/internal/cart"\n\nvar _ = cart.Item{}\n'
    cyclic = {**GO, "internal/money/back.go": back}
    out = run(Input(repo=str(make_repo(cyclic))))
    assert out.cycles == [] and out.findings == []
    assert packages(out)["internal/cart"] == (0, ["internal/money"], True)
    assert "Not looked for in Go (Go's compiler rejects import cycles)." in (
        architecture.render_markdown(out)
    )


TS = {
    "package.json": """
        {
          "name": "web",
          "main": "dist/index.js",
          "bin": {"web-cli": "bin/cli.js"}
        }
    """,
    "src/index.ts": """
        import { api } from "./api";
        import React from "react";

        export const app = () => api(React);
    """,
    "src/api.ts": """
        import axios from "axios";
        import type { Config } from "./config";
        import { format } from "./util/format";
        import { load } from "./lazy";

        export function api(x: unknown): string {
          return format(String(x)) + axios.name + load.name;
        }
    """,
    "src/util/format.ts": """
        import fs from "node:fs";
        import { api } from "../api";

        export function format(s: string): string {
          return s + api.name + fs.constants.F_OK;
        }
    """,
    "src/config.ts": """
        import { api } from "./api";

        export interface Config { name: string }
        export const check = api;
    """,
    "src/lazy.ts": """
        export async function load() {
          const { api } = await import("./api");
          return api;
        }
    """,
    "src/api.test.ts": """
        import { api } from "./api";

        test("api", () => api(1));
    """,
}


def test_typescript_files_kinds_and_a_cycle(make_repo: RepoFactory) -> None:
    root = make_repo(TS)
    assert edges(root) == {
        "javascript": {
            ("src/index.ts", "src/api.ts", "runtime", "src/index.ts", 1),
            ("src/api.ts", "src/config.ts", "type_checking", "src/api.ts", 2),
            ("src/api.ts", "src/util/format.ts", "runtime", "src/api.ts", 3),
            ("src/api.ts", "src/lazy.ts", "runtime", "src/api.ts", 4),
            ("src/util/format.ts", "src/api.ts", "runtime", "src/util/format.ts", 2),
            ("src/config.ts", "src/api.ts", "runtime", "src/config.ts", 1),
            ("src/lazy.ts", "src/api.ts", "deferred", "src/lazy.ts", 2),
        }
    }
    out = run(Input(repo=str(root)))
    assert out.edges_by_kind == {"runtime": 5, "deferred": 1, "type_checking": 1}
    # config ↔ api is no cycle (api imports config's types only), lazy ↔ api neither
    # (lazy imports api when called).
    [cycle] = out.cycles
    assert cycle.path == ["src/api.ts", "src/util/format.ts", "src/api.ts"]
    assert cycle.imports == ["src/api.ts:3", "src/util/format.ts:2"]
    assert cycle.language == "javascript"
    [finding] = out.findings
    assert (finding.rule, finding.location) == ("import-cycle", "src/api.ts:3")
    deferred = run(Input(repo=str(root), include_deferred_in_cycles=True))
    assert [c.modules for c in deferred.cycles] == [
        ["src/api.ts", "src/lazy.ts", "src/util/format.ts"]
    ]
    assert externals(out) == {("react", False, 1), ("axios", False, 1), ("fs", True, 1)}
    assert entries(out) == [
        ("package_bin", "web-cli", "bin/cli.js", "package.json", 4),
        ("package_main", "web", "dist/index.js", "package.json", 3),
    ]
    assert packages(out) == {"src": (0, ["src/util"], True), "src/util": (0, ["src"], True)}
    [coverage] = out.language_coverage
    assert coverage.line == (
        "import graph (ast, tree-sitter): 5 TypeScript files; skipped 1 file in TypeScript "
        "(1, test code)"
    )


def test_focus_on_a_gathered_typescript_file(make_repo: RepoFactory) -> None:
    """context_gathering's files placed in the graph, and the gathered items holding the
    imports the focus cites counted as the agent's context use."""
    root = make_repo(TS)
    gathered = context_gathering.run(
        context_gathering.Input(repo=str(root), task="format a string in format.ts", budget=4000)
    )
    assert gathered.files[0] == "src/util/format.ts"
    ctx = AgentContext(
        agent_id="architecture_analysis",
        version="1.0.0",
        step="architecture_analysis",
        workflow="code-analysis",
        params={},
        budget_tokens=None,
        attempt=1,
        upstream={"context_gathering": gathered},
    )
    out = run(Input(repo=str(root)), ctx)
    assert out.focus is not None
    assert out.focus.files == [f for f in gathered.files if f.endswith(".ts")]
    role = out.focus.modules[0]
    assert (role.module, role.package, role.language) == (
        "src/util/format.ts",
        "src/util",
        "javascript",
    )
    assert [(i.module, i.path, i.line, i.kind) for i in role.imports] == [
        ("src/api.ts", "src/util/format.ts", 2, "runtime")
    ]
    assert role.in_cycle and role.imported_by == ["src/api.ts"]
    # Cited with a line: each import (in the importing file) and each finding in focus.
    cited = [(i.path, i.line) for m in out.focus.modules for i in m.imports]
    cited += [(f.path, f.line) for f in out.focus.findings]
    citing = sum(
        item.tokens
        for item in gathered.items
        if any(p == item.path and item.start_line <= n <= item.end_line for p, n in cited)
    )
    assert ctx.tokens_delivered == sum(item.tokens for item in gathered.items)
    assert ctx.tokens_referenced == citing > 0


RUST = {
    "Cargo.toml": """
        [package]
        name = "shop-core"
        version = "0.1.0"
        edition = "2021"

        [dependencies]
        serde = "1"
    """,
    "src/lib.rs": """
        pub mod cart;
        mod money;

        pub use cart::Cart;
    """,
    "src/cart.rs": """
        use crate::money::Amount;
        use serde::Serialize;
        use std::fmt;

        #[derive(Serialize)]
        pub struct Cart {
            pub total: Amount,
        }
    """,
    "src/money.rs": "pub type Amount = u64;\n",
    "src/main.rs": """
        use shop_core::Cart;

        /// Runs the shop.
        fn main() {
            let _ = Cart { total: 0 };
        }
    """,
    "tests/cart.rs": "use shop_core::Cart;\n",
}


def test_rust_modules_of_a_crate(make_repo: RepoFactory) -> None:
    root = make_repo(RUST)
    # `mod money;` declares the module tree, not a dependency; `pub use cart::Cart` in lib.rs
    # names its child module; `use shop_core::Cart` the crate's root.
    assert edges(root) == {
        "rust": {
            ("shop_core::main", "shop_core", "runtime", "src/main.rs", 1),
            ("shop_core", "shop_core::cart", "runtime", "src/lib.rs", 4),
            ("shop_core::cart", "shop_core::money", "runtime", "src/cart.rs", 1),
        }
    }
    out = run(Input(repo=str(root)))
    assert packages(out) == {
        "shop_core::money": (0, [], False),
        "shop_core::cart": (1, ["shop_core::money"], False),
        "shop_core": (2, ["shop_core::cart"], False),
        "shop_core::main": (3, ["shop_core"], False),
    }
    assert externals(out) == {("serde", False, 1), ("std", True, 1)}
    assert entries(out) == [
        ("main_function", "shop-core", "cargo run --bin shop-core", "src/main.rs", 4)
    ]
    assert out.cycles == [] and out.languages[0].cycles_not_looked_for
    [coverage] = out.language_coverage
    assert coverage.line == (
        "import graph (ast, tree-sitter): 4 Rust files; skipped 1 file in Rust (1, test code)"
    )


JAVA = {
    "src/main/java/com/shop/model/Item.java": """
        package com.shop.model;

        public class Item {
            public int price;
        }
    """,
    "src/main/java/com/shop/service/Checkout.java": """
        package com.shop.service;

        import java.util.List;
        import com.shop.model.Item;
        import org.junit.Assert;
        import com.google.common.collect.ImmutableList;

        public class Checkout {
            /** Prints an item. */
            public static void main(String[] args) {
                System.out.println(List.of(new Item()));
            }
        }
    """,
    "src/test/java/com/shop/service/CheckoutTest.java": """
        package com.shop.service;

        import com.shop.model.Item;

        public class CheckoutTest {}
    """,
}


def test_java_classes_under_their_packages(make_repo: RepoFactory) -> None:
    root = make_repo(JAVA)
    assert edges(root) == {
        "java": {
            (
                "com.shop.service.Checkout",
                "com.shop.model.Item",
                "runtime",
                "src/main/java/com/shop/service/Checkout.java",
                4,
            )
        }
    }
    out = run(Input(repo=str(root)))
    assert packages(out) == {
        "com.shop.model": (0, [], False),
        "com.shop.service": (1, ["com.shop.model"], False),
    }
    # Java packages up to the class name, at most three parts (two for the JDK).
    assert externals(out) == {
        ("java.util", True, 1),
        ("org.junit", False, 1),
        ("com.google.common", False, 1),
    }
    assert entries(out) == [
        (
            "main_function",
            "com.shop.service.Checkout",
            "java com.shop.service.Checkout",
            "src/main/java/com/shop/service/Checkout.java",
            10,
        )
    ]
    [coverage] = out.language_coverage
    assert coverage.line == (
        "import graph (ast, tree-sitter): 2 Java files; skipped 1 file in Java (1, test code)"
    )


C = {
    "include/shop/money.h": """
        #ifndef MONEY_H
        #define MONEY_H
        #include <stdint.h>
        typedef int64_t amount;
        #endif
    """,
    "src/cart.h": """
        #ifndef CART_H
        #define CART_H
        #include "shop/money.h"
        #include "cart_impl.h"
        amount total(void);
        #endif
    """,
    "src/cart_impl.h": '#include "cart.h"\n',
    "src/cart.c": """
        #include "cart.h"
        #include <stdio.h>
        #include <zlib.h>

        amount total(void) { return 0; }
    """,
    "src/main.c": """
        #include "cart.h"

        int main(void)
        {
            return (int) total();
        }
    """,
}


def test_c_includes_between_files(make_repo: RepoFactory) -> None:
    root = make_repo(C)
    assert edges(root) == {
        "c": {
            ("src/cart.h", "include/shop/money.h", "runtime", "src/cart.h", 3),
            ("src/cart.h", "src/cart_impl.h", "runtime", "src/cart.h", 4),
            ("src/cart_impl.h", "src/cart.h", "runtime", "src/cart_impl.h", 1),
            ("src/cart.c", "src/cart.h", "runtime", "src/cart.c", 1),
            ("src/main.c", "src/cart.h", "runtime", "src/main.c", 1),
        }
    }
    out = run(Input(repo=str(root)))
    # An include cycle behind include guards is usual: not reported.
    assert out.cycles == []
    assert packages(out) == {"include": (0, [], False), "src": (1, ["include"], False)}
    assert externals(out) == {("stdint.h", True, 1), ("stdio.h", True, 1), ("zlib.h", False, 1)}
    assert entries(out) == [("main_function", "src/main.c", "src/main.c", "src/main.c", 3)]
    hot = {h.module: (h.fan_in, h.fan_out) for h in out.hot_spots}
    assert hot["src/cart.h"] == (3, 2)


def test_python_results_unchanged_beside_go(make_repo: RepoFactory) -> None:
    """A Python and Go repository: everything about Python is what Python alone gives."""
    alone = run(Input(repo=str(make_repo(CYCLE_REPO)), top_n=50))
    mixed = run(Input(repo=str(make_repo({**CYCLE_REPO, **GO})), top_n=50))

    def python(items: list) -> list:  # type: ignore[type-arg]
        return [i for i in items if i.language == "python"]

    assert python(mixed.packages) == alone.packages
    assert mixed.cycles == alone.cycles and mixed.findings == alone.findings
    assert python(mixed.hot_spots) == alone.hot_spots
    assert python(mixed.external_imports) == alone.external_imports
    go_entries = [e for e in mixed.entry_points if e.kind == "main_function"]
    assert [e for e in mixed.entry_points if e not in go_entries] == alone.entry_points
    assert mixed.languages[0] == alone.languages[0]
    assert [g.language for g in mixed.languages] == ["python", "go"]
    assert mixed.nodes == alone.nodes + 3 and mixed.edges == alone.edges + 2
    assert mixed.summary.startswith("13 modules (Python: 10 modules, Go: 3 packages), 11 ")
    assert alone.summary.startswith("10 modules, 9 internal imports, 2 packages,")
    [coverage] = mixed.language_coverage
    assert coverage.line == (
        "import graph (ast, tree-sitter): 14 files in Python (10), Go (4); skipped 1 file in "
        "Go (1, test code)"
    )
    md = architecture.render_markdown(mixed)
    assert "| Language | Layer | Package |" in md and "| Python | 0 | `pkg` |" in md


POLYGLOT = Path(__file__).parents[1] / "context" / "fixtures" / "polyglot"


def test_every_language_of_the_polyglot_fixture() -> None:
    """The context manager's twelve languages in one tree: each read, as its kind of module."""
    out = run(Input(repo=str(POLYGLOT)))
    assert sorted((g.language, g.module, g.modules, g.edges) for g in out.languages) == [
        ("c", "file", 3, 2),
        ("csharp", "namespace", 1, 0),
        ("go", "package (folder)", 2, 1),
        ("java", "class (file)", 3, 2),  # Java and Kotlin
        ("javascript", "file", 7, 7),  # JavaScript, TypeScript, TSX
        ("php", "class (file)", 1, 0),
        ("ruby", "file", 2, 1),
        ("rust", "module (file)", 4, 2),
        ("swift", "module", 1, 0),
    ]
    [coverage] = out.language_coverage
    assert coverage.files == 25 and coverage.skipped_files == 0
    found = edges(POLYGLOT)
    assert ("com.shop.receipt.Receipt", "com.shop.model.Item") in {
        (a, b) for a, b, *_ in found["java"]
    }  # a Kotlin class importing a Java one
    rust = (
        "pricing_engine::tax",
        "pricing_engine::discount",
        "runtime",
        "engine/src/tax/mod.rs",
        2,
    )
    assert rust in found["rust"]
    assert {p.name for p in out.packages if p.language in ("csharp", "php")} == {
        "Shop.Billing",
        "Shop\\Models",
    }
    assert sorted((e.language, e.name, e.stdlib) for e in out.external_imports) == [
        ("c", "stddef.h", True),
        ("c", "string", True),
        ("csharp", "System", True),
        ("go", "fmt", True),
        ("java", "java.util", True),
        ("javascript", "react", False),
        ("swift", "Foundation", True),
    ]
