"""`make bench`: every benchmark in turn; each writes its own section of docs/benchmarks.md."""

from __future__ import annotations

import subprocess
import sys

BENCHES = [
    ["bench.orchestration"],
    ["bench.context_selection"],
    ["bench.impact"],
    ["bench.transcripts"],
    ["bench.pipelines"],
    ["bench.ingest"],
    ["bench.load"],
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
