"""Tests for agentrt.context.syntax: units, skeletons and imports from tree-sitter grammars.

Most inputs are the files of ``fixtures/polyglot``, a small repository written for these
tests in twelve languages; a few edge cases are inline.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentrt.context.compress import FileStructure, analyze, skeleton
from agentrt.context.syntax import LANGUAGES, grammar_available, syntax_language

POLYGLOT = Path(__file__).parent / "fixtures" / "polyglot"


def structure_of(path: str) -> tuple[str, FileStructure]:
    text = (POLYGLOT / path).read_text()
    return text, analyze(path, text)


def units(structure: FileStructure) -> list[tuple[str, str, int, int]]:
    """(kind, name, start, end) of every unit but blocks and windows."""
    return [
        (u.kind, u.name, u.start_line, u.end_line)
        for u in structure.units
        if u.kind not in ("block", "window")
    ]


def test_every_grammar_loads() -> None:
    for suffix, spec in LANGUAGES.items():
        assert grammar_available(spec), f"no grammar for {suffix} ({spec.module})"


def test_header_language_by_content() -> None:
    assert syntax_language("a.h", b"int f(void);\n").name == "c"
    assert syntax_language("a.h", b"namespace x {\nclass A {};\n}\n").name == "cpp"
    assert syntax_language("a.hpp", b"").name == "cpp"
    assert syntax_language("notes.txt") is None
    assert syntax_language("dir.go/README") is None


# --------------------------------------------------------------------------- units


def test_go_units_qualified_by_package_and_receiver() -> None:
    _, cart = structure_of("internal/cart/cart.go")
    assert (cart.language, cart.module) == ("go", "cart")
    assert units(cart) == [
        ("struct", "cart.Cart", 4, 8),  # from its doc comment
        ("struct", "cart.item", 10, 13),
        ("function", "cart.New", 15, 18),
        ("method", "cart.Cart.AddItem", 20, 23),
    ]
    _, total = structure_of("internal/cart/total.go")
    assert units(total) == [
        ("method", "cart.Cart.Total", 3, 10),
        ("function", "cart.applyBulkDiscount", 12, 17),
    ]


def test_typescript_units() -> None:
    _, client = structure_of("web/src/api/client.ts")
    assert units(client) == [
        ("class", "ApiClient", 3, 4),  # header up to the first member, as a Python class
        ("method", "ApiClient.constructor", 5, 5),
        ("method", "ApiClient.fetchCart", 7, 12),
        ("method", "ApiClient.label", 14, 16),
    ]
    _, fmt = structure_of("web/src/util/format.ts")
    assert units(fmt) == [
        ("type", "Currency", 1, 1),
        ("interface", "PriceOptions", 3, 6),
        ("function", "formatPrice", 8, 11),
    ]


def test_tsx_component_defined_by_a_variable() -> None:
    _, view = structure_of("web/src/components/CartView.tsx")
    assert view.language == "typescript"
    assert units(view) == [("function", "CartView", 4, 10)]


def test_javascript_units_and_requires() -> None:
    text = textwrap.dedent(
        """\
        const path = require('path');
        class Router {
          handle(req) {
            return dispatch(req);
          }
        }
        Router.prototype.use = function (fn) {
          this.stack.push(fn);
        };
        export default function createApp() {
          return new Router();
        }
        const helpers = {
          a: 1,
          b: 2,
        };
        const lazy = () => import('./lazy.js');
        """
    )
    structure = analyze("lib/router.js", text)
    assert structure.language == "javascript"
    assert units(structure) == [
        ("class", "Router", 2, 2),
        ("method", "Router.handle", 3, 5),
        ("method", "Router.use", 7, 9),
        ("function", "createApp", 10, 12),
        ("variable", "helpers", 13, 16),
        ("function", "lazy", 17, 17),
    ]
    assert structure.imports == ["path", "./lazy.js"]


def test_rust_units_impl_methods_belong_to_the_type() -> None:
    _, discount = structure_of("engine/src/discount.rs")
    assert units(discount) == [
        ("struct", "Discount", 1, 5),  # doc comment and #[derive] included
        ("impl", "Discount", 7, 7),
        ("method", "Discount.new", 8, 10),
        ("method", "Discount.apply", 12, 15),
        ("trait", "Pricing", 18, 18),
        ("method", "Pricing.price", 19, 19),
    ]


def test_java_units_and_package() -> None:
    _, checkout = structure_of("java/src/main/java/com/shop/service/Checkout.java")
    assert checkout.module == "com.shop.service"
    assert units(checkout) == [
        ("class", "Checkout", 6, 6),
        ("method", "Checkout.total", 7, 14),
        ("enum", "Checkout.Mode", 16, 16),
    ]


def test_c_units() -> None:
    _, header = structure_of("native/include/shop/hash.h")
    assert header.language == "c"
    assert units(header) == [
        ("declaration", "shop_hash", 6, 7),  # a prototype, from its comment
        ("struct", "hash_config", 9, 12),  # a typedef'd struct
    ]
    assert header.definitions == ["hash_config"]  # a prototype defines nothing
    _, source = structure_of("native/src/hash.c")
    assert units(source) == [("function", "shop_hash", 5, 12)]


def test_cpp_units_namespaces_and_out_of_class_methods() -> None:
    _, table = structure_of("native/src/table.cpp")
    assert (table.language, table.module) == ("cpp", "shop")
    assert units(table) == [
        ("namespace", "shop", 4, 5),
        ("class", "shop.PriceTable", 6, 14),
        ("declaration", "shop.PriceTable.PriceTable", 9, 9),  # declared in the class
        ("declaration", "shop.PriceTable.lookup", 10, 10),
        ("method", "shop.PriceTable.PriceTable", 16, 16),
        ("method", "shop.PriceTable.lookup", 18, 20),
    ]
    text = textwrap.dedent(
        """\
        namespace a { namespace b {
        template <typename T>
        struct Box {
          T get() const { return value; }
          T value;
        };
        }}
        #define SQUARE(x) ((x) * (x))
        """
    )
    structure = analyze("box.hpp", text)
    assert units(structure) == [
        ("namespace", "a.b", 1, 1),
        ("namespace", "a", 1, 1),
        ("struct", "a.b.Box", 2, 3),  # the template line belongs to the struct
        ("method", "a.b.Box.get", 4, 4),
        ("macro", "SQUARE", 8, 8),
    ]
    # Lines outside every definition are blocks, so every line of code is in some unit.
    assert ("block", 5, 5) in [(u.kind, u.start_line, u.end_line) for u in structure.units]


def test_c_function_split_by_ifdef_is_recovered() -> None:
    # Each branch of the #ifdef opens a brace: the grammar gives up on the function and
    # on what follows it (one ERROR node); the function is still a unit, and so is the
    # table after it.
    text = textwrap.dedent(
        """\
        #include "x.h"

        /* Compresses src into dst. */
        ZSTDLIB_API size_t compress(void* dst, size_t cap,
                                    const void* src, size_t size)
        {
            int x = 1;
        #ifdef FAST
            if (x) {
        #else
            if (!x) {
        #endif
                x++;
            }
            return x;
        }

        static const int table[] = {
            1, 2, 3,
            4, 5, 6,
        };

        int after(void) { return 0; }
        """
    )
    structure = analyze("lib/compress.c", text)
    assert units(structure) == [
        ("function", "compress", 3, 16),
        ("variable", "table", 18, 21),
        ("function", "after", 23, 23),
    ]
    assert structure.definitions == ["compress", "table", "after"]


def test_c_prototypes_and_tables_are_named_units() -> None:
    text = textwrap.dedent(
        """\
        /*! frame_size() :
         * @return : size of the frame header, or an error code */
        API_EXPORT size_t frame_size(const void* src,
                                     size_t size);

        // the default level
        #define LEVEL 3

        int (*hook)(int);
        """
    )
    structure = analyze("lib/frame.h", text)
    assert units(structure) == [("declaration", "frame_size", 1, 4)]
    assert structure.definitions == []
    # Macros the grammar does not know, on the lines above the prototype, are part of it.
    text = (
        '/*! old_size() : deprecated */\nDEPRECATED("use frame_size")\n'
        "API_EXPORT\nsize_t old_size(void);\n"
    )
    assert units(analyze("lib/frame.h", text)) == [("declaration", "old_size", 1, 4)]
    # A pointer to a function is a variable, not a prototype; the comment right above a
    # statement outside every unit belongs to its block.
    blocks = [(u.start_line, u.end_line) for u in structure.units if u.kind == "block"]
    assert blocks == [(6, 9)]


def test_c_units_inside_an_extern_c_guard() -> None:
    # A C header's C++ guard wraps everything in ``extern "C" {``; the C grammar parses it
    # as a linkage specification, whose declarations are the header's units (zstd.h had
    # none before this: one block of 3,000 lines).
    text = textwrap.dedent(
        """\
        #if defined (__cplusplus)
        extern "C" {
        #endif

        /** Compresses src into dst. */
        int z_compress(void* dst, const void* src);

        int z_level(void) { return 3; }

        #if defined (__cplusplus)
        }
        #endif
        """
    )
    structure = analyze("lib/z.h", text)
    assert structure.language == "c"
    assert units(structure) == [
        ("declaration", "z_compress", 5, 6),
        ("function", "z_level", 8, 8),
    ]
    assert structure.definitions == ["z_level"]
    assert "int z_compress(void* dst, const void* src);" in skeleton(text, structure)


def test_a_licence_or_long_module_doc_does_not_join_the_block_below() -> None:
    licence = "".join(f" * licence line {n}\n" for n in range(12))
    java = (
        "/*\n" + licence + " */\npackage org.shop;\n\nimport java.util.List;\n"
        "import java.util.Map;\n\nclass Cart {}\n"
    )
    blocks = [(u.start_line, u.end_line) for u in analyze("Cart.java", java).units
              if u.kind == "block"]  # fmt: skip
    assert blocks == [(15, 18)]  # package and imports; the licence (lines 1-14) apart
    docs = "".join(f"//! crate docs, line {n}\n" for n in range(20))
    rust = docs + "#![deny(missing_docs)]\nuse std::fmt;\n\npub fn f() {}\n"
    blocks = [(u.start_line, u.end_line) for u in analyze("src/lib.rs", rust).units
              if u.kind == "block"]  # fmt: skip
    assert blocks == [(21, 22)]
    # A short comment above a statement further down still joins it.
    c = "int f(void) { return 0; }\n\n// the default level\nstatic int level = 3;\n"
    blocks = [(u.start_line, u.end_line) for u in analyze("lib/level.c", c).units
              if u.kind == "block"]  # fmt: skip
    assert blocks == [(3, 4)]


def test_cpp_member_declarations_are_units_of_their_class() -> None:
    text = textwrap.dedent(
        """\
        namespace json {
        class document {
        public:
          /** The root element. */
          element root() const noexcept;
          operator array() const noexcept(false);
          int size() const { return n; }
          int n;
        };
        }
        """
    )
    structure = analyze("include/document.h", text)
    assert units(structure) == [
        ("namespace", "json", 1, 1),
        ("class", "json.document", 2, 6),  # up to its first member definition
        ("declaration", "json.document.root", 4, 5),
        ("declaration", "json.document.operatorarray", 6, 6),
        ("method", "json.document.size", 7, 7),
    ]


def test_unknown_macro_before_a_member_keeps_its_comment() -> None:
    # ``inline_macro T<U> f(…);`` reads as a field ``inline_macro T<U>`` (missing its `;`)
    # then a declaration of ``f`` on the same line: the doc comment is still f's.
    text = textwrap.dedent(
        """\
        class document {
        public:
          /**
           * The value at a JSON pointer.
           */
          really_inline result<value> at_pointer(std::string_view pointer) noexcept;
        };
        """
    )
    structure = analyze("include/document.h", text)
    assert ("declaration", "document.at_pointer", 3, 6) in units(structure)


def test_other_languages_units() -> None:
    expected = {
        "csharp/Billing.cs": [
            ("namespace", "Shop.Billing", 3, 4),
            ("class", "Shop.Billing.InvoiceService", 5, 9),
            ("method", "Shop.Billing.InvoiceService.Gross", 10, 13),
        ],
        "ruby/lib/shop/invoice.rb": [
            ("module", "Shop", 3, 4),
            ("class", "Shop.Invoice", 5, 5),
            ("method", "Shop.Invoice.initialize", 6, 8),
            ("method", "Shop.Invoice.total_cents", 10, 12),
        ],
        "php/src/Models/Order.php": [
            ("class", "Shop.Models.Order", 6, 10),
            ("method", "Shop.Models.Order.total", 11, 14),
        ],
        "kotlin/Receipt.kt": [
            ("class", "Receipt", 5, 5),
            ("method", "Receipt.print", 6, 8),
            ("function", "emptyReceipt", 11, 11),
        ],
        "swift/Wallet.swift": [
            ("class", "Wallet", 3, 6),
            ("method", "Wallet.canPay", 7, 9),
        ],
    }
    for path, want in expected.items():
        _, structure = structure_of(path)
        assert structure.parsed, path
        assert units(structure) == want, path


def test_definitions_are_the_qualified_names_of_definition_units() -> None:
    _, cart = structure_of("internal/cart/cart.go")
    assert cart.definitions == ["cart.Cart", "cart.item", "cart.New", "cart.Cart.AddItem"]
    _, table = structure_of("native/src/table.cpp")
    assert "shop" not in table.definitions  # namespaces qualify names, they define none


def test_long_function_also_gets_windows() -> None:
    body = "".join(f"    x{i} := {i}\n" for i in range(120))
    text = f"package p\n\nfunc Long() {{\n{body}}}\n"
    structure = analyze("long.go", text)
    kinds = [(u.kind, u.name) for u in structure.units]
    assert ("function", "p.Long") in kinds
    assert sum(1 for u in structure.units if u.kind == "window") >= 3


# --------------------------------------------------------------------------- skeletons


@pytest.mark.parametrize(
    ("path", "kept", "elided"),
    [
        (
            "internal/cart/total.go",
            ["// Total sums the cart", "func (c *Cart) Total() int {"],
            ["sum += it.cents"],
        ),
        (
            "web/src/api/client.ts",
            [
                "/** Talks to the shop's HTTP API. */",
                "export class ApiClient {",
                "async fetchCart(userId: string): Promise<number> {",
            ],
            ["await response.json()"],
        ),
        (
            "engine/src/discount.rs",
            ["#[derive(Debug, Clone)]", "percent: u8,", "pub fn apply(&self, cents: u64) -> u64 {"],
            ["self.percent as u64"],
        ),
        (
            "java/src/main/java/com/shop/service/Checkout.java",
            ["import com.shop.model.Item;", "public long total(List<Item> items) {"],
            ["sum += item.getPriceCents()"],
        ),
        (
            "native/src/table.cpp",
            [
                "class PriceTable {",
                "long lookup(const std::string& name) const;",
                "}  // namespace",
            ],
            ["static_cast<long>"],
        ),
        ("native/src/hash.c", ["unsigned long shop_hash(const char *key, size_t len)"], ["^"]),
        ("ruby/lib/shop/invoice.rb", ["def total_cents", "  end"], ["@lines.sum"]),
        ("kotlin/Receipt.kt", ["fun print(items: List<Item>): String {"], ["joinToString"]),
    ],
)
def test_skeleton_keeps_signatures_and_elides_bodies(
    path: str, kept: list[str], elided: list[str]
) -> None:
    text, structure = structure_of(path)
    outline = skeleton(text, structure)
    for line in kept:
        assert line in outline, (line, outline)
    for line in elided:
        assert line not in outline, (line, outline)
    assert "...  # lines " in outline  # the same markers as Python's skeletons


def test_tests_keep_line_windows() -> None:
    text = "package cart\n\nfunc TestTotal(t *testing.T) {\n\tNew().Total()\n}\n"
    assert analyze("internal/cart/cart.go", text).language == "go"
    for path in ("internal/cart/cart_test.go", "web/src/a.test.ts", "src/test/java/ATest.java"):
        structure = analyze(path, text)
        assert not structure.parsed and [u.kind for u in structure.units] == ["window"], path


def test_broken_code_still_gives_units() -> None:
    text = "func Good() {\n}\n\nfunc Broken( {\n\nfunc Later() int {\n  return 1\n}\n"
    structure = analyze("x.go", text)
    assert structure.parsed
    assert "Good" in [u.name for u in structure.units]


# --------------------------------------------------------------------------- imports


def test_imports_as_written() -> None:
    cases = {
        "cmd/server/main.go": ["fmt", "example.com/shop/internal/cart"],
        "web/src/index.ts": ["./api", "./util/format"],
        "web/legacy.js": ["./src/util/format"],
        "engine/src/lib.rs": ["mod:discount", "mod:tax", "crate::discount::Discount"],
        "java/src/main/java/com/shop/service/Checkout.java": [
            "java.util.List",
            "com.shop.model.Item",
        ],
        "native/src/table.cpp": ["../include/shop/hash.h", "string"],
        "csharp/Billing.cs": ["System"],
        "ruby/lib/shop/invoice.rb": ["./money"],
        "php/src/Models/Order.php": ["Shop\\Support\\Money"],
        "kotlin/Receipt.kt": ["com.shop.model.Item"],
    }
    for path, want in cases.items():
        assert structure_of(path)[1].imports == want, path


def test_rust_use_lists_expand() -> None:
    text = "use crate::a::{b, c::D};\nuse super::e as f;\n"
    imports = analyze("src/x.rs", text).imports
    assert imports == ["crate::a", "crate::a::b", "crate::a::c::D", "super::e"]


def test_import_lines_and_kinds() -> None:
    """Each import's line (an import block's paths each at theirs; the first of repeats),
    and TypeScript's type-only and JavaScript's dynamic imports told apart."""
    go = 'package a\n\nimport (\n\t"fmt"\n\n\tx "example.com/m/b"\n)\nimport "os"\n'
    structure = analyze("a/a.go", go)
    assert list(zip(structure.imports, structure.import_lines, strict=True)) == [
        ("fmt", 4),
        ("example.com/m/b", 6),
        ("os", 8),
    ]
    ts = textwrap.dedent(
        """\
        import type { A } from "./a";
        import { type B, C } from "./b";
        import { type D } from "./d";
        export type { E } from "./e";
        export { F } from "./f";
        const x = require("./x");
        export async function load() {
          const y = require("./y");
          return import("./z");
        }
        import { A2 } from "./a";
        import type from "./t";
        """
    )
    structure = analyze("web/src/m.ts", ts)
    lines = dict(zip(structure.imports, structure.import_lines, strict=True))
    assert lines == {
        "./a": 1, "./b": 2, "./d": 3, "./e": 4, "./f": 5, "./t": 12, "./x": 6, "./y": 8,
        "./z": 9,
    }  # fmt: skip
    # "./a" is also imported as a value (line 11): a plain import. `import type from` is a
    # default import named `type`.
    assert structure.import_kinds == {
        "./d": "type",
        "./e": "type",
        "./y": "dynamic",
        "./z": "dynamic",
    }
    rust = analyze("src/x.rs", "mod b;\nuse crate::a::{b,\n    c::D};\n")
    assert rust.import_lines == [1, 2, 2, 2]
    python = analyze("pkg/m.py", "import os\nfrom . import a, b\n\n\ndef f():\n    import json\n")
    assert list(zip(python.imports, python.import_lines, strict=True)) == [
        ("os", 1), (".", 2), (".a", 2), (".b", 2), ("json", 6),
    ]  # fmt: skip


# --------------------------------------------------------------------------- no download


def test_parsing_needs_no_network(tmp_path: Path) -> None:
    """Every grammar loads and parses with every socket refused (nothing is downloaded)."""
    samples = {
        "a.js": "function f() {}\n",
        "a.ts": "export function f(): void {}\n",
        "a.tsx": "export const A = () => <div/>;\n",
        "a.go": "package a\nfunc F() {}\n",
        "a.rs": "fn f() {}\n",
        "A.java": "class A { void f() {} }\n",
        "a.c": "int f(void) { return 0; }\n",
        "a.cpp": "namespace n { int f() { return 0; } }\n",
        "a.cs": "class A { void F() {} }\n",
        "a.rb": "def f; end\n",
        "a.php": "<?php function f() {}\n",
        "a.kt": "fun f() {}\n",
        "a.swift": "func f() {}\n",
    }
    script = textwrap.dedent(
        """\
        import json, socket, sys

        def refuse(*args, **kwargs):
            raise OSError("network is off in this test")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse

        from agentrt.context.compress import analyze

        samples = json.loads(sys.argv[1])
        out = {}
        for path, text in samples.items():
            structure = analyze(path, text)
            out[path] = [structure.language, [u.kind for u in structure.units]]
        print(json.dumps(out))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(samples)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    for path in samples:
        language, kinds = out[path]
        assert language, f"{path} was not parsed"
        assert "function" in kinds or "method" in kinds, (path, kinds)
