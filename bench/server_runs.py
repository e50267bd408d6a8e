"""`agentrt run` on the managed local Prefect server vs a plain Prefect flow and vs the
ephemeral server, side by side in one run (issue #21).

    python -m bench.server_runs [--repeat 3] [--no-write]

A 50-file repository (Python files of the installed Prefect, copied to a temporary folder)
is analysed once to fill the result cache; then, in each round, every command runs in a
fresh process and its wall time is taken from start to exit:

* ``AGENTRT_SERVER=ephemeral agentrt run code-analysis``: Prefect's ephemeral server (the
  behaviour before the managed server), all agents cached;
* the first run of the day: ``agentrt run code-analysis`` with no server running (each
  round begins with ``agentrt server stop``): it starts the managed server — all agents
  cached;
* warm: ``agentrt run code-analysis`` with the server up, and a one-task plain Prefect flow
  (``python -c`` with a ``@flow`` calling one ``@task``) against the same server, alternated.

Targets: warm agentrt within 1.3× of the plain flow and under 3 s; the first run no more
than 2 s slower than the ephemeral run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = 50

PLAIN_FLOW = """
from prefect import flow, task

@task
def one() -> int:
    return 1

@flow
def plain() -> int:
    return one()

plain()
"""

#: ``agentrt run`` in-process with a mark (wall and CPU seconds since the process started)
#: at each phase boundary, printed as JSON on stderr: where a warm run's time goes.
PHASES = """
import asyncio, atexit, functools, json, resource, sys, time

def now():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return [time.perf_counter(), usage.ru_utime + usage.ru_stime]

START = now()
marks = []
atexit.register(lambda: sys.stderr.write("PHASES " + json.dumps([START, *marks, ["end", *now()]])))

def wrap(module, name, label):
    fn = getattr(module, name)
    if asyncio.iscoroutinefunction(fn):
        async def timed(*a, **k):
            marks.append([label, *now()])
            try:
                return await fn(*a, **k)
            finally:
                marks.append([label + " end", *now()])
    else:
        def timed(*a, **k):
            marks.append([label, *now()])
            try:
                return fn(*a, **k)
            finally:
                marks.append([label + " end", *now()])
    setattr(module, name, functools.wraps(fn)(timed))

import agentrt.cli.root
from agentrt.flows import run, run_outputs, settings
marks.append(["commands", *now()])
wrap(run, "prepare", "plan")
wrap(run, "guard_embedded_server", "prefect")
wrap(run_outputs, "write_run_outputs", "outputs")
wrap(run, "arun_workflow", "run")
sys.argv = ["agentrt", *sys.argv[1:]]
from agentrt.cli import main
main()
"""

#: The phases of a warm run, from the marks of :data:`PHASES` (start mark, end mark).
PHASE_ROWS = [
    ("interpreter, `agentrt` command line and its imports", None, "commands"),
    ("registry, workflow and plan (agent modules imported)", "plan", "plan end"),
    ("`import prefect` (the plain flow pays it too)", "prefect", "prefect end"),
    ("the flow run: 4 cached task runs, API calls", "prefect end", "outputs"),
    ("metrics Parquet file (pandas, pyarrow), report files", "outputs", "outputs end"),
    ("summary, artifacts, exit", "run end", "end"),
]


def _repository(dest: Path) -> Path:
    """50 Python files of the installed Prefect (sorted, so every run sees the same ones)."""
    spec = importlib.util.find_spec("prefect")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("prefect is not installed")
    src = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(p for p in src.rglob("*.py") if "__pycache__" not in p.parts)[:FILES]
    for path in files:
        target = dest / "pkg" / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return dest


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AGENTRT_"))}
    env.update(AGENTRT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", **extra)
    return env


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall and CPU seconds (user + system) of ``command``, and its output."""
    cpu0, t0 = _cpu(), time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall, cpu, done.stdout


def _agentrt_run(repo: Path, env: dict[str, str]) -> dict:
    command = [sys.executable, "-m", "agentrt.cli", "run", "code-analysis", "-p", f"repo={repo}"]
    wall, cpu, out = _timed([*command, "--json"], env)
    result = json.loads(out)
    # A kind: llm step with no model configured is a fallback served from the cache.
    states = {
        "cached" if s["state"] == "cached" or s.get("from_cache") else s["state"]
        for s in result["steps"].values()
    }
    if states != {"cached"}:
        raise SystemExit(f"expected every agent cached, got {states}")
    return {"wall": wall, "cpu": cpu, "flow": result["duration_seconds"]}


def _stats(values: list[float], cpu: list[float] | None = None) -> str:
    cpu_text = f"{statistics.median(cpu):.2f} s" if cpu else ""
    return f"{statistics.median(values):.2f} s | {min(values):.2f} s | {cpu_text} | {len(values)}"


def _phases(repo: Path, env: dict[str, str]) -> dict[str, tuple[float, float]]:
    """Wall and CPU seconds of each phase of a warm ``agentrt run`` (see :data:`PHASES`)."""
    command = [sys.executable, "-c", PHASES, "run", "code-analysis", "-p", f"repo={repo}"]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    line = next((ln for ln in done.stderr.splitlines() if ln.startswith("PHASES ")), None)
    if line is None:
        raise SystemExit(f"no phase marks: {done.stderr[-2000:]}")
    start, *marks = json.loads(line.removeprefix("PHASES "))
    at = {label: (t, c) for label, t, c in marks}
    at[None] = (start[0], 0.0)  # the interpreter's own start is in the first mark's CPU
    return {
        name: (at[b][0] - at[a][0], at[b][1] - at[a][1])
        for name, a, b in PHASE_ROWS
        if a in at and b in at
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    agentrt = [sys.executable, "-m", "agentrt.cli"]
    with tempfile.TemporaryDirectory(prefix="agentrt-bench-server-") as tmp:
        repo = _repository(Path(tmp) / "repo")
        home = Path(tmp) / "home"
        managed = _env(home)
        # (Prefect gives its ephemeral server 20 s to start: not always enough on 2 busy cores.)
        ephemeral = _env(
            home, AGENTRT_SERVER="ephemeral", PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120"
        )
        wall: dict[str, list[float]] = {k: [] for k in ("ephemeral", "first", "warm", "plain")}
        cpu: dict[str, list[float]] = {k: [] for k in wall}
        flow: list[float] = []
        phases: list[dict[str, tuple[float, float]]] = []

        def record(name: str, run: dict) -> None:
            wall[name].append(run["wall"])
            cpu[name].append(run["cpu"])

        try:
            warmup = [*agentrt, "run", "code-analysis", "-p", f"repo={repo}"]
            _timed(warmup, managed)  # creates the database, fills the cache
            for round_no in range(args.repeat):
                _timed([*agentrt, "server", "stop"], managed)  # the day starts: no server
                record("ephemeral", _agentrt_run(repo, ephemeral))
                record("first", _agentrt_run(repo, managed))
                status = json.loads(_timed([*agentrt, "server", "status", "--json"], managed)[2])
                plain_env = _env(
                    home, PREFECT_API_URL=status["api_url"], PREFECT_HOME=status["prefect_home"]
                )
                for _ in range(2):
                    warm_run = _agentrt_run(repo, managed)
                    record("warm", warm_run)
                    flow.append(warm_run["flow"])
                    plain_wall, plain_cpu, _ = _timed([sys.executable, "-c", PLAIN_FLOW], plain_env)
                    record("plain", {"wall": plain_wall, "cpu": plain_cpu})
                phases.append(_phases(repo, managed))
                print(f"round {round_no + 1}: " + ", ".join(
                    f"{k} {v[-1]:.2f} s ({cpu[k][-1]:.2f} s CPU)" for k, v in wall.items()
                ), flush=True)  # fmt: skip
        finally:
            subprocess.run([*agentrt, "server", "stop"], env=managed, capture_output=True)

    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    pairs = [a / b for a, b in zip(wall["warm"], wall["plain"], strict=True)]
    lines = [
        "| command (a fresh process; every agent cached) | wall, median | wall, best | CPU, median "
        "| runs |",
        "|---|---:|---:|---:|---:|",
        f"| `agentrt run code-analysis`, managed server up (warm) | "
        f"{_stats(wall['warm'], cpu['warm'])} |",
        f"| … of which the flow run | {_stats(flow)} |",
        f"| plain Prefect flow with one task, same server | "
        f"{_stats(wall['plain'], cpu['plain'])} |",
        f"| `agentrt run code-analysis`, first run: starts the server | "
        f"{_stats(wall['first'], cpu['first'])} |",
        f"| `AGENTRT_SERVER=ephemeral agentrt run code-analysis` (as before) | "
        f"{_stats(wall['ephemeral'], cpu['ephemeral'])} |",
    ]
    lines += [
        "",
        "Where a warm `agentrt run` spends its time (the same run in-process with a mark at "
        "each phase, one per round; medians):",
        "",
        "| phase | wall | CPU |",
        "|---|---:|---:|",
    ]
    for name, _a, _b in PHASE_ROWS:
        values = [p[name] for p in phases if name in p]
        if values:
            lines.append(
                f"| {name} | {statistics.median(v[0] for v in values):.2f} s "
                f"| {statistics.median(v[1] for v in values):.2f} s |"
            )
    body = "\n".join(lines) + (
        f"\n\n- Warm agentrt / plain flow: **{med['warm'] / med['plain']:.2f}×** wall (medians; "
        f"per pair {min(pairs):.2f}–{max(pairs):.2f}×), {med_cpu['warm'] / med_cpu['plain']:.2f}× "
        f"CPU; target ≤ 1.3×. Warm run **{med['warm']:.2f} s**, target < 3 s.\n"
        f"- First run − ephemeral run: **{med['first'] - med['ephemeral']:+.2f} s** (medians), "
        f"target ≤ +2 s. The server's start (first run − warm run): "
        f"{med['first'] - med['warm']:.1f} s.\n"
        "- Phases: the plain flow pays the interpreter, `import prefect` and a flow run too "
        "(its flow imports Prefect's flow and task engine, as agentrt's does); the command "
        "line, the plan and the metrics and report files are agentrt's own.\n"
        f"- {FILES} Python files of the installed Prefect; {args.repeat} rounds, each: "
        "`agentrt server stop`, the ephemeral run, the first run, then warm agentrt and the plain "
        "flow alternated twice. Wall: the whole process, start to exit; CPU: its user + "
        "system time (the server's not included). The 2 cores are shared with whatever else "
        "runs (load average above)."
    )
    print(body)
    if not args.no_write:
        from bench.report import write_section

        write_section("server_runs", "Runs on the managed local Prefect server (issue #21)", body)


if __name__ == "__main__":
    main()
