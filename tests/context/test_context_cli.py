"""Tests for ``agentrt context`` (agentrt.cli.context): output, exit codes, no prefect import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentrt.cli.context import app
from agentrt.context.tokens import count_tokens

runner = CliRunner()
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "core.py").write_text(
        "def parse_config(path):\n    '''Read the config file.'''\n    return open(path).read()\n"
    )
    (root / "pkg" / "image.bin").write_bytes(b"\x00\x01" * 100)
    return root


def test_select_json(repo: Path) -> None:
    result = runner.invoke(
        app, ["select", "--repo", str(repo), "--query", "parse_config", "--budget", "200",
              "--format", "json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["budget"] == 200 and data["tokens"] <= 200
    assert data["items"][0]["path"] == "pkg/core.py"
    assert "def parse_config(path):" in data["items"][0]["text"]


def test_select_markdown_from_query_file(repo: Path, tmp_path: Path) -> None:
    query = tmp_path / "issue.md"
    query.write_text("parse_config fails on a missing file")
    result = runner.invoke(
        app, ["select", "--repo", str(repo), "--query-file", str(query), "--budget", "100"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("## pkg/core.py:1-")
    assert count_tokens(result.stdout) <= 100


@pytest.mark.parametrize(
    "args",
    [
        ["--query", "x", "--budget", "0"],
        ["--query", "x", "--budget", "-5"],
        ["--budget", "10"],  # neither query option
        ["--query", "x", "--query-file", "q.txt", "--budget", "10"],  # both
        ["--query", "x", "--budget", "10", "--format", "xml"],
        ["--query-file", "/nonexistent/issue.md", "--budget", "10"],
    ],
)
def test_select_bad_input_exits_2(repo: Path, args: list[str]) -> None:
    result = runner.invoke(app, ["select", "--repo", str(repo), *args])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_missing_repo_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["select", "--repo", str(tmp_path / "nope"), "--query", "x", "--budget", "10"]
    )
    assert result.exit_code == 2
    assert "no such directory" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_encoding_is_bad_input(repo: Path) -> None:
    result = runner.invoke(
        app, ["select", "--repo", str(repo), "--query", "x", "--budget", "10",
              "--encoding", "no_such_encoding"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "no_such_encoding" in result.stderr


def test_stats_json(repo: Path) -> None:
    result = runner.invoke(app, ["stats", "--repo", str(repo), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["files"] == 1
    assert data["tokens"] == count_tokens((repo / "pkg" / "core.py").read_text())
    assert [s["path"] for s in data["skipped"]] == ["pkg/image.bin"]
    assert data["skipped"][0]["reason"]
    assert data["index"]["source"] in {"built", "store", "memory"}


POLYGLOT = Path(__file__).parent / "fixtures" / "polyglot"


def test_stats_per_language_says_what_agentrt_understands() -> None:
    result = runner.invoke(app, ["stats", "--repo", str(POLYGLOT), "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["language"]: row for row in json.loads(result.stdout)["languages"]}
    assert rows["go"] == {
        "language": "go",
        "files": 3,
        "tokens": rows["go"]["tokens"],
        "units": 10,
        "definitions": 7,
        "parsed": 3,
        "structure": "tree-sitter",
        "skeleton": "signatures",
        "graph": "imports+references",
        "imports": 2,
        "imports_resolved": 1,  # the cart package; "fmt" is the standard library's
    }
    assert rows["go"]["tokens"] > 0
    for language in ("typescript", "javascript", "rust", "java", "c", "cpp", "csharp", "ruby",
                     "php", "kotlin", "swift"):  # fmt: skip
        assert rows[language]["structure"] == "tree-sitter", language
        assert rows[language]["parsed"] == rows[language]["files"], language
    assert rows["swift"]["graph"] == "imports+references"  # modules by Sources/<Module>/
    assert (rows["markdown"]["structure"], rows["markdown"]["skeleton"]) == ("lines", "headings")
    assert rows["toml"]["graph"] == "none"

    human = runner.invoke(app, ["stats", "--repo", str(POLYGLOT)], env={"COLUMNS": "160"})
    assert human.exit_code == 0, human.output
    go_line = next(line for line in human.stdout.splitlines() if line.startswith("│ go "))
    assert "tree-sitter" in go_line and "imports+references" in go_line and "1 of 2" in go_line

    # In an 80-column terminal the table is split in two rather than cut off ("tree-si…").
    narrow = runner.invoke(app, ["stats", "--repo", str(POLYGLOT)], env={"COLUMNS": "80"})
    assert narrow.exit_code == 0, narrow.output
    assert "…" not in narrow.stdout, narrow.stdout
    assert max(map(len, narrow.stdout.splitlines())) <= 80
    go_lines = [line for line in narrow.stdout.splitlines() if line.startswith("│ go ")]
    assert len(go_lines) == 2, narrow.stdout
    assert "tree-sitter" in go_lines[1] and "imports+references" in go_lines[1]
    assert "1 of 2" in go_lines[1] and go_lines[0].split("│")[2].strip() == "3"


def test_stats_human(repo: Path) -> None:
    result = runner.invoke(app, ["stats", "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    assert "1 files" in result.stdout and "Skipped" in result.stdout


def test_subprocess_does_not_import_prefect(repo: Path, tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from agentrt.cli.context import app\n"
        "try:\n"
        "    app(['select', '--repo', sys.argv[1], '--query', 'parse_config', '--budget', '50',"
        " '--format', 'json'])\n"
        "except SystemExit as exc:\n"
        "    code = exc.code or 0\n"
        "print('PREFECT' if 'prefect' in sys.modules else 'CLEAN', file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "AGENTRT_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-c", script, str(repo)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().endswith("CLEAN")
    assert json.loads(done.stdout)["items"]


def test_module_entry_point_exit_code(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agentrt.cli.context", "select", "--repo", str(tmp_path / "missing"),
         "--query", "x", "--budget", "5"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
