"""Time the built-in analysers on real trees nobody here wrote (prefect and pandas as installed).

Each analyser runs cold in a fresh interpreter (imports included, no cache), then all five
run together in one process on a thread pool, as the runtime runs concurrent steps.

    python -m bench.builtin_agents [--trees prefect pandas]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.report import write_section

AGENTS = ["architecture", "code_review", "security", "performance", "documentation"]

_CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
import importlib
mod = importlib.import_module("agentrt.agents.builtin." + sys.argv[1])
out = mod.run(mod.Input(repo=sys.argv[2]))
wall = time.perf_counter() - t0
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
findings = getattr(out, "findings", None) or getattr(out, "undocumented", [])
print(json.dumps({"wall": wall, "cpu": cpu, "files": out.files_analysed,
                  "findings": len(findings), "summary": out.summary}))
"""


def _cold(agent: str, tree: Path) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, agent, str(tree)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _together(tree: Path) -> float:
    import importlib

    modules = [importlib.import_module(f"agentrt.agents.builtin.{a}") for a in AGENTS]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(modules)) as pool:
        list(pool.map(lambda m: m.run(m.Input(repo=str(tree))), modules))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trees", nargs="+", default=["prefect", "pandas"])
    args = parser.parse_args()
    site = Path(sysconfig.get_paths()["purelib"])
    rows = []
    for name in args.trees:
        tree = site / name
        if not tree.is_dir():
            print(f"skipping {name}: not installed at {tree}", file=sys.stderr)
            continue
        py_files = sum(1 for _ in tree.rglob("*.py"))
        total_cpu = 0.0
        for agent in AGENTS:
            r = _cold(agent, tree)
            total_cpu += float(r["cpu"])  # type: ignore[arg-type]
            print(
                f"{name:8} {agent:14} {r['wall']:6.1f}s wall {r['cpu']:6.1f}s cpu  {r['summary']}"
            )
            rows.append(
                f"| {name} ({py_files} .py) | {agent} | {r['files']} | {r['findings']} "
                f"| {r['wall']:.1f} | {r['cpu']:.1f} |"
            )
        together = _together(tree)
        print(f"{name:8} all five together: {together:.1f}s wall")
        rows.append(
            f"| {name} ({py_files} .py) | **all five, concurrently** | | | **{together:.1f}** "
            f"| {total_cpu:.1f} (sum) |"
        )
    body = (
        "Each analyser cold in a fresh interpreter (imports included; CPU includes the ruff "
        "and bandit subprocesses), then all five at once on a thread pool in one process. "
        "Security runs bandit on non-test code (the secret scan covers everything). Files: "
        "what the analyser read; code_review's count includes the files of other languages "
        "that lizard measured (prefect's non-minified UI JavaScript).\n\n"
        "| Tree | Analyser | Files | Findings | Wall s | CPU s |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    body += (
        f"\n\nLoad average when the run ended: {load} (the 2 cores are shared with other work). "
        "Together, the analysers share one interpreter's GIL; only ruff and bandit, "
        "subprocesses, use the second core."
    )
    write_section(
        "builtin_agents",
        "Built-in analysers on real trees",
        body,
        command="python -m bench.builtin_agents",
    )


if __name__ == "__main__":
    main()
