"""The analysers beyond Python: lizard's long and complex functions, secrets in every text
file, and each analyser's coverage line (what it read, by language, and what it left out)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from agentrt.agents.builtin import architecture, code_review, documentation, performance, security
from agentrt.agents.redact import redact as redact_report

from .conftest import RepoFactory

MANIFESTS = Path(code_review.__file__).parents[1] / "manifests"


@dataclass(frozen=True)
class Language:
    """How to write a function with many branches and a long one in a language."""

    path: str
    header: str  # lines before the first function
    start: str  # a function's first line; {name} is replaced
    local: str  # declares `total`
    branch: str  # one `if`; {i} is replaced
    step: str  # one statement of the long function
    end: str  # a function's last lines
    footer: str = ""
    name_prefix: str = ""  # how lizard names the functions (Java: Class::method)


LANGUAGES = [
    Language(
        "svc/handler.go",
        'package svc\n\nimport "fmt"\n\n// Branchy has a branch per value.\n',
        "func {name}(x int) int {{",
        "\ttotal := 0",
        "\tif x == {i} {{\n\t\ttotal += {i}\n\t}}",
        '\tfmt.Println("step")',
        "\treturn total\n}",
    ),
    Language(
        "web/src/view.ts",
        'import { log } from "./log";\n\n/** Many branches. */\n',
        "export function {name}(x: number): number {{",
        "  let total = 0;",
        "  if (x === {i}) {{\n    total += {i};\n  }}",
        '  log("step");',
        "  return total;\n}",
    ),
    Language(
        "core/src/lib.rs",
        "use std::fmt;\n\n/// Many branches.\n",
        "pub fn {name}(x: i32) -> i32 {{",
        "    let mut total = 0;",
        "    if x == {i} {{\n        total += {i};\n    }}",
        '    println!("step");',
        "    total\n}",
    ),
    Language(
        "app/src/main/java/demo/Service.java",
        "package demo;\n\npublic class Service {\n    /** Many branches. */\n",
        "    public static int {name}(int x) {{",
        "        int total = 0;",
        "        if (x == {i}) {{\n            total += {i};\n        }}",
        '        System.out.println("step");',
        "        return total;\n    }",
        footer="}\n",
        name_prefix="Service::",
    ),
    Language(
        "native/calc.c",
        "#include <stdio.h>\n\n/* Many branches. */\n",
        "int {name}(int x)\n{{",
        "    int total = 0;",
        "    if (x == {i}) {{\n        total += {i};\n    }}",
        '    puts("step");',
        "    return total;\n}",
    ),
]


def source(lang: Language) -> tuple[str, int, int]:
    """A file with `branchy` (complexity 13) and `long_one` (74 lines); their first lines."""
    branchy = [
        lang.start.format(name="branchy"),
        lang.local,
        *(lang.branch.format(i=i) for i in range(12)),
        lang.end,
    ]
    long_one = [lang.start.format(name="long_one"), lang.local, *[lang.step] * 70, lang.end]
    text = lang.header + "\n".join(branchy) + "\n\n" + "\n".join(long_one) + "\n" + lang.footer
    branchy_line = lang.header.count("\n") + 1  # a function is where its name is
    long_line = branchy_line + "\n".join(branchy).count("\n") + 2
    return text, branchy_line, long_line


@pytest.mark.parametrize("lang", LANGUAGES, ids=lambda lang: lang.path.rsplit(".", 1)[-1])
def test_long_and_complex_functions_in_other_languages(
    lang: Language, make_repo: RepoFactory
) -> None:
    text, branchy_line, long_line = source(lang)
    root = make_repo({lang.path: text})
    out = code_review.run(code_review.Input(repo=str(root)))
    found = {(f.rule, f.line): f for f in out.findings}
    assert set(found) == {("cyclomatic-complexity", branchy_line), ("long-function", long_line)}
    complex_ = found["cyclomatic-complexity", branchy_line]
    assert (complex_.path, complex_.tool, complex_.severity) == (lang.path, "lizard", "low")
    assert f"`{lang.name_prefix}branchy` has cyclomatic complexity 13 (rank C" in complex_.message
    long_ = found["long-function", long_line]
    assert long_.path == lang.path and long_.severity == "low"
    lines = 70 + 2 + lang.end.count("\n") + 1 + lang.start.count("\n")
    assert f"`{lang.name_prefix}long_one` is {lines} lines long (limit 60)" in long_.message
    # The same limits as for Python: a stricter length, a laxer complexity rank.
    stricter = code_review.run(
        code_review.Input(repo=str(root), max_function_lines=30, complexity_rank="D")
    )
    assert [(f.rule, f.line, f.severity) for f in stricter.findings] == [
        ("long-function", branchy_line, "low"),  # 40 lines or so: longer than 30
        ("long-function", long_line, "medium"),  # more than twice 30
    ]
    assert out.files_analysed == 1 and out.ruff.files == 0


PYTHON = {
    "pkg/__init__.py": '"""Package."""\n',
    "pkg/core.py": '"""Core."""\nimport os\n\n\ndef f(x):\n    return x\n',
    "pkg/core.pyi": "def f(x: int) -> int: ...\n",
    "tests/test_core.py": "import subprocess\n\n\ndef test_f():\n    assert True\n",
}
MIXED = {
    **PYTHON,
    **{lang.path: source(lang)[0] for lang in LANGUAGES[:2]},
    "svc/util.go": "package svc\n\nfunc Add(a, b int) int { return a + b }\n",
    "scripts/deploy.sh": "#!/bin/sh\necho deploy\n",
    "web/static/bundle.js": "var a=1;" * 3000 + "\n",  # minified: one 24,000-character line
    "README.md": "# mixed\n",
    "config.yaml": "name: mixed\n",
}


def lines(output: object) -> list[str]:
    return [c.line for c in output.language_coverage]  # type: ignore[attr-defined]


def test_coverage_lines_of_every_analyser_on_a_mixed_repository(make_repo: RepoFactory) -> None:
    root = make_repo(MIXED)
    (root / "svc" / "generated.go").write_text("package svc\n" + "// x\n" * 400_000)  # > 1 MB
    repo = str(root)
    review = code_review.run(code_review.Input(repo=repo))
    assert lines(review) == [
        "ruff: 3 Python files; skipped 7 files in Go (3, 1 too large), JavaScript (1), "
        "Python (1, type stub), Shell (1), TypeScript (1)",
        "functions (radon, lizard): 6 files in Python (3), Go (2), TypeScript (1); skipped 4 "
        "files in Go (1, too large), JavaScript (1, minified), Python (1, type stub), "
        "Shell (1)",
    ]
    ruff, functions = review.language_coverage
    assert ruff.files == 3 and ruff.skipped_files == 7
    assert [(c.language, c.files) for c in ruff.analysed] == [("python", 3)]
    assert {(c.language, c.files, c.reason) for c in ruff.skipped} == {
        ("go", 2, None),
        ("go", 1, "too large"),
        ("typescript", 1, None),
        ("javascript", 1, None),
        ("python", 1, "type stub"),
        ("shell", 1, None),
    }
    assert functions.files == 6 == review.files_analysed
    assert "and 3 files in Go (2), TypeScript (1)" in review.summary
    # The minified bundle is left out, so it yields no findings either.
    assert not any(f.path == "web/static/bundle.js" for f in review.findings)

    secured = security.run(security.Input(repo=repo))
    bandit, secrets = secured.language_coverage
    assert bandit.line.startswith("bandit: 2 Python files; skipped 8 files in ")
    assert {(c.language, c.files, c.reason) for c in bandit.skipped} >= {
        ("python", 1, "test code"),
        ("python", 1, "type stub"),
        ("go", 2, None),
    }
    # The secret scan reads every text file, not only code: Markdown and YAML too.
    assert secrets.files == 11 and {"markdown", "yaml", "shell", "go"} <= {
        c.language for c in secrets.analysed
    }
    assert [(c.language, c.files, c.reason) for c in secrets.skipped] == [("go", 1, "too large")]

    [coverage] = performance.run(performance.Input(repo=repo)).language_coverage
    assert coverage.tool == "radon" and coverage.skipped_files == 7
    assert coverage.line.endswith(
        "skipped 7 files in Go (3, 1 too large), JavaScript (1), Python (1, type stub), "
        "Shell (1), TypeScript (1)"
    )
    # The import graph reads every language the context manager parses, as lizard does.
    [coverage] = architecture.run(architecture.Input(repo=repo)).language_coverage
    assert coverage.line == (
        "import graph (ast, tree-sitter): 6 files in Python (3), Go (2), TypeScript (1); "
        "skipped 4 files in Go (1, too large), JavaScript (1, minified), Python (1, type stub), "
        "Shell (1)"
    )
    # documentation_generation reads Go and TypeScript too (from the context manager's
    # parse); the minified bundle is left out as in code_review.
    [docs] = documentation.run(documentation.Input(repo=repo)).language_coverage
    assert docs.line == (
        "docstrings (ast), doc comments (tree-sitter): 5 files in Go (2), Python (2), "
        "TypeScript (1); skipped 5 files in Python (2, 1 not public API, 1 type stub), "
        "Go (1, too large), JavaScript (1, minified), Shell (1)"
    )

    # Restricted to some files, the coverage is about those files only.
    some = code_review.run(code_review.Input(repo=repo, files=["svc/util.go", "pkg/core.py"]))
    assert lines(some) == [
        "ruff: 1 Python file; skipped 1 file in Go (1)",
        "functions (radon, lizard): 2 files in Go (1), Python (1); nothing skipped",
    ]
    md = code_review.render_markdown(review)
    assert "**Coverage**" in md and f"- {review.language_coverage[0].line}" in md


def test_python_only_repository_reads_as_before(make_repo: RepoFactory) -> None:
    out = code_review.run(code_review.Input(repo=str(make_repo(PYTHON))))
    assert {f.tool for f in out.findings} <= {"ruff", "radon", "agentrt"}
    assert out.summary.startswith("2 findings in 3 Python files (2 low); ruff rules:")
    assert [(f.location, f.rule) for f in out.findings] == [
        ("pkg/core.py:2:8", "F401"),
        ("tests/test_core.py:1:8", "F401"),
    ]
    assert out.files_analysed == 3
    assert lines(out) == [
        "ruff: 3 Python files; skipped 1 file in Python (1, type stub)",
        "functions (radon, lizard): 3 Python files; skipped 1 file in Python (1, type stub)",
    ]


# Built from parts so that this test file itself holds no complete secret.
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
DB_PASSWORD = "Zq8" + "vR2xLm9TkW4pN7s"
AWS_KEY = "AKIA" + "Z7QH2X4M6P8R3T5V"
SLACK = "xoxb-" + "1234567890-abcdefghijKLMN"


def test_secrets_in_env_yaml_and_javascript_found_and_redacted(make_repo: RepoFactory) -> None:
    root = make_repo(
        {
            ".env": f"DEBUG=1\nDATABASE_PASSWORD={DB_PASSWORD!r}\nSTRIPE_KEY={STRIPE}\n",
            "deploy/values.yaml": f"aws:\n  access_key_id: {AWS_KEY}\n",
            "web/client.js": f'const slack = "{SLACK}";\nexport default slack;\n',
            # Ignored by the repository: the scan, and so the secret search, leaves it out.
            ".gitignore": ".env.local\n",
            ".env.local": f"STRIPE_KEY={STRIPE}\n",
        }
    )
    out = security.run(security.Input(repo=str(root)))
    found = {(f.path, f.line, f.rule) for f in out.findings}
    assert found == {
        (".env", 2, "generic-secret"),
        (".env", 3, "stripe-key"),
        ("deploy/values.yaml", 2, "aws-access-key-id"),
        ("web/client.js", 1, "slack-token"),
    }
    messages = {f.rule: f.message for f in out.findings}
    assert "sk_l…" in messages["stripe-key"] and "`DATABASE_PASSWORD`" in messages["generic-secret"]
    _, secrets = out.language_coverage
    assert secrets.line == (
        "secrets: 4 files in other text (2), JavaScript (1), YAML (1); nothing skipped"
    )
    dumped = json.dumps(out.model_dump(mode="json")) + security.render_markdown(out)
    for secret in (STRIPE, DB_PASSWORD, AWS_KEY, SLACK):
        assert secret not in dumped
    # …and the run report's own net (agents/redact.py) catches key shapes that would slip.
    for secret in (STRIPE, AWS_KEY, SLACK):
        assert secret not in redact_report(f"found {secret} in the file")


@pytest.mark.parametrize(
    "manifest",
    [
        "code_review",
        "performance_validation",
        "architecture_analysis",
        "documentation_generation",
    ],
)
def test_cache_keys_on_every_code_file_the_coverage_counts(manifest: str) -> None:
    """A cached output's coverage line must not go stale: an edit to any code file re-runs
    the analyser (an edit to docs or data does not)."""
    from pathspec import GitIgnoreSpec

    from agentrt.agents.builtin.coverage import CODE_LANGUAGES
    from agentrt.context.sources import _LANGUAGES

    data = yaml.safe_load((MANIFESTS / f"{manifest}.yaml").read_text())
    spec = GitIgnoreSpec.from_lines(data["cache"]["include"])
    suffixes = [s for s, language in _LANGUAGES.items() if language in CODE_LANGUAGES]
    assert suffixes and not [s for s in suffixes if not spec.match_file(f"src/x{s}")]
    assert not spec.match_file("README.md") and not spec.match_file("config.yaml")
