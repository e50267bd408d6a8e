"""documentation_generation beyond Python: public API, signatures, summaries, coverage,
findings and focus in Go, Rust, Java, TypeScript/JavaScript and C/C++ headers, read from the
context manager's parse (the index ``context_gathering`` builds)."""

from __future__ import annotations

import json

import pytest

from agentrt.agents.agent_context import AgentContext
from agentrt.agents.builtin import context_gathering
from agentrt.agents.builtin.documentation import Input, ModuleDoc, Output, render_markdown, run

from .conftest import RepoFactory
from .test_documentation import REPO as PYTHON_REPO

GO = {
    "go.mod": "module example.com/shop\n\ngo 1.21\n",
    "doc.go": """
        // Package shop sells things.
        //
        // More about it.
        package shop
    """,
    "cart.go": """
        package shop

        import "fmt"

        // Cart holds items. It is not safe for concurrent use.
        type Cart struct {
        \titems []string
        }

        type (
        \t// Item is one thing in a cart.
        \tItem struct{ Name string }

        \tPrice int
        )

        // NewCart makes an empty cart.
        func NewCart() *Cart { return &Cart{} }

        func (c *Cart) Add(name string) {
        \tc.items = append(c.items, name)
        \tfmt.Println(name)
        }

        // Total sums the prices
        // of the items.
        func (c *Cart) Total(prices map[string]Price) Price {
        \treturn 0
        }

        func helper() {}

        func (c *Cart) reset() {}

        //go:noinline
        func Exported(a int,
        \tb int) (int, error) {
        \treturn a + b, nil
        }
    """,
    "cart_test.go": "package shop\n\nfunc TestCart(t *testing.T) {}\n",
    "internal/secret/secret.go": 'package secret\n\nfunc Key() string { return "" }\n',
    "cmd/shop/main.go": "package main\n\nfunc Run() {}\n\nfunc main() {}\n",
    "util/util.go": "package util\n\n// Helper helps.\nfunc Helper() {}\n",
    "util/more.go": "package util\n\nfunc More() {}\n",
}


def objects(module: ModuleDoc) -> list[tuple[str, str, bool]]:
    return [(o.kind, o.name, o.documented) for o in module.objects]


def by_path(out: Output) -> dict[str, ModuleDoc]:
    return {m.path: m for m in out.modules}


def test_go_exported_names_package_comments_and_findings(make_repo: RepoFactory) -> None:
    out = run(Input(repo=str(make_repo(GO))))
    modules = by_path(out)
    # doc.go holds the package comment: the package counts once, there.
    assert sorted(modules) == ["cart.go", "doc.go", "util/more.go", "util/util.go"]
    doc, cart = modules["doc.go"], modules["cart.go"]
    assert (doc.name, doc.language, doc.counted, doc.documented) == (
        "example.com/shop",
        "go",
        True,
        True,
    )
    assert doc.summary == "Package shop sells things."
    assert (doc.coverage.documented, doc.coverage.total) == (1, 1)
    assert (cart.name, cart.counted) == ("example.com/shop", False)
    assert objects(cart) == [
        ("struct", "Cart", True),
        ("struct", "Item", True),
        ("type", "Price", False),
        ("function", "NewCart", True),
        ("method", "Cart.Add", False),
        ("method", "Cart.Total", True),
        ("function", "Exported", False),  # a //go: directive is no doc comment
    ]
    assert (cart.coverage.documented, cart.coverage.total, cart.coverage.percent) == (4, 7, 57.1)
    found = {o.name: o for o in cart.objects}
    assert found["Cart"].signature == "type Cart struct"
    assert found["Cart"].summary == "Cart holds items."
    assert (found["Item"].signature, found["Item"].summary) == (
        "type Item struct",  # inside a type ( … ) group
        "Item is one thing in a cart.",
    )
    assert found["Price"].signature == "type Price int"
    assert found["Cart.Total"].signature == "func (c *Cart) Total(prices map[string]Price) Price"
    assert found["Cart.Total"].summary == "Total sums the prices of the items."
    assert found["Exported"].signature == "func Exported(a int, b int) (int, error)"
    assert (found["NewCart"].line, found["Cart.Total"].line) == (18, 27)

    # The util package has no comment: its file named after the folder carries the finding.
    assert (modules["util/util.go"].counted, modules["util/more.go"].counted) == (True, False)
    undocumented = {(f.path, f.line, f.rule, f.severity) for f in out.undocumented}
    assert undocumented == {
        ("cart.go", 14, "undocumented-type", "low"),
        ("cart.go", 20, "undocumented-method", "info"),
        ("cart.go", 36, "undocumented-function", "low"),
        ("util/util.go", 1, "undocumented-module", "info"),
        ("util/more.go", 3, "undocumented-function", "low"),
    }
    messages = {f.message for f in out.undocumented}
    assert "package `example.com/shop/util` has no package comment" in messages
    assert "public method `Cart.Add` in `example.com/shop` has no doc comment" in messages
    # Tests, internal packages and commands are not public API.
    [line] = [c.line for c in out.language_coverage]
    assert line == (
        "doc comments (tree-sitter): 4 Go files; skipped 3 files in Go "
        "(3, 2 not public API, 1 test code)"
    )
    assert out.files_analysed == 4
    assert out.summary.startswith("4 public modules (Go 4), 11 public objects")
    # The reference: one section per package, its files' objects under their sources.
    ref = out.reference_markdown
    assert ref.count("## `example.com/shop`\n") == 1
    assert ref.index("## `example.com/shop`\n\n_Source: `doc.go`_\n\nPackage shop sells") < (
        ref.index("_Source: `cart.go`_")
    )
    assert (
        "### `Cart.Total`\n\n```go\nfunc (c *Cart) Total(prices map[string]Price) Price\n```" in ref
    )


RUST = {
    "Cargo.toml": '[package]\nname = "my-crate"\nversion = "0.1.0"\n',
    "src/lib.rs": """
        //! A small crate.
        //!
        //! More about it.

        pub mod shapes;
        mod hidden;

        /// Adds two numbers.
        #[inline]
        #[must_use]
        pub fn add(a: i32, b: i32) -> i32 {
            a + b
        }

        pub(crate) fn internal() {}

        fn private() {}

        #[doc(hidden)]
        pub fn secret() {}
    """,
    "src/shapes.rs": """
        /// A circle.
        #[derive(Debug, Clone)]
        pub struct Circle {
            pub radius: f64,
        }

        impl Circle {
            /// Makes a circle
            /// of radius `r`.
            pub fn new(r: f64) -> Self {
                Circle { radius: r }
            }

            pub fn area(&self) -> f64 {
                3.14 * self.radius * self.radius
            }

            fn helper(&self) {}
        }

        impl std::fmt::Display for Circle {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "circle")
            }
        }

        /// Things with an area.
        pub trait Area {
            /// The area.
            fn area(&self) -> f64;
            fn name(&self) -> String;
        }
    """,
    "src/hidden.rs": "pub fn h() {}\n",
    "src/main.rs": "fn main() {}\n",
    "examples/demo.rs": "pub fn demo() {}\n",
    "tests/it.rs": "#[test]\nfn it() {}\n",
}


def test_rust_pub_items_impls_traits_and_module_docs(make_repo: RepoFactory) -> None:
    out = run(Input(repo=str(make_repo(RUST))))
    modules = by_path(out)
    assert sorted(modules) == ["src/hidden.rs", "src/lib.rs", "src/shapes.rs"]
    lib, shapes, hidden = modules["src/lib.rs"], modules["src/shapes.rs"], modules["src/hidden.rs"]
    assert (lib.name, lib.summary, lib.counted, lib.documented) == (
        "my_crate",
        "A small crate.",
        True,
        True,
    )
    # pub(crate), private and #[doc(hidden)] items are not public API.
    assert objects(lib) == [("function", "add", True)]
    [add] = lib.objects
    assert (add.signature, add.summary, add.line) == (
        "pub fn add(a: i32, b: i32) -> i32",
        "Adds two numbers.",
        11,
    )
    assert (shapes.name, shapes.counted, shapes.documented) == ("my_crate::shapes", True, False)
    # Trait implementations and private methods are left out; a pub trait's members count.
    assert objects(shapes) == [
        ("struct", "Circle", True),
        ("method", "Circle.new", True),
        ("method", "Circle.area", False),
        ("trait", "Area", True),
        ("method", "Area.area", True),
        ("method", "Area.name", False),
    ]
    found = {o.name: o for o in shapes.objects}
    assert found["Circle"].signature == "pub struct Circle"
    assert found["Circle.new"].summary == "Makes a circle of radius `r`."
    assert found["Area.area"].signature == "fn area(&self) -> f64"
    assert (shapes.coverage.documented, shapes.coverage.total) == (4, 7)
    # A private module's items still count (pub use may re-export them), not its docs.
    assert (hidden.counted, objects(hidden)) == (False, [("function", "h", False)])
    rules = sorted((f.path, f.rule) for f in out.undocumented)
    assert rules == [
        ("src/hidden.rs", "undocumented-function"),
        ("src/shapes.rs", "undocumented-method"),
        ("src/shapes.rs", "undocumented-method"),
        ("src/shapes.rs", "undocumented-module"),
    ]
    assert "public module `my_crate::shapes` has no `//!` docs" in {
        f.message for f in out.undocumented
    }
    assert out.language_coverage[0].line == (
        "doc comments (tree-sitter): 3 Rust files; skipped 3 files in Rust "
        "(3, 2 not public API, 1 test code)"
    )


JAVA = {
    "src/main/java/com/acme/Shop.java": """
        package com.acme;

        import java.util.List;

        /**
         * A shop that sells {@code Item}s. Second sentence.
         *
         * @author me
         */
        public class Shop implements Store {
            /** Creates a shop. */
            public Shop() {}

            /**
             * Finds an item by name, e.g. a book.
             * @param name the name
             */
            public Item find(String name) {
                return null;
            }

            public static <T> List<T> all(Class<T> type,
                                          int limit) throws Exception {
                return null;
            }

            @Override
            public String toString() { return "shop"; }

            void packagePrivate() {}

            private void hidden() {}

            /** Kinds of shops. */
            public enum Kind { BIG, SMALL }

            static class Helper {
                public void help() {}
            }
        }

        interface Store {
            Item find(String name);
        }
    """,
    "src/main/java/com/acme/Api.java": """
        package com.acme;

        /** What a client calls. */
        public interface Api {
            /** Pings. */
            void ping();

            int count();
        }
    """,
    "src/test/java/com/acme/ShopTest.java": "package com.acme;\n\npublic class ShopTest {}\n",
}


def test_java_public_types_and_members(make_repo: RepoFactory) -> None:
    out = run(Input(repo=str(make_repo(JAVA))))
    modules = by_path(out)
    shop = modules["src/main/java/com/acme/Shop.java"]
    api = modules["src/main/java/com/acme/Api.java"]
    assert (shop.name, shop.language, shop.counted) == ("com.acme", "java", False)
    # Constructors, @Override methods, package-private and private members, and the
    # members of a class that is not public are not public API.
    assert objects(shop) == [
        ("class", "Shop", True),
        ("method", "Shop.find", True),
        ("method", "Shop.all", False),
        ("enum", "Shop.Kind", True),
    ]
    found = {o.name: o for o in shop.objects}
    assert found["Shop"].signature == "public class Shop implements Store"
    assert found["Shop"].summary == "A shop that sells `Item`s."
    assert found["Shop.find"].summary == "Finds an item by name, e.g. a book."
    assert found["Shop.all"].signature == (
        "public static <T> List<T> all(Class<T> type, int limit) throws Exception"
    )
    # Java has no module docs here: the module is not counted.
    assert (shop.coverage.documented, shop.coverage.total) == (3, 4)
    # An interface's members are public without the keyword.
    assert objects(api) == [
        ("interface", "Api", True),
        ("method", "Api.ping", True),
        ("method", "Api.count", False),
    ]
    assert {(f.rule, f.line) for f in out.undocumented} == {
        ("undocumented-method", 22),
        ("undocumented-method", 8),
    }
    assert (out.coverage.documented, out.coverage.total) == (5, 7)
    assert out.language_coverage[0].line == (
        "doc comments (tree-sitter): 2 Java files; skipped 1 file in Java (1, test code)"
    )


TYPESCRIPT = {
    "src/cart.ts": """
        import { x } from './x';

        /**
         * A shopping cart.
         */
        export class Cart {
          /** Adds an item. */
          add(item: string): void {}

          private secret(): void {}

          remove(item: string): boolean {
            return true;
          }

          constructor() {}
        }

        /** Options of a cart. */
        export interface CartOptions {
          size(): number;
        }

        export type Id = string;

        /**
         * Makes a cart.
         * @param options the options
         */
        export function makeCart(
          options: CartOptions,
        ): Cart {
          return new Cart();
        }

        function local() {}

        /** @internal */
        export function internalThing() {}

        const helper = () => 1;
        export { helper };
    """,
    "src/cart.test.ts": "import { makeCart } from './cart';\n\ntest('x', () => {});\n",
    "lib/app.js": """
        'use strict';

        var app = exports = module.exports = {};

        /**
         * Start listening.
         *
         * @public
         */

        app.listen = function listen(port) {
          return port;
        };

        /**
         * Internal set-up.
         * @private
         */
        app.init = function init() {};

        function notExported() {}
    """,
}


def test_typescript_and_javascript_exports(make_repo: RepoFactory) -> None:
    out = run(Input(repo=str(make_repo(TYPESCRIPT))))
    modules = by_path(out)
    assert sorted(modules) == ["lib/app.js", "src/cart.ts"]
    cart = modules["src/cart.ts"]
    assert (cart.name, cart.language) == ("src/cart", "typescript")
    # private members, constructors, what is not exported and @internal are left out.
    assert objects(cart) == [
        ("class", "Cart", True),
        ("method", "Cart.add", True),
        ("method", "Cart.remove", False),
        ("interface", "CartOptions", True),
        ("method", "CartOptions.size", False),
        ("type", "Id", False),
        ("function", "makeCart", True),
        ("function", "helper", False),  # exported by `export { helper }`
    ]
    found = {o.name: o for o in cart.objects}
    assert found["Cart"].signature == "export class Cart"
    assert found["Cart.add"].signature == "add(item: string): void"
    assert found["Id"].signature == "export type Id = string"
    assert found["makeCart"].signature == "export function makeCart(options: CartOptions): Cart"
    assert found["makeCart"].summary == "Makes a cart."
    # JSDoc may stand apart from what it documents (express's style); @private hides.
    app = modules["lib/app.js"]
    assert objects(app) == [("method", "app.listen", True)]
    assert app.objects[0].signature == "app.listen = function listen(port)"
    assert app.objects[0].summary == "Start listening."
    assert out.language_coverage[0].line == (
        "doc comments (tree-sitter): 2 files in JavaScript (1), TypeScript (1); "
        "skipped 1 file in TypeScript (1, test code)"
    )


C_CPP = {
    "include/shop/shop.h": """
        #ifndef SHOP_H
        #define SHOP_H

        #include <stddef.h>

        /** A shop handle. */
        typedef struct shop_s shop_t;

        /* Opens a shop: returns NULL on failure. */
        shop_t *shop_open(const char *name,
                          size_t capacity);

        int shop_count(const shop_t *shop);

        static inline int shop_helper(void) { return 0; }

        #endif
    """,
    "src/shop.c": '#include "shop.h"\n\nint shop_count(const shop_t *s) { return 0; }\n',
    "include/shop/cart.hpp": """
        #pragma once
        #include <string>

        namespace shop {
        namespace detail {
        inline int secret() { return 1; }
        }  // namespace detail

        /// A cart of items.
        class Cart {
            int size_ = 0;
            void grow();

        public:
            /// Makes an empty cart.
            Cart();
            ~Cart();

            /// Adds an item; returns the new size.
            int add(const std::string& item);

            int size() const { return size_; }

            bool operator==(const Cart& other) const;

        protected:
            void hook();

        public:
            /// Ways to pay.
            struct Payment {
                std::string method;
                /// Charges the payment.
                bool charge(int cents);
            };
        };

        /// Total of a cart.
        int total(const Cart& cart);

        namespace {
        int hidden() { return 0; }
        }

        inline int Cart::add(const std::string& item) { return ++size_; }
        }  // namespace shop
    """,
}


def test_c_and_cpp_headers_public_declarations(make_repo: RepoFactory) -> None:
    out = run(Input(repo=str(make_repo(C_CPP))))
    modules = by_path(out)
    assert sorted(modules) == ["include/shop/cart.hpp", "include/shop/shop.h"]
    header = modules["include/shop/shop.h"]
    assert (header.name, header.language) == ("include/shop/shop.h", "c")
    # static functions have internal linkage: not API.
    assert objects(header) == [
        ("type", "shop_t", True),
        ("function", "shop_open", True),
        ("function", "shop_count", False),
    ]
    found = {o.name: o for o in header.objects}
    assert found["shop_open"].signature == "shop_t *shop_open(const char *name, size_t capacity)"
    assert found["shop_open"].summary == "Opens a shop: returns NULL on failure."
    assert found["shop_t"].summary == "A shop handle."

    cart = modules["include/shop/cart.hpp"]
    # Private and protected members, detail and anonymous namespaces, constructors,
    # destructors and operators are left out; the out-of-line definition of Cart::add is
    # the declaration's object.
    assert objects(cart) == [
        ("class", "shop.Cart", True),
        ("method", "shop.Cart.add", True),
        ("method", "shop.Cart.size", False),
        ("struct", "shop.Cart.Payment", True),
        ("method", "shop.Cart.Payment.charge", True),
        ("function", "shop.total", True),
    ]
    found = {o.name: o for o in cart.objects}
    assert found["shop.Cart.add"].signature == "int add(const std::string& item)"
    assert found["shop.Cart.add"].summary == "Adds an item; returns the new size."
    assert found["shop.Cart.size"].signature == "int size() const"
    assert found["shop.Cart.Payment"].signature == "struct Payment"
    assert {(f.path, f.rule, f.severity) for f in out.undocumented} == {
        ("include/shop/shop.h", "undocumented-function", "low"),
        ("include/shop/cart.hpp", "undocumented-method", "info"),
    }
    # Sources hold no public API: only headers are read.
    assert out.language_coverage[0].line == (
        "doc comments (tree-sitter): 2 files in C (1), C++ (1); "
        "skipped 1 file in C (1, not a header)"
    )
    md = render_markdown(out)
    assert "```cpp\nint add(const std::string& item)\n```" in md
    assert "```c\nshop_t *shop_open(const char *name, size_t capacity)\n```" in md


def test_python_results_unchanged_next_to_go(make_repo: RepoFactory) -> None:
    alone = run(Input(repo=str(make_repo(PYTHON_REPO))))
    mixed = run(Input(repo=str(make_repo({**PYTHON_REPO, **GO}))))

    def python(out: Output) -> tuple[str, str]:
        modules = [m.model_dump(mode="json") for m in out.modules if m.language == "python"]
        findings = [f.model_dump(mode="json") for f in out.undocumented if f.path.endswith(".py")]
        return json.dumps(modules), json.dumps(findings)

    assert python(alone) == python(mixed)
    assert [m.language for m in alone.modules] == ["python"] * 3
    assert {m.language for m in mixed.modules} == {"python", "go"}
    # Python alone reads as before; next to Go, one line tells both.
    assert alone.language_coverage[0].line.startswith("docstrings (ast): 3 Python files;")
    assert alone.summary.startswith("3 public modules, 9 public objects (modules included)")
    assert mixed.language_coverage[0].line.startswith(
        "docstrings (ast), doc comments (tree-sitter): 7 files in Go (4), Python (3); "
    )
    # Go: package, Cart, Item, NewCart, Cart.Total, Helper documented, of 11.
    assert (mixed.coverage.documented, mixed.coverage.total) == (5 + 6, 9 + 11)


def test_focus_on_gathered_go_file(make_repo: RepoFactory) -> None:
    """After context_gathering, the focus is the API of the gathered files, in any language,
    and the gathered items holding documented objects are the agent's context use."""
    root = make_repo(GO)
    gathered = context_gathering.run(
        context_gathering.Input(repo=str(root), task="Cart Total sums the prices", budget=2000)
    )
    assert gathered.files[0] == "cart.go"
    ctx = AgentContext("documentation_generation", "1", "docs", "wf", {}, None, 1)
    ctx.upstream = {"context_gathering": gathered}
    out = run(Input(repo=str(root)), ctx)
    assert out.focus is not None
    # The gathered files that are public modules (cart_test.go is test code), in order.
    modules = {m.path for m in out.modules}
    assert out.focus.files == [f for f in gathered.files if f in modules]
    assert out.focus.modules[0].path == "cart.go"
    assert [(f.path, f.line) for f in out.focus.findings][:3] == [
        ("cart.go", 14),
        ("cart.go", 20),
        ("cart.go", 36),
    ]
    assert ctx.tokens_delivered == gathered.tokens
    assert ctx.tokens_referenced is not None and ctx.tokens_referenced > 0


@pytest.mark.parametrize("fixture", [GO, RUST, JAVA, TYPESCRIPT, C_CPP])
def test_deterministic(make_repo: RepoFactory, fixture: dict[str, str]) -> None:
    root = make_repo(fixture)
    first, second = run(Input(repo=str(root))), run(Input(repo=str(root)))
    assert first.model_dump(mode="json") == second.model_dump(mode="json")


def test_test_code_and_internal_packages_on_request(make_repo: RepoFactory) -> None:
    """The index keeps tests as line windows: asked for, they are parsed here."""
    root = make_repo(GO)
    out = run(Input(repo=str(root), include_tests=True, include_private=True))
    modules = by_path(out)
    assert objects(modules["cart_test.go"]) == [("function", "TestCart", False)]
    assert objects(modules["internal/secret/secret.go"]) == [("function", "Key", False)]
    assert objects(modules["cmd/shop/main.go"]) == [("function", "Run", False)]
