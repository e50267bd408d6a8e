"""Load: many ``agentrt run`` processes against one Prefect server and one AGENTRT_HOME, and
one workflow of 1,000 agents.

    python -m bench.load [--workflows 20] [--slots 3] [--limit 2] [--agents 1000]

* **concurrent workflows**: ``--workflows`` separate ``agentrt run`` processes start at once,
  all pointed at one Prefect server (``PREFECT_API_URL``) and one ``AGENTRT_HOME`` (so one
  context store, one result cache, one metrics folder). Each runs ``context_gathering`` on
  the same repository (concurrent writers of the context store) and ``--slots`` agents tagged
  ``rel_slot``, limited server-side to ``--limit`` at once by a Prefect tag concurrency
  limit (a global concurrency limit named ``tag:rel_slot``). Checked: every run completes,
  every attempt has a metrics record, never more than ``--limit`` slot agents ran at once
  (from the records' timestamps), and the context store passes ``diskcache``'s ``check()``.
* **a 1,000-agent workflow**: ten levels of ``--agents/10`` no-op agents, each waiting for one
  agent of the level above. Reported: the run's wall time, and how long the server took to
  record every task run as completed (Prefect ingests task-run state changes as events,
  asynchronously), as task runs and state changes per second.

The agents are the reliability tests' fault-injection agents (``tests/reliability/
fault_agents``). The Prefect server is a temporary one on SQLite (Prefect's test harness).
``tests/reliability/test_load.py`` runs a small version of both in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FAULT_AGENTS = ROOT / "tests" / "reliability" / "fault_agents"
SLOT_TAG = "rel_slot"

__all__ = [
    "BigRun",
    "LoadRun",
    "big_workflow",
    "concurrent_workflow",
    "max_overlap",
    "run_big",
    "run_concurrent",
    "set_tag_limit",
    "store_problems",
]


# -- concurrent workflows --------------------------------------------------------------
def concurrent_workflow(index: int, slots: int, seconds: float) -> str:
    """Workflow ``index`` of a concurrent batch: context_gathering plus ``slots`` tagged agents."""
    lines = [
        f"name: rel-load-{index}",
        "params:",
        "  repo: {type: path, required: true}",
        "concurrency: 8",
        "steps:",
        "  - agent: context_gathering",
        "    id: ctx",
        '    inputs: {repo: params.repo, task: {value: "concurrency limits and retries"}}',
    ]
    for j in range(slots):
        lines += [
            "  - agent: fault_slot",
            f"    id: slot{j}",
            f"    inputs: {{name: {{value: w{index}-slot{j}}}, seconds: {{value: {seconds}}}}}",
        ]
    return "\n".join(lines) + "\n"


def set_tag_limit(api_url: str, tag: str, limit: int | None) -> None:
    """Create (or, with ``limit=None``, delete) the server-side limit for a task tag.

    Prefect 3.8 keeps tag limits as global concurrency limits named ``tag:<tag>`` (the v1
    ``/concurrency_limits/`` endpoint creates the same thing); they hold across processes,
    unlike a workflow's in-process ``concurrency.tags``.
    """
    import httpx

    name = f"tag:{tag}"
    with httpx.Client(base_url=api_url, timeout=30) as client:
        client.delete(f"/v2/concurrency_limits/{name}")
        if limit is not None:
            response = client.post(
                "/v2/concurrency_limits/", json={"name": name, "limit": limit, "active": True}
            )
            response.raise_for_status()


@dataclass
class LoadRun:
    """What the concurrent batch did."""

    workflows: int
    wall_seconds: float
    codes: list[int]
    results: list[dict[str, Any]]
    errors: list[str]
    max_slot_overlap: int
    slot_records: int
    records_missing: list[str]
    store_problems: list[str]
    store_entries: int
    run_seconds: list[float] = field(default_factory=list)


def max_overlap(spans: list[tuple[Any, Any]]) -> int:
    """The most intervals ``[start, end)`` open at one instant."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = current = 0
    for _, delta in events:  # ends sort before starts at the same instant
        current += delta
        most = max(most, current)
    return most


def store_problems(home: Path) -> tuple[list[str], int]:
    """Read every entry of the context store under ``home``; return problems and entry count."""
    from agentrt.context.store import ContextStore

    problems: list[str] = []
    with ContextStore(home / "context") as store:
        keys = list(store.cache.iterkeys())
        for key in keys:
            try:
                store.get(key)
            except Exception as exc:  # any unreadable entry is a finding
                problems.append(f"{key}: {type(exc).__name__}: {exc}")
        problems += [str(w) for w in store.cache.check()]
    return problems, len(keys)


def _env(home: Path, api_url: str, log: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AGENTRT_"))}
    env.update(
        {
            "AGENTRT_HOME": str(home),
            "AGENTRT_FAULT_LOG": str(log),
            "PREFECT_API_URL": api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PYTHONPATH": str(ROOT),
            "NO_COLOR": "1",
        }
    )
    return env


def run_concurrent(
    workdir: Path,
    api_url: str,
    repo: Path,
    *,
    workflows: int,
    slots: int = 3,
    limit: int = 2,
    seconds: float = 0.5,
    timeout: float = 600,
) -> LoadRun:
    """Start ``workflows`` ``agentrt run`` processes at once and check what they left behind."""
    from agentrt.flows.metrics import load_records

    home, log = workdir / "home", workdir / "log"
    log.mkdir(parents=True, exist_ok=True)
    env = _env(home, api_url, log)
    set_tag_limit(api_url, SLOT_TAG, limit)
    procs = []
    t0 = time.perf_counter()
    try:
        for i in range(workflows):
            path = workdir / f"rel-load-{i}.yaml"
            path.write_text(concurrent_workflow(i, slots, seconds))
            command = [sys.executable, "-m", "agentrt.cli", "run", str(path)]
            command += ["-A", str(FAULT_AGENTS), "-p", f"repo={repo}", "--json"]
            procs.append(
                subprocess.Popen(
                    command,
                    env=env,
                    cwd=workdir,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    start_new_session=True,
                )
            )
        outputs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        set_tag_limit(api_url, SLOT_TAG, None)
    wall = time.perf_counter() - t0
    results, errors = [], []
    for p, (out, err) in zip(procs, outputs, strict=True):
        try:
            results.append(json.loads(out))
        except ValueError:
            results.append({})
            errors.append(f"exit {p.returncode}: {err[-2000:]}")
    records = load_records(home / "metrics")
    slot = records[(records["agent_id"] == "fault_slot") & records["executed"]]
    spans = list(zip(slot["started_at"], slot["ended_at"], strict=True))
    missing = []
    for result in results:
        run_id = result.get("flow_run_id")
        mine = records[records["flow_run_id"] == run_id]
        if not run_id or sorted(mine[mine["final"]]["step"]) != sorted(result.get("steps", {})):
            missing.append(str(run_id))
    problems, entries = store_problems(home)
    return LoadRun(
        workflows=workflows,
        wall_seconds=round(wall, 2),
        codes=[p.returncode for p in procs],
        results=results,
        errors=errors,
        max_slot_overlap=max_overlap(spans),
        slot_records=len(slot),
        records_missing=missing,
        store_problems=problems,
        store_entries=entries,
        run_seconds=[r.get("duration_seconds", 0.0) for r in results],
    )


# -- one big workflow ------------------------------------------------------------------
def big_workflow(agents: int, levels: int = 10) -> dict[str, Any]:
    """``levels`` levels of ``agents/levels`` no-op agents; each waits for one of the level
    above, so the run has real dependencies, not a flat fan-out."""
    width = max(agents // levels, 1)
    steps = []
    for level in range(levels):
        for k in range(width):
            sid = f"l{level}_{k}"
            entry: dict[str, Any] = {
                "agent": "fault",
                "id": sid,
                "inputs": {"name": {"value": sid}},
            }
            if level:
                entry["after"] = [f"l{level - 1}_{k}"]
            steps.append(entry)
    return {"name": f"rel-big-{agents}", "concurrency": 16, "steps": steps}


@dataclass
class BigRun:
    agents: int
    state: str
    wall_seconds: float
    recorded_seconds: float
    task_runs_completed: int
    records: int

    @property
    def task_runs_per_second(self) -> float:
        return self.task_runs_completed / self.recorded_seconds if self.recorded_seconds else 0.0

    @property
    def lag_seconds(self) -> float:
        """How long after the run ended the server had recorded every task run."""
        return max(self.recorded_seconds - self.wall_seconds, 0.0)

    @property
    def state_changes_per_second(self) -> float:
        # Pending, Running, Completed: three state events per task run.
        return 3 * self.task_runs_per_second


def _completed_task_runs(api_url: str, flow_run_id: str) -> int:
    import httpx

    body = {
        "task_runs": {
            "flow_run_id": {"any_": [flow_run_id]},
            "state": {"type": {"any_": ["COMPLETED"]}},
        }
    }
    response = httpx.post(f"{api_url}/task_runs/count", json=body, timeout=30)
    response.raise_for_status()
    return int(response.json())


def run_big(api_url: str, agents: int = 1000, wait: float = 300) -> BigRun:
    """Run the big workflow in this process (against ``api_url``) and time the server.

    The fault agents log to ``$AGENTRT_FAULT_LOG``, which the caller sets.
    """
    import pandas as pd

    from agentrt.agents.registry import Registry
    from agentrt.flows.run import run_workflow
    from agentrt.flows.workflow import WorkflowManifest

    registry = Registry.discover([FAULT_AGENTS], builtin=False, env=False, entry_points=False)
    workflow = WorkflowManifest.model_validate(big_workflow(agents))
    t0 = time.perf_counter()
    result = run_workflow(workflow, registry=registry)
    wall = time.perf_counter() - t0
    completed = 0
    deadline = time.monotonic() + wait
    while result.flow_run_id and time.monotonic() < deadline:
        completed = _completed_task_runs(api_url, result.flow_run_id)
        if completed >= len(result.steps):
            break
        time.sleep(0.5)
    recorded = time.perf_counter() - t0
    metrics = result.report_paths.get("metrics")
    records = len(pd.read_parquet(metrics)) if metrics else 0
    return BigRun(
        agents=len(result.steps),
        state=result.state,
        wall_seconds=round(wall, 2),
        recorded_seconds=round(recorded, 2),
        task_runs_completed=completed,
        records=records,
    )


# -- the benchmark ---------------------------------------------------------------------
def _repo(target: Path) -> Path:
    import shutil

    for package in ("context", "flows", "agents"):
        shutil.copytree(
            ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=20)
    parser.add_argument("--slots", type=int, default=3)
    parser.add_argument("--limit", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true", help="Do not update the docs.")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="agentrt-load-"))
    os.environ["AGENTRT_HOME"] = str(work / "bench-home")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    os.environ["PREFECT_HOME"] = str(work / "prefect")
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        api_url = str(PREFECT_API_URL.value())
        load = run_concurrent(
            work / "concurrent",
            api_url,
            _repo(work / "repo"),
            workflows=args.workflows,
            slots=args.slots,
            limit=args.limit,
            seconds=args.seconds,
        )
        os.environ["AGENTRT_FAULT_LOG"] = str(work / "big-log")
        big = run_big(api_url, args.agents)
    ok = (
        not load.errors
        and set(load.codes) == {0}
        and not load.records_missing
        and not load.store_problems
        and load.max_slot_overlap <= args.limit
        and big.state == "completed"
        and big.task_runs_completed == big.agents
    )
    runs = sorted(load.run_seconds)
    body = "\n".join(
        [
            "| measure | value |",
            "|---|---|",
            f"| concurrent `agentrt run` processes | {load.workflows} (all exit 0: "
            f"{set(load.codes) == {0}}) |",
            f"| wall time, start of the first to end of the last | {load.wall_seconds:.1f} s |",
            f"| flow run duration, median / max | {runs[len(runs) // 2]:.1f} s / "
            f"{runs[-1]:.1f} s |",
            f"| `rel_slot` agents at once (limit {args.limit}), from "
            f"{load.slot_records} records | {load.max_slot_overlap} |",
            f"| runs with missing metrics records | {len(load.records_missing)} |",
            f"| context store: entries / problems after `check()` | {load.store_entries} / "
            f"{len(load.store_problems)} |",
            f"| {big.agents}-agent workflow: state, wall time | {big.state}, "
            f"{big.wall_seconds:.1f} s |",
            f"| … every task run recorded completed by the server | {big.recorded_seconds:.1f} s "
            f"after the start, {big.lag_seconds:.1f} s after the run ended "
            f"({big.task_runs_completed} task runs) |",
            f"| … server ingestion rate, sustained | {big.task_runs_per_second:.0f} task runs/s "
            f"(~{big.state_changes_per_second:.0f} state-change events/s) |",
            f"| … metrics records | {big.records} |",
        ]
    )
    print(body)
    if load.errors:
        print("\n".join(load.errors), file=sys.stderr)
    if not args.no_write:
        from bench.report import write_section

        write_section(
            "load",
            "Load: concurrent workflows and a 1,000-agent workflow",
            body,
            "python -m bench.load "
            f"--workflows {args.workflows} --slots {args.slots} --limit {args.limit} "
            f"--agents {args.agents}",
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
