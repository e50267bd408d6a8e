"""performance_validation: metrics, nested loops and I/O in loops with documented scores."""

from __future__ import annotations

import json

from agentrt.agents.builtin.performance import Input, render_markdown, run

from .conftest import RepoFactory

REPO = {
    "etl.py": """
        import subprocess

        import requests


        def crawl(urls, rows):
            for url in urls:
                for row in rows:
                    requests.get(url, params=row)
            return None


        def copy_all(paths):
            for path in open("index.txt"):  # the iterable is opened once: not in the loop
                with open(path) as handle:
                    data = handle.read()
                    subprocess.run(["gzip", path])


        def grid(n):
            return [[i * j for j in range(n)] for i in range(n)]


        def deferred(items):
            for item in items:
                def later():
                    return open(item)  # runs when called, not per iteration
                yield later


        def polling(conn):
            while conn.execute("select 1"):
                pass
    """,
    "flat.py": """
        \"\"\"A module without loops.\"\"\"

        # a comment
        X = 1
    """,
}


def test_nested_loops_with_io_are_scored(make_repo: RepoFactory) -> None:
    out = run(Input(repo=str(make_repo(REPO))))
    spots = {(h.path, h.line): h for h in out.hot_spots}
    crawl = spots[("etl.py", 7)]
    # 2**2 for the nest, plus network weight 5 * 2**2 for the call at depth 2.
    assert (crawl.function, crawl.depth, crawl.score) == ("crawl", 2, 4 + 20)
    assert crawl.io_calls == ["requests.get() at line 9 (depth 2)"]
    copy_all = spots[("etl.py", 14)]
    # open 3*2 + read/write 2*2 + process 5*2; the loop's own `open("index.txt")` is not counted.
    assert (copy_all.depth, copy_all.score) == (1, 6 + 4 + 10)
    assert [c.split(" at ")[0] for c in copy_all.io_calls] == [
        "open()",
        "handle.read()",
        "subprocess.run()",
    ]
    grid = spots[("etl.py", 21)]
    assert (grid.function, grid.depth, grid.score, grid.io_calls) == ("grid", 2, 4, [])
    polling = spots[("etl.py", 32)]  # a while condition runs on every iteration
    assert polling.io_calls == ["conn.execute() at line 32 (depth 1)"]
    assert ("etl.py", 25) not in spots  # the open() inside `later` is not in a loop
    assert [h.score for h in out.hot_spots] == sorted(
        (h.score for h in out.hot_spots), reverse=True
    )


def test_findings_and_severities(make_repo: RepoFactory) -> None:
    out = run(Input(repo=str(make_repo(REPO))))
    by_place = {(f.rule, f.line): f for f in out.findings}
    assert by_place[("io-in-loop", 9)].severity == "medium"  # network at depth 2: 20
    assert by_place[("io-in-loop", 16)].severity == "low"  # handle.read() at depth 1: 4
    nested = by_place[("nested-loops", 7)]
    assert nested.severity == "info" and "loops nested 2 deep in `crawl`" in nested.message
    assert ("nested-loops", 21) in by_place
    assert out.counts.medium == 3  # requests.get, subprocess.run, conn.execute


def test_metrics_per_file(make_repo: RepoFactory) -> None:
    out = run(Input(repo=str(make_repo(REPO))))
    files = {f.path: f for f in out.files}
    flat = files["flat.py"]
    assert (flat.loc, flat.sloc, flat.comment_lines, flat.lloc, flat.functions) == (4, 1, 2, 2, 0)
    assert flat.maintainability == 100.0 and flat.maintainability_rank == "A"
    etl = files["etl.py"]
    assert etl.functions == 6 and etl.max_complexity >= 3
    names = [f.name for f in out.worst_functions]
    assert set(names) >= {"crawl", "copy_all", "grid", "deferred", "deferred.later", "polling"}
    assert out.totals.functions == 6 and out.totals.files_by_rank["A"] == 2


def test_deterministic_json_and_markdown(make_repo: RepoFactory) -> None:
    root = make_repo(REPO)
    first, second = run(Input(repo=str(root))), run(Input(repo=str(root)))
    assert json.dumps(first.model_dump(mode="json")) == json.dumps(second.model_dump(mode="json"))
    md = render_markdown(first)
    assert "## Performance" in md and "`etl.py:7`" in md and "requests.get()" in md
