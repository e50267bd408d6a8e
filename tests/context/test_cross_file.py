"""Cross-file ranking: which files an issue's words point to (agentrt.context.relevance).

Each test writes a small repository of its own, indexes it as ``select`` does and checks
the ranking of files for an issue-like query.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agentrt.context.relevance import (
    TEMPLATE_PRIOR,
    RepoIndex,
    build_index,
    find_mentions,
    rank,
    template_priors,
)
from agentrt.context.sources import scan_repository
from agentrt.context.store import ContextStore


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def index_of(tmp_path: Path, files: dict[str, str]) -> RepoIndex:
    repo = tmp_path / "repo"
    write(repo, files)
    scan = scan_repository(repo)
    return build_index(scan.root, scan, ContextStore(tmp_path / "store"))


def ranked(index: RepoIndex, query: str) -> list[str]:
    scores = rank(index, query).file_scores
    return [index.paths[f] for f in np.argsort(-scores, kind="stable")]


def mention_of(index: RepoIndex, query: str, path: str) -> float:
    return find_mentions(index, query).files.get(index.paths.index(path), 0.0)


JAVA_OVERLOADED = """package com.shop.filter;

public class ContextTypeHandler {
    private final boolean safe;
    private final String[] names;

    public ContextTypeHandler() { this(false); }
    public ContextTypeHandler(boolean safe) { this(safe, new String[0]); }
    public ContextTypeHandler(String... names) { this(false, names); }
    public ContextTypeHandler(boolean safe, String... names) {
        this.safe = safe;
        this.names = names;
    }
    public ContextTypeHandler(Class<?>... types) { this(false, new String[types.length]); }

    public Class<?> apply(String typeName) {
        return null;
    }
}
"""

JAVA_LISTS = """package com.shop.reader;

public class ListReader {
    public Object read(String text, Class<?> type) {
        // deserialize a list of elements, with the type handler of the context
        return null;
    }
    public Object readSet(String text, Class<?> type) {
        // deserialize a set of elements
        return null;
    }
}
"""


def test_overloaded_constructors_are_one_place_not_many(tmp_path: Path) -> None:
    """A Java class whose five constructors share its name is named in one file: an issue
    naming it gives that file the weight of a name defined once, not a fifth of it."""
    index = index_of(
        tmp_path,
        {
            "src/main/java/com/shop/filter/ContextTypeHandler.java": JAVA_OVERLOADED,
            "src/main/java/com/shop/reader/ListReader.java": JAVA_LISTS,
            "src/main/java/com/shop/reader/Other.java": (
                "package com.shop.reader;\n\npublic class Other {\n"
                "    public void resolveNames() {}\n}\n"
            ),
        },
    )
    handler = "src/main/java/com/shop/filter/ContextTypeHandler.java"
    other = "src/main/java/com/shop/reader/Other.java"
    query = "Deserializing an enum set fails with ContextTypeHandler and resolveNames"
    # Both names are defined in one file each: the same weight.
    assert mention_of(index, query, handler) == mention_of(index, query, other) > 0.5
    query = (
        "Empty result after a round trip\n"
        "Reading an enum set with `new ContextTypeHandler(true, ParamsDTO.class.getName())`\n"
        "gives an empty set."
    )
    assert ranked(index, query)[0] == handler


def test_a_plain_word_overloaded_in_one_file_stays_ambiguous(tmp_path: Path) -> None:
    """A plain word (``apply``) defined by many overloads of one file is a common word there:
    it keeps the weight of a name with that many definitions, far below a precise name."""
    overloads = "".join(f"    public Object apply(int x{i}) {{ return null; }}\n" for i in range(5))
    index = index_of(
        tmp_path,
        {
            "src/FunctionTable.java": f"public class FunctionTable {{\n{overloads}}}\n",
            "src/Once.java": "public class Once {\n    public Object retry() { return null; }\n}\n",
        },
    )
    plain = mention_of(index, "retry and apply fail", "src/FunctionTable.java")
    once = mention_of(index, "retry and apply fail", "src/Once.java")
    assert 0 < plain <= once / 5
    assert mention_of(index, "FunctionTable apply fails", "src/FunctionTable.java") > once


def test_a_name_defined_in_two_files_splits_its_weight(tmp_path: Path) -> None:
    """Ambiguity still counts, in files: a function defined in two files gives each half of
    what a function defined once gives its file."""
    index = index_of(
        tmp_path,
        {
            "a/parse.c": "int parse_header(const char *s) { return 0; }\n",
            "b/parse.c": "int parse_header(const char *s) { return 1; }\n",
            "c/once.c": "int read_footer(const char *s) { return 2; }\n",
        },
    )
    query = "parse_header and read_footer both crash on an empty string"
    once = mention_of(index, query, "c/once.c")
    assert mention_of(index, query, "a/parse.c") == mention_of(index, query, "b/parse.c")
    assert mention_of(index, query, "a/parse.c") == once / 2


TEMPLATE = """---
name: Bug report
about: Create a report to help us improve
---

**Describe the bug**
A clear and concise description of what the bug is.

**Expected behavior**
A clear and concise description of what you expected to happen.

**Screenshots**
If applicable, add screenshots to help explain your problem.

**Additional context**
Add any other context about the problem here.
"""

ISSUE = """Repo card cuts long descriptions
**Describe the bug**
The repo card cuts the description of a repository after two lines.

**Expected behavior**
The whole description, wrapped.

**Screenshots**
(none)

**Additional context**
Any other context: the card of a repository with a long description.
"""


def test_issue_templates_rank_below_the_code_the_issue_is_about(tmp_path: Path) -> None:
    """An issue written from a template repeats the template's words; the template is never
    where the fix goes, so it ranks below the code the issue's own words match."""
    index = index_of(
        tmp_path,
        {
            ".github/ISSUE_TEMPLATE/bug_report.md": TEMPLATE,
            "src/cards/repo-card.js": (
                "function renderRepoCard(repo) {\n"
                "  const description = wrapText(repo.description, 2);\n"
                "  return card(description);\n}\n"
                "module.exports = { renderRepoCard };\n"
            ),
            "src/common/utils.js": (
                "function wrapText(text, lines) { return text.split(' ').slice(0, lines); }\n"
                "module.exports = { wrapText };\n"
            ),
        },
    )
    order = ranked(index, ISSUE)
    assert order[0] == "src/cards/repo-card.js"
    assert order.index(".github/ISSUE_TEMPLATE/bug_report.md") > order.index("src/common/utils.js")


def test_template_priors_mark_issue_and_pull_request_templates_only() -> None:
    paths = [
        ".github/ISSUE_TEMPLATE/bug_report.md",
        ".github/ISSUE_TEMPLATE/config.yml",
        ".github/PULL_REQUEST_TEMPLATE.md",
        "docs/pull_request_template.md",
        ".github/workflows/ci.yml",
        "src/template.js",
        "docs/issue_templates.md",
    ]
    assert template_priors(paths).tolist() == [np.float32(TEMPLATE_PRIOR)] * 4 + [1.0] * 3


def test_the_best_unit_of_each_of_the_top_files_is_offered(tmp_path: Path) -> None:
    """At a budget of 13k the files ranked after the first are seen through their best unit
    before the first file's weaker units fill the budget: each of the top files offers its
    best unit at BEST_UNIT_WEIGHT times its file score. At 4k only the first file does."""
    from agentrt.context.select import BEST_UNIT_WEIGHT, _candidates, best_unit_files

    assert best_unit_files(4_000) == 1
    assert best_unit_files(13_000) >= 5
    files = {
        f"src/part{i}.c": "".join(
            f"int part{i}_step{j}(int x) {{ return x + {j}; }}\n" for j in range(6)
        )
        for i in range(6)
    }
    index = index_of(tmp_path, files)
    order = [index.paths.index(f"src/part{i}.c") for i in range(6)]
    file_scores = np.zeros(index.n_files, dtype=np.float32)
    unit_scores = np.zeros(len(index.unit_file), dtype=np.float32)
    for rank_, f in enumerate(order):
        file_scores[f] = 1.0 - 0.15 * rank_
        units = index.file_units(f)
        unit_scores[units] = 0.3 if rank_ == 0 else 0.01  # the first file's units match best
        unit_scores[units.start + 2] = 0.6 if rank_ == 0 else 0.02  # each file's best unit
    candidates = _candidates(index, file_scores, unit_scores, False, 0.005, best_unit_files(13_000))
    for rank_, f in enumerate(order[:5]):
        _, best = index.unit(index.file_units(f).start + 2)
        spans = [
            c.score
            for c in candidates
            if c.path == index.paths[f]
            and c.kind == "span"
            and c.start_line <= best.start_line
            and c.end_line >= best.end_line
        ]
        expected = (
            max(0.6, BEST_UNIT_WEIGHT * file_scores[f])
            if rank_ == 0
            else (BEST_UNIT_WEIGHT * file_scores[f])
        )
        assert max(spans) == pytest.approx(expected)
    # Their best units come before the first file's other units.
    first_other = max(
        c.score
        for c in candidates
        if c.path == index.paths[order[0]] and c.kind == "span" and c.score < 0.6
    )
    assert first_other == pytest.approx(0.3)
    assert BEST_UNIT_WEIGHT * file_scores[order[4]] > first_other
    narrow = _candidates(index, file_scores, unit_scores, False, 0.005, best_unit_files(4_000))
    assert max(c.score for c in narrow if c.path == index.paths[order[1]] and c.kind == "span") == (
        pytest.approx(0.02 * 1.0)
    )


def test_a_prototype_does_not_make_its_function_ambiguous(tmp_path: Path) -> None:
    # The header's prototype is a unit a mention finds (its doc comment is what a fix to
    # the API's documentation edits), and the definition keeps its full weight.
    index = index_of(
        tmp_path,
        {
            "lib/frame.h": (
                "/* Size of a frame header. */\nsize_t frame_header_size(const void* src);\n"
            ),
            "lib/frame.c": (
                '#include "frame.h"\n\nsize_t frame_header_size(const void* src)\n'
                "{\n    return src ? 4 : 0;\n}\n"
            ),
        },
    )
    query = "frame_header_size() does not document that it can return an error"
    assert mention_of(index, query, "lib/frame.c") == pytest.approx(0.8 * 0.8)
    assert mention_of(index, query, "lib/frame.h") == pytest.approx(0.8 * 0.8)
