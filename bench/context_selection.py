"""Benchmark: context selection on real issues (SWE-bench Verified, ../shared/bench/swe_dev.jsonl).

For each issue, the source tree of the release closest to the issue (an sdist from the package
index, cached unpacked under ``~/.cache/agentrt-bench/``) is searched with the issue text as
the query, at budgets of 4k, 13k and 27k cl100k tokens. Measured, side by side with the
SWE-bench retrieval baseline (BM25 over whole files, whole files added in rank order while
they fit) computed in the same run:

* file recall@B: share of issues whose gold files all appear in the delivery;
* hunk recall@B: share of issues for which every gold hunk's removed lines (context lines for
  pure insertions) appear, line for line and in order, in the delivered text of their file;
* cold latency (fresh store, first selection on a tree) and warm latency (index in the store,
  a new query; the in-process cache is cleared first), and peak memory.

Run: ``python -m bench.context_selection [--quick] [--limit N] [--no-write]``. ``--quick``
takes 40 issues (a fixed, hash-ordered sample) and does not touch docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agentrt.context import relevance
from agentrt.context.select import DEFAULT_EXCLUDES, select
from agentrt.context.sources import scan_repository
from agentrt.context.store import ContextStore
from agentrt.context.tokens import count_tokens

DATA = Path(__file__).resolve().parents[2] / "shared" / "bench" / "swe_dev.jsonl"
CACHE = Path(os.environ.get("AGENTRT_BENCH_CACHE", Path.home() / ".cache" / "agentrt-bench"))
BUDGETS = (4_000, 13_000, 27_000)
QUICK_ISSUES = 40
# Old sdists call pkg_resources in setup.py; newer setuptools removed it.
_BUILD_CONSTRAINTS = "setuptools<70\n"


# --------------------------------------------------------------------------- source trees


def fetch_tree(name: str, version: str) -> Path | None:
    """The unpacked sdist of ``name==version`` (or X.Y.0, X.Y.1), downloading it if needed."""
    tree = CACHE / "trees" / f"{name}-{version}"
    if (tree / ".complete").exists():
        return tree
    archive = _find_archive(CACHE / "sdists" / f"{name}-{version}") or _download(name, version)
    if archive is None:
        return None
    tmp = Path(tempfile.mkdtemp(dir=CACHE / "trees" if (CACHE / "trees").is_dir() else None))
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        print(f"  cannot unpack {archive}: {exc}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    top = [p for p in tmp.iterdir()]
    root = top[0] if len(top) == 1 and top[0].is_dir() else tmp
    shutil.rmtree(tree, ignore_errors=True)
    tree.parent.mkdir(parents=True, exist_ok=True)
    root.rename(tree)
    shutil.rmtree(tmp, ignore_errors=True)
    (tree / ".complete").touch()
    return tree


def _find_archive(directory: Path) -> Path | None:
    if not directory.is_dir():
        return None
    for path in sorted(directory.iterdir()):
        if path.name.endswith((".tar.gz", ".tgz", ".zip", ".tar.bz2")):
            return path
    return None


def _download(name: str, version: str) -> Path | None:
    directory = CACHE / "sdists" / f"{name}-{version}"
    directory.mkdir(parents=True, exist_ok=True)
    constraints = CACHE / "build-constraints.txt"
    constraints.write_text(_BUILD_CONSTRAINTS)
    for candidate in (version, f"{version}.0", f"{version}.1"):
        result = subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                "--no-binary", name, "--build-constraint", str(constraints),
                f"{name}=={candidate}", "-d", str(directory),
            ],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        archive = _find_archive(directory)
        if result.returncode == 0 or archive is not None:
            return archive
    return None


# --------------------------------------------------------------------------- measuring


@dataclass(slots=True)
class Issue:
    instance_id: str
    pypi_name: str
    version: str
    query: str
    gold_files: list[str]
    #: (path, removed lines, context lines) of each hunk of the fix.
    hunks: list[tuple[str, list[str], list[str]]]
    #: Line of each hunk in the file the fix was made to (old side).
    hunk_starts: list[int] = field(default_factory=list)


def load_issues(path: Path = DATA) -> list[Issue]:
    issues = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        hunks = [(h["path"], h["removed"], h["context"]) for h in row["gold_hunks"]]
        issues.append(
            Issue(
                row["instance_id"],
                row["pypi_name"],
                row["version_hint"],
                row["problem_statement"],
                row["gold_files"],
                hunks,
                [h["old_start"] for h in row["gold_hunks"]],
            )
        )
    return issues


def _in_order(needles: Sequence[str], haystack: Sequence[str]) -> bool:
    """Every needle line appears in ``haystack``, in order (a subsequence, exact lines)."""
    it = iter(haystack)
    return all(any(line == needle for line in it) for needle in needles)


def in_order_positions(
    needles: Sequence[str], haystack: Sequence[str], near: int = 0
) -> list[int] | None:
    """Where the needle lines appear in ``haystack`` in order (0-based), or None.

    Of the matches starting at each occurrence of the first needle (and spanning at most a
    few times as many lines as there are needles), the tightest one (the fewest lines from
    first to last), then the one starting nearest ``near``.
    """
    if not needles:
        return []
    best: list[int] | None = None
    limit = 4 * len(needles) + 40
    for start, line in enumerate(haystack):
        if line != needles[0]:
            continue
        positions, at = [start], start + 1
        end = min(len(haystack), start + limit)
        for needle in needles[1:]:
            while at < end and haystack[at] != needle:
                at += 1
            if at == end:
                break
            positions.append(at)
            at += 1
        if len(positions) < len(needles):
            continue
        key = (positions[-1] - positions[0], abs(start - near))
        if best is None or key < (best[-1] - best[0], abs(best[0] - near)):
            best = positions
    return best


def tree_file(tree: Path, gold: str) -> Path | None:
    """The file of the gold path ``gold`` in a release tree (sdists may add a folder)."""
    return next((p for p in (tree / gold, *tree.glob(f"*/{gold}")) if p.is_file()), None)


def _resolve(gold: str, delivered: Iterable[str]) -> str | None:
    """The delivered path of a gold path (sdists can add or drop a leading folder)."""
    for path in delivered:
        if path == gold or path.endswith("/" + gold) or gold.endswith("/" + path):
            return path
    return None


def hunk_targets(issue: Issue, tree: Path) -> list[tuple[str, list[str]]] | None:
    """The lines each hunk needs delivered, as they are in this release; None if unattainable.

    The release closest to the issue can predate or postdate the fix by a little. A hunk's
    target is its removed lines (its context lines for a pure insertion); when the release
    no longer holds the removed lines (the fix is already in it), its context lines. When
    neither is in the file, no selection can deliver the hunk: the issue counts as a miss
    for every method, and the "attainable" column says how often that happens.
    """
    targets = []
    for gold, removed, context in issue.hunks:
        path = tree_file(tree, gold)
        if path is None:
            return None
        lines = path.read_text(errors="replace").split("\n")
        for wanted in (removed, context):
            if wanted and _in_order(wanted, lines):
                targets.append((gold, wanted))
                break
        else:
            return None
    return targets


def score(
    issue: Issue, targets: list[tuple[str, list[str]]] | None, delivered: dict[str, list[str]]
) -> tuple[bool, bool]:
    """(all gold files delivered, all gold hunks delivered) for ``path -> delivered lines``."""
    files_ok = all(_resolve(g, delivered) is not None for g in issue.gold_files)
    if targets is None:
        return files_ok, False
    hunks_ok = True
    for gold, lines in targets:
        path = _resolve(gold, delivered)
        if path is None or not _in_order(lines, delivered[path]):
            hunks_ok = False
            break
    return files_ok, hunks_ok


def delivered_lines(items: Iterable[tuple[str, int, str]]) -> dict[str, list[str]]:
    """``path -> lines`` of delivered items (path, start line, text), items in line order."""
    per_path: dict[str, list[tuple[int, str]]] = {}
    for path, start, text in items:
        per_path.setdefault(path, []).append((start, text))
    return {
        path: [line for _, text in sorted(parts) for line in text.split("\n")]
        for path, parts in per_path.items()
    }


class Baseline:
    """SWE-bench's BM25 retrieval: whole files ranked by BM25 of the issue text."""

    def __init__(self, tree: Path) -> None:
        scan = scan_repository(tree, extra_ignores=DEFAULT_EXCLUDES)
        self.paths: list[str] = []
        self.texts: list[str] = []
        for source in scan.files:
            if source.path.endswith(".py"):
                self.paths.append(source.path)
                self.texts.append(source.read_text())
        self.index = relevance.Bm25.from_id_lists([relevance.text_ids(t) for t in self.texts])
        self.tokens = [count_tokens(t) for t in self.texts]

    def select(self, query: str, budget: int) -> dict[str, list[str]]:
        scores = self.index.scores(relevance.text_ids(query))
        chosen: list[tuple[str, int, str]] = []
        spent = 0
        for f in scores.argsort()[::-1]:
            if scores[f] <= 0:
                break
            cost = self.tokens[f] + 8  # the file's text and a path header
            if spent + cost <= budget:
                chosen.append((self.paths[f], 1, self.texts[f]))
                spent += cost
            if budget - spent < 50:
                break
        return delivered_lines(chosen)


@dataclass
class Results:
    issues: int = 0
    skipped: list[str] = field(default_factory=list)
    file_hits: dict[int, int] = field(default_factory=lambda: dict.fromkeys(BUDGETS, 0))
    hunk_hits: dict[int, int] = field(default_factory=lambda: dict.fromkeys(BUDGETS, 0))
    base_file_hits: dict[int, int] = field(default_factory=lambda: dict.fromkeys(BUDGETS, 0))
    base_hunk_hits: dict[int, int] = field(default_factory=lambda: dict.fromkeys(BUDGETS, 0))
    over_budget: int = 0
    attainable: int = 0
    cold: list[tuple[str, int, float]] = field(default_factory=list)  # tree, files, seconds
    #: CPU seconds (this process and its workers) of each cold selection: less sensitive
    #: than wall time to other jobs on a shared machine.
    cold_cpu: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)  # 1-minute load average, per issue


def run(issues: Sequence[Issue], verbose: bool = True, store_dir: Path | None = None) -> Results:
    results = Results()
    by_tree: dict[tuple[str, str], list[Issue]] = {}
    for issue in issues:
        by_tree.setdefault((issue.pypi_name, issue.version), []).append(issue)
    for (name, version), group in by_tree.items():
        tree = fetch_tree(name, version)
        if tree is None:
            results.skipped.extend(i.instance_id for i in group)
            print(f"  no source tree for {name} {version}; skipping {len(group)}", file=sys.stderr)
            continue
        baseline = Baseline(tree)
        tree_store = store_dir or Path(tempfile.mkdtemp(prefix="agentrt-bench-store-"))
        try:
            store = ContextStore(tree_store)
            for n, issue in enumerate(group):
                relevance._MEMORY.clear()  # warm means: index in the store, new process
                results.load.append(os.getloadavg()[0])
                cpu = _cpu_seconds()
                started = time.perf_counter()
                selection = select(tree, issue.query, BUDGETS[0], store=store)
                elapsed = time.perf_counter() - started
                if n == 0:
                    results.cold.append((f"{name}-{version}", selection.stats["files"], elapsed))
                    results.cold_cpu.append(_cpu_seconds() - cpu)
                else:
                    results.warm.append(elapsed)
                results.issues += 1
                targets = hunk_targets(issue, tree)
                results.attainable += targets is not None
                outcome = []
                for budget in BUDGETS:
                    if budget != BUDGETS[0]:
                        selection = select(tree, issue.query, budget, store=store)
                    if count_tokens(selection.to_markdown()) > budget:
                        results.over_budget += 1
                    got = delivered_lines((i.path, i.start_line, i.text) for i in selection.items)
                    files_ok, hunks_ok = score(issue, targets, got)
                    results.file_hits[budget] += files_ok
                    results.hunk_hits[budget] += hunks_ok
                    b_files, b_hunks = score(issue, targets, baseline.select(issue.query, budget))
                    results.base_file_hits[budget] += b_files
                    results.base_hunk_hits[budget] += b_hunks
                    outcome.append(f"{'F' if files_ok else '.'}{'H' if hunks_ok else '.'}")
                if verbose:
                    print(
                        f"  {issue.instance_id:40s} {' '.join(outcome)}  {elapsed:.2f}s", flush=True
                    )
        finally:
            relevance._MEMORY.clear()
            if store_dir is None:
                shutil.rmtree(tree_store, ignore_errors=True)
    return results


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def peak_memory_mb() -> float:
    """Peak resident memory of this process and of its (worker) children, in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _pct(hits: int, total: int) -> str:
    return f"{100 * hits / total:.1f}%" if total else "n/a"


def table(results: Results) -> str:
    n = results.issues
    lines = [
        f"{n} issues ({len(results.skipped)} skipped: no sdist could be fetched or unpacked). "
        f"Hunks attainable in the release trees (ceiling of hunk recall): "
        f"{_pct(results.attainable, n)}.",
        "",
        "| budget | file recall | hunk recall | baseline file recall | baseline hunk recall |",
        "| --- | --- | --- | --- | --- |",
    ]
    for budget in BUDGETS:
        lines.append(
            f"| {budget // 1000}k | {_pct(results.file_hits[budget], n)} "
            f"| {_pct(results.hunk_hits[budget], n)} "
            f"| {_pct(results.base_file_hits[budget], n)} "
            f"| {_pct(results.base_hunk_hits[budget], n)} |"
        )
    cold = [s for _, _, s in results.cold]
    largest = max(results.cold, key=lambda c: c[1], default=None)
    lines += [
        "",
        "| latency | median | max |",
        "| --- | --- | --- |",
        f"| cold (fresh store, first query on a tree; {len(cold)} trees) "
        f"| {_median(cold)} | {max(cold, default=0):.2f} s |",
        f"| cold, CPU time (process and index workers) "
        f"| {_median(results.cold_cpu)} | {max(results.cold_cpu, default=0):.2f} s |",
        f"| warm (index from the store, new query; {len(results.warm)} selections) "
        f"| {_median(results.warm)} | {max(results.warm, default=0):.2f} s |",
        "",
        f"Machine load during the run (1-minute load average on {os.cpu_count()} cores, "
        f"shared with other jobs): median {statistics.median(results.load or [0]):.1f}, "
        f"max {max(results.load, default=0):.1f}. Wall times grow with it; CPU times less so.",
        "",
    ]
    if largest is not None:
        lines.append(
            f"Largest tree: {largest[0]}, {largest[1]} files indexed, cold {largest[2]:.2f} s wall."
        )
    lines.append(f"Peak memory (RSS, process or a worker): {peak_memory_mb():.0f} MB.")
    lines.append(f"Deliveries over budget: {results.over_budget} (must be 0).")
    return "\n".join(lines)


def _median(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.2f} s" if values else "n/a"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ISSUES} issues")
    parser.add_argument("--limit", type=int, default=None, help="at most N issues")
    parser.add_argument("--no-write", action="store_true", help="do not update docs")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument(
        "--store",
        type=Path,
        default=None,
        help="keep indexes in this store across runs (for iterating on ranking; cold "
        "latencies are then not cold)",
    )
    args = parser.parse_args(argv)
    issues = load_issues()
    # A fixed sample that mixes repositories: order by a hash of the issue id.
    issues.sort(key=lambda i: hashlib.blake2b(i.instance_id.encode()).hexdigest())
    limit = args.limit or (QUICK_ISSUES if args.quick else None)
    if limit:
        issues = issues[:limit]
    started = time.perf_counter()
    results = run(issues, verbose=not args.quiet, store_dir=args.store)
    body = table(results)
    print(body)
    print(f"({time.perf_counter() - started:.0f} s)")
    if not (args.quick or args.limit or args.no_write or args.store):
        from bench.report import write_section

        write_section(
            "context",
            "Context selection (hunk recall at a token budget)",
            body,
            "python -m bench.context_selection",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
