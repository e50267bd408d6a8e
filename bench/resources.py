"""Memory admission on the process runner: 20 agents with mixed memory declarations.

    python -m bench.resources [--agents 20] [--memory-mb 800] [--workers 4]

Each agent declares 100–400 MB (``resources.memory_mb``), allocates and touches 80 % of it
in 1 MB pieces and holds it 0.3 s; the workflow has ``resources.memory_mb`` (800 by default)
and more workers than fit. From the run's attempt records (start, end, peak memory), at
every moment: the sum of the declarations of the agents running then (what admission
allowed) and the sum of their measured peaks (each attempt's own RSS growth) — both must
stay within the workflow's memory.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import textwrap
import time
from pathlib import Path

CODE = """
import os
import time

from pydantic import BaseModel, ConfigDict


class HoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mb: int = 0
    seconds: float = 0.3


def hold(inputs: HoldIn) -> dict:
    chunks = [bytearray(1 << 20) for _ in range(inputs.mb)]
    time.sleep(inputs.seconds)
    return {"allocated": len(chunks), "pid": os.getpid()}
"""

SIZES = [100, 150, 200, 250, 300, 350, 400]


def _setup(folder: Path, agents: int, memory_mb: int, workers: int) -> tuple[Path, dict]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench_res.py").write_text(CODE)
    declared = {}
    steps = []
    for i in range(agents):
        mb = SIZES[(i * 3) % len(SIZES)]
        aid = f"hog{i:02d}"
        declared[aid] = mb
        (folder / f"{aid}.yaml").write_text(
            textwrap.dedent(
                f"""\
                id: {aid}
                version: 1.0.0
                entrypoint: bench_res:hold
                input: bench_res:HoldIn
                cache: {{enabled: false}}
                resources: {{memory_mb: {mb}}}
                """
            )
        )
        steps.append(f"  - {{agent: {aid}, inputs: {{mb: {{value: {int(mb * 0.8)}}}}}}}")
    wf = folder / "resources-bench.yaml"
    wf.write_text(
        "name: resources-bench\n"
        f"resources: {{memory_mb: {memory_mb}}}\n"
        f"concurrency: {{max_workers: {workers}}}\n"
        f"task_runner: {{type: process, workers: {workers}}}\n"
        "steps:\n" + "\n".join(steps) + "\n"
    )
    return wf, declared


def _sweep(rows: list[tuple[float, float, float, float]]) -> tuple[float, float, int]:
    """Max over time of the declared sum, the measured sum, and the number running."""
    events = []
    for start, end, declared, peak in rows:
        events.append((start, 1, declared, peak))
        events.append((end, -1, declared, peak))
    events.sort(key=lambda e: (e[0], e[1]))  # ends before starts at the same instant
    decl = meas = best_decl = best_meas = 0.0
    running = best_running = 0
    for _t, sign, d, p in events:
        decl += sign * d
        meas += sign * p
        running += sign
        best_decl, best_meas = max(best_decl, decl), max(best_meas, meas)
        best_running = max(best_running, running)
    return best_decl, best_meas, best_running


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--memory-mb", type=int, default=800)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="agentrt-bench-res-"))
    os.environ["AGENTRT_HOME"] = str(home)
    os.environ["PREFECT_HOME"] = str(home / "prefect")
    os.environ.pop("PREFECT_API_URL", None)

    import pandas as pd

    from agentrt.agents.registry import Registry
    from agentrt.flows.run import run_workflow
    from agentrt.flows.workflow import load_workflow

    wf_path, declared = _setup(home / "agents", args.agents, args.memory_mb, args.workers)
    registry = Registry.discover([home / "agents"], builtin=False, entry_points=False)
    t0 = time.perf_counter()
    result = run_workflow(load_workflow(wf_path), registry=registry)
    wall = time.perf_counter() - t0
    frame = pd.read_parquet(result.report_paths["metrics"])
    frame = frame[frame["executed"]]
    rows = [
        (
            r.started_at.timestamp(),
            r.ended_at.timestamp(),
            float(declared[r.agent_id]),
            float(r.peak_memory_mb or 0.0),
        )
        for r in frame.itertuples()
    ]
    decl, meas, running = _sweep(rows)
    ok = sum(s.state == "completed" for s in result.steps.values())
    over = sum(float(r.peak_memory_mb or 0) > declared[r.agent_id] for r in frame.itertuples())
    limit = f"{args.memory_mb:,}"
    body = textwrap.dedent(
        f"""\
        {args.agents} agents declaring 100–400 MB (sum {sum(declared.values()):,} MB), each
        allocating 80 % of its declaration for 0.3 s; workflow `resources.memory_mb:
        {args.memory_mb}`, process runner with {args.workers} workers.

        | measure | value |
        |---|---|
        | agents completed | {ok} / {args.agents} |
        | wall time | {wall:.1f} s |
        | most agents running at once | {running} |
        | admitted peak: sum of declarations running at once | {decl:,.0f} MB (limit {limit}) |
        | measured peak: sum of running attempts' own RSS growth | {meas:,.0f} MB (limit {limit}) |
        | attempts whose measured peak passed their declaration | {over} |
        """
    )
    print(body)
    assert decl <= args.memory_mb and meas <= args.memory_mb, (decl, meas)
    if not args.no_write:
        from bench.report import write_section

        path = write_section("resources", "Memory admission (process runner)", body)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
