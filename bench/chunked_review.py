"""A chunked review of a change touching 200 files, against the same review unchunked.

    python -m bench.chunked_review [--files 200] [--chunks 10] [--workers 4] [--repeat 1]

A git repository is created in a temporary folder: ``--files`` Python modules of a small
shop application (orders, payments, users, reports, …), committed, then changed all at once
by a second commit that adds code with real problems for the built-in analysers to find
(bare excepts, unused imports, mutable defaults, undefined names, long and complex
functions; ``shell=True``, ``eval``, ``pickle``, ``yaml.load``, weak hashes, SQL built from
strings, TLS verification off, hard-coded passwords and keys).

The review is the ``review-chain`` shape: ``git_changes`` (files changed since the first
commit) → ``code_review`` and ``security_validation`` over those files. It runs twice, with
the same agents (the built-ins' entrypoints and models) declaring ``chunking:`` over their
``files`` input:

* **chunked** — ``chunk_tokens`` set so the 200 paths split into about ``--chunks`` chunks:
  one Prefect task run per chunk, run in parallel on the thread runner's ``--workers``;
* **unchunked** — ``chunk_tokens`` bigger than the whole list: the work fits, one task run
  per agent (the result is the agent's own, as without ``chunking:``).

Merges: ``findings`` concatenated (chunks are consecutive slices of the sorted file list,
so the concatenation keeps the agents' by-place order), file counts summed, severity counts
and per-rule counts summed (``merge`` functions written next to the manifests). Reported:
task runs, wall time of each run and of the review steps, and whether the merged findings
equal the unchunked ones, as sorted lists and as sets, and the other merged fields.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

PACKAGES = ["orders", "payments", "users", "reports", "inventory", "shipping", "billing", "auth"]

BASE = '''\
"""{package} service, part {n}."""

import json


def load_{n}(path):
    """Read the {package} records of part {n}."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def total_{n}(records):
    """The sum of the records' amounts."""
    return sum(record["amount"] for record in records)
'''

# Problems the change brings in; each file gets a few of them, chosen by its number.
PROBLEMS = [
    """
def parse_{n}(text):
    try:
        return int(text)
    except:
        return None
""",
    """
import os


def cache_{n}(key, store={{}}):
    store[key] = store.get(key, 0) + 1
    return store
""",
    """
def render_{n}(items):
    return ", ".join(str(item) for item in itemz)
""",
    """
import subprocess


def export_{n}(name):
    return subprocess.call("tar czf /tmp/" + name + ".tgz data", shell=True)
""",
    """
def compute_{n}(expression):
    return eval(expression)
""",
    """
import pickle


def restore_{n}(blob):
    return pickle.loads(blob)
""",
    """
import hashlib


def fingerprint_{n}(data):
    return hashlib.md5(data).hexdigest()
""",
    """
import yaml


def settings_{n}(text):
    return yaml.load(text)
""",
    """
def find_{n}(cursor, name):
    cursor.execute("SELECT * FROM {package} WHERE name = '%s'" % name)
    return cursor.fetchall()
""",
    """
import requests


def fetch_{n}(url):
    return requests.get(url, verify=False, timeout=10)
""",
    """
DB_PASSWORD_{n} = "{password}"
""",
    """
AWS_KEY_ID_{n} = "{aws_key}"
""",
]


def _complex(n: int, package: str) -> str:
    """A long function with many branches (long-function, cyclomatic complexity)."""
    lines = [f"\n\ndef reconcile_{n}(records, mode, limit):", "    result = []"]
    for k in range(14):
        lines += [
            f"    if mode == {k} and len(records) > {k}:",
            f"        for record in records[:{k + 1}]:",
            f"            if record.get('{package}_{k}') and record['amount'] > limit:",
            "                result.append(record)",
            "            elif record.get('flag'):",
            "                result.append(dict(record, flagged=True))",
        ]
    lines.append("    return result")
    return "\n".join(lines) + "\n"


def _modules(count: int) -> dict[str, tuple[str, str]]:
    """path -> (first version, changed version)."""
    rng = random.Random(200)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    files: dict[str, tuple[str, str]] = {}
    for i in range(count):
        package = PACKAGES[i % len(PACKAGES)]
        n = f"{i:03d}"
        path = f"shop/{package}/part_{n}.py"
        base = BASE.format(package=package, n=n)
        picks = sorted({i % len(PROBLEMS), (i * 7 + 3) % len(PROBLEMS), (i * 5 + 1) % 11})
        # Secrets made up here, so that this file itself holds none.
        password = "".join(rng.choice(alphabet.lower() + "0123456789") for _ in range(20))
        aws_key = "AK" + "IA" + "".join(rng.choice(alphabet) for _ in range(16))
        changed = base + "".join(
            PROBLEMS[p].format(n=n, package=package, password=password, aws_key=aws_key)
            for p in picks
        )
        if i % 4 == 0:
            changed += _complex(i, package)
        files[path] = (base, changed)
    return files


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def make_repo(repo: Path, count: int) -> str:
    """The repository with the two commits; returns the first commit's id."""
    files = _modules(count)
    repo.mkdir(parents=True)
    _git(repo, "init", "-q")
    for path, (base, _changed) in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(base)
    for package in PACKAGES:
        (repo / "shop" / package / "__init__.py").write_text("")
    (repo / "shop" / "__init__.py").write_text('"""The shop."""\n')
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "shop: first version")
    first = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()
    for path, (_base, changed) in files.items():
        (repo / path).write_text(changed)
    _git(repo, "commit", "-q", "-am", f"shop: features in all {count} modules")
    return first


MERGE = '''
"""Merge functions for the chunked review (called with the chunks' values)."""


def counts(values):
    keys = ("critical", "high", "medium", "low", "info")
    return {k: sum(v.get(k, 0) for v in values) for k in keys}


def rules(values):
    total = {}
    for chunk in values:
        for r in chunk:
            key = (r["rule"], r["severity"])
            total[key] = total.get(key, 0) + r["count"]
    ordered = sorted(total.items(), key=lambda i: (-i[1], i[0][0], i[0][1]))
    return [{"rule": k[0], "severity": k[1], "count": c} for k, c in ordered]


def sorted_union(values):
    return sorted({x for v in values for x in v})
'''

AGENTS = {
    "review": (
        "code_review",
        {
            "findings": "concat",
            "files_analysed": "sum",
            "counts": "review_merge:counts",
            "rules": "review_merge:rules",
            "notes": "review_merge:sorted_union",
        },
    ),
    "security": (
        "security",
        {
            "findings": "concat",
            "files_analysed": "sum",
            "text_files_scanned": "sum",
            "secrets": "sum",
            "counts": "review_merge:counts",
            "notes": "review_merge:sorted_union",
        },
    ),
}


def write_agents(folder: Path, chunk_tokens: int) -> None:
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "review_merge.py").write_text(MERGE)
    for aid, (module, merge) in AGENTS.items():
        manifest = {
            "id": aid,
            "version": "1.0.0",
            "entrypoint": f"agentrt.agents.builtin.{module}:run",
            "input": f"agentrt.agents.builtin.{module}:Input",
            "output": f"agentrt.agents.builtin.{module}:Output",
            "timeout_seconds": 900,
            "cache": {"enabled": False},
            "chunking": {"split": "files", "chunk_tokens": chunk_tokens, "merge": merge},
        }
        (folder / f"{aid}.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


def workflow(repo: Path, since: str, workers: int) -> dict[str, Any]:
    return {
        "name": "chunked-review",
        "params": {"repo": {"type": "path", "default": str(repo)}},
        "concurrency": workers,
        "task_runner": "thread",
        "steps": [
            {"agent": "git_changes", "inputs": {"since": {"value": since}}},
            {"agent": "review", "inputs": {"files": "git_changes.files"}},
            {"agent": "security", "inputs": {"files": "git_changes.files"}},
        ],
    }


def _key(finding: dict[str, Any]) -> str:
    return json.dumps(finding, sort_keys=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; best time kept")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="agentrt-bench-chunk-"))
    os.environ["AGENTRT_HOME"] = str(home)
    os.environ["PREFECT_HOME"] = str(home / "prefect")
    os.environ.pop("PREFECT_API_URL", None)
    # The embedded server can take long to start on a busy machine (default: 20 s).
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ["AGENTRT_ARTIFACTS"] = "off"

    from agentrt.agents.registry import Registry
    from agentrt.context.tokens import count_batch
    from agentrt.flows.run import run_workflow
    from agentrt.flows.workflow import WorkflowManifest

    repo = home / "shop"
    since = make_repo(repo, args.files)
    paths = sorted(_modules(args.files))
    # What chunking counts (agentrt.flows.chunking): each path's own tokens.
    whole = sum(count_batch(paths))
    chunk_tokens = max(1, math.ceil(whole / args.chunks))

    registries = {}
    for label, size in (("unchunked", whole * 10), ("chunked", chunk_tokens)):
        folder = home / f"agents-{label}"
        write_agents(folder, size)
        registries[label] = Registry.discover([folder], env=False, entry_points=False)
        assert not registries[label].problems, registries[label].problems
    spec = WorkflowManifest.model_validate(workflow(repo, since, args.workers))
    # Warm-up, not timed: the embedded Prefect server starts, ruff and bandit are loaded.
    warm = {**spec.model_dump(exclude_none=True), "steps": spec.model_dump()["steps"][:1]}
    run_workflow(WorkflowManifest.model_validate(warm), registry=registries["unchunked"])

    runs: dict[str, Any] = {}
    times: dict[str, list[float]] = {"unchunked": [], "chunked": []}
    steps: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeat):
        for label, registry in registries.items():
            t0 = time.perf_counter()
            result = run_workflow(spec, registry=registry)
            times[label].append(time.perf_counter() - t0)
            assert result.state == "completed" and not result.fallbacks, (label, result.errors)
            runs[label] = result
            for sid in ("review", "security"):
                steps.setdefault((label, sid), []).append(result.steps[sid].duration_seconds)
            print(f"{label}: {times[label][-1]:.1f} s", flush=True)

    def task_runs(result: Any) -> int:
        return sum(len(s.task_run_ids) or 1 for s in result.steps.values())

    def chunks(result: Any, step: str) -> int:
        return result.steps[step].chunks or 1

    checks = []
    for step in ("review", "security"):
        a = runs["unchunked"].steps[step].output
        b = runs["chunked"].steps[step].output
        fa, fb = a["findings"], b["findings"]
        same_list = sorted(fa, key=_key) == sorted(fb, key=_key)
        same_set = {_key(f) for f in fa} == {_key(f) for f in fb}
        in_order = fa == fb
        others = [
            k for k in a if k not in ("findings", "summary", "ruff", "bandit") and a[k] != b[k]
        ]
        checks.append((step, len(fa), len(fb), same_list, same_set, in_order, others))
        assert same_list and same_set, step

    def yes(flag: bool) -> str:
        return "yes" if flag else "**no**"

    def step_time(label: str, step: str) -> str:
        return f"{min(steps[label, step]):.1f} s"

    rows = [
        ("chunks (review / security)", "1 / 1", f"{chunks(runs['chunked'], 'review')} / "
         f"{chunks(runs['chunked'], 'security')}"),
        ("task runs", f"{task_runs(runs['unchunked'])}", f"{task_runs(runs['chunked'])}"),
        ("wall time (whole run)", f"{min(times['unchunked']):.1f} s",
         f"{min(times['chunked']):.1f} s"),
        ("code_review step", step_time("unchunked", "review"), step_time("chunked", "review")),
        (
            "security_validation step",
            step_time("unchunked", "security"),
            step_time("chunked", "security"),
        ),
    ]  # fmt: skip
    table = ["| | unchunked | chunked |", "|---|---:|---:|"]
    table += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    table += ["", "| agent | findings (unchunked / chunked) | equal as sorted lists | "
              "equal as sets | same order | other merged fields that differ |",
              "|---|---:|---|---|---|---|"]  # fmt: skip
    for step, na, nb, same_list, same_set, in_order, others in checks:
        agent = {"review": "code_review", "security": "security_validation"}[step]
        table.append(
            f"| {agent} | {na} / {nb} | {yes(same_list)} | {yes(same_set)} | {yes(in_order)} "
            f"| {', '.join(others) or 'none'} |"
        )
    body = textwrap.dedent(
        f"""\
        A git repository with {args.files} Python modules and one commit changing all of
        them (bare excepts, mutable defaults, undefined names, complex functions,
        `shell=True`, `eval`, `pickle`, `yaml.load`, MD5, SQL from strings, TLS checks off,
        hard-coded passwords and keys). `git_changes` → `code_review` and
        `security_validation` (the built-ins' entrypoints and models, with
        `chunking: {{split: files}}`), thread runner with {args.workers} workers. Chunked:
        `chunk_tokens: {chunk_tokens}` (the {len(paths)} paths are {whole:,} tokens);
        unchunked: `chunk_tokens: {whole * 10:,}`, so the work fits and runs once. The
        summaries and the tools' own run info (`ruff`, `bandit`: first chunk's) are not
        compared. Times: best of {args.repeat} run(s) each, after an untimed warm-up run.
        Every chunk starts its tool (ruff, bandit) as a process of its own, so chunking
        work that fits costs time: it is for work bigger than a grant.
        """
    )
    body += "\n" + "\n".join(table) + "\n"
    print(body)
    if not args.no_write:
        from bench.report import write_section

        path = write_section("chunked_review", "Chunked review of a 200-file change", body)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
