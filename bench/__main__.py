"""`make bench`: every benchmark in turn; each writes its own section of docs/benchmarks.md."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.trees import MIRRORS_ENV

BENCHES = [
    ["bench.orchestration"],
    ["bench.context_selection"],
    # The polyglot issues need the repositories' git snapshots, which no package index has.
    *([["bench.context_selection", "--set", "polyglot"]] if os.environ.get(MIRRORS_ENV) else []),
    *([["bench.index_cost"]] if os.environ.get(MIRRORS_ENV) else []),
    # Refits the learned ranker on both sets (deterministic: the same data, the same weights).
    *([["bench.train_ranker"]] if os.environ.get(MIRRORS_ENV) else []),
    ["bench.impact"],
    ["bench.transcripts"],
    ["bench.hook_context"],
    ["bench.pipelines"],
    ["bench.ingest"],
    ["bench.load"],
    ["bench.llm_budget"],
    ["bench.chunked_review"],
    ["bench.server_runs"],
]


def main() -> int:
    failed = []
    for args in BENCHES:
        print(f"== python -m {' '.join(args)}", flush=True)
        if subprocess.run([sys.executable, "-m", *args]).returncode:
            failed.append(args[0])
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
