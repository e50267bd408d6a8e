"""How many agent task runs per second a Prefect server ingests: SQLite vs PostgreSQL.

    python -m bench.ingest [--tasks 400] [--clients 2] [--rounds 2]

For each backend, a real ``prefect server start`` (SQLite file, or a local PostgreSQL
cluster that syncs its writes) on a free loopback port; ``--clients`` processes each run
one agentrt workflow of ``tasks / clients`` no-op agents (``bench/agents/noop``, 16 at a
time) against it, all at once. Ingestion is measured on the server side: from the first
client's start until the API reports every task run COMPLETED (Prefect 3 clients send task
run states as events; the server's task-run recorder writes them). The client-side time
(until the flows returned) is shown next to it. Both servers run on this machine with the
clients, as on a developer's laptop; the table is written to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.deploy.servers import Postgres, PrefectServer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

CONCURRENCY = 16


# -- client (a subprocess per client, so each has its own Prefect settings) ----------
def client(api_url: str, tasks: int, tag: str) -> dict[str, Any]:
    """Run one workflow of ``tasks`` no-op agents against ``api_url``; timings as JSON."""
    os.environ["PREFECT_API_URL"] = api_url
    from agentrt.agents.registry import Registry
    from agentrt.flows.run import run_workflow
    from agentrt.flows.workflow import WorkflowManifest

    registry = Registry.discover([HERE / "agents"], builtin=False, entry_points=False)
    workflow = WorkflowManifest.model_validate(
        {
            "name": f"ingest-{tag}",
            "concurrency": CONCURRENCY,
            "steps": [
                {"agent": "noop", "id": f"s{i:04d}", "inputs": {"i": {"value": i}}}
                for i in range(tasks)
            ],
        }
    )
    started = time.time()
    result = run_workflow(workflow, registry=registry)
    ended = time.time()
    if result.state != "completed":
        raise SystemExit(f"client {tag}: {[e.render() for e in result.errors]}")
    return {"flow_run_id": result.flow_run_id, "started": started, "ended": ended}


# -- driver --------------------------------------------------------------------------
def _completed(http: httpx.Client, flow_run_ids: list[str]) -> int:
    body = {
        "flow_runs": {"id": {"any_": flow_run_ids}},
        "task_runs": {"state": {"type": {"any_": ["COMPLETED"]}}},
    }
    response = http.post("/task_runs/count", json=body)
    response.raise_for_status()
    return int(response.json())


def one_round(server: PrefectServer, tasks: int, clients: int, work: Path) -> dict[str, float]:
    per_client = tasks // clients
    env = server.client_env(
        AGENTRT_HOME=str(work / "agentrt"),
        PREFECT_LOGGING_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    procs = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "bench.ingest", "--client", server.api_url),
                *("--tasks", str(per_client), "--tag", str(i)),
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(clients)
    ]
    reports = []
    for proc in procs:
        out, _ = proc.communicate(timeout=900)
        if proc.returncode:
            raise SystemExit(f"a client failed ({proc.returncode})")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    ids = [r["flow_run_id"] for r in reports]
    expected = per_client * clients
    with httpx.Client(base_url=server.api_url, timeout=30) as http:
        deadline = time.time() + 300
        while (done := _completed(http, ids)) < expected:
            if time.time() > deadline:
                raise SystemExit(f"only {done}/{expected} task runs recorded after 300 s")
            time.sleep(0.2)
    recorded = time.time()
    first = min(r["started"] for r in reports)
    client_wall = max(r["ended"] for r in reports) - first
    ingest_wall = recorded - first
    return {
        "task_runs": expected,
        "client_s": client_wall,
        "ingest_s": ingest_wall,
        "rate": expected / ingest_wall,
        "lag_s": ingest_wall - client_wall,
    }


def measure(label: str, database_url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"agentrt-ingest-{label}-"))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, work, ignore_errors=True)
        server = cleanup.enter_context(PrefectServer(work / "server", database_url=database_url))
        print(f"{label}: server up in {server.startup_seconds}s; warm-up", flush=True)
        one_round(server, 2 * args.clients, args.clients, work)  # imports, tables, caches
        rounds = []
        for i in range(args.rounds):
            r = one_round(server, args.tasks, args.clients, work)
            print(
                f"{label}: round {i + 1}: {r['task_runs']} task runs recorded in "
                f"{r['ingest_s']:.1f}s ({r['rate']:.1f}/s); clients done in {r['client_s']:.1f}s",
                flush=True,
            )
            rounds.append(r)
    return {
        "backend": label,
        "task_runs": rounds[0]["task_runs"],
        "ingest_s": statistics.median(r["ingest_s"] for r in rounds),
        "client_s": statistics.median(r["client_s"] for r in rounds),
        "lag_s": statistics.median(r["lag_s"] for r in rounds),
        "rate": statistics.median(r["rate"] for r in rounds),
        "best": max(r["rate"] for r in rounds),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=400, help="task runs per round (all clients)")
    parser.add_argument("--clients", type=int, default=2, help="client processes at once")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--client", metavar="API_URL", help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="0", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(client(args.client, args.tasks, args.tag)))
        return 0

    load = os.getloadavg()[0]
    rows = [measure("SQLite", None, args)]
    with Postgres(durable=True) as postgres:
        rows.append(measure("PostgreSQL", postgres.url, args))

    base = rows[0]["rate"]
    lines = [
        "| server database | task runs / round | clients done in | all recorded in "
        "| recorder lag | agent task runs / s (median) | best round | vs SQLite |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['task_runs']} | {r['client_s']:.1f} s | {r['ingest_s']:.1f} s "
            f"| {r['lag_s']:.1f} s | {r['rate']:.1f} | {r['best']:.1f} | {r['rate'] / base:.2f}× |"
        )
    body = "\n".join(lines) + (
        f"\n\n{args.clients} client processes at once, each one agentrt workflow of "
        f"{args.tasks // args.clients} no-op agents ({CONCURRENCY} at a time, thread runner); "
        f"{args.rounds} rounds after a warm-up; medians. *Clients done*: from the first client's "
        "start until the last flow returned. *All recorded*: until the server's API reports "
        "every task run COMPLETED (the rate column); *recorder lag* is the difference, the "
        "server still writing task run states after the clients finished. Server, database "
        "and clients share this machine's 2 cores (load average "
        f"{load:.1f} at the start, from other work too), so these are floors for a server on "
        "its own host. PostgreSQL: a local cluster with default durability (fsync on)."
    )
    from bench.report import write_section

    print(body)
    write_section(
        "ingest",
        "Prefect server ingestion: SQLite vs PostgreSQL",
        body,
        command="python -m bench.ingest" + "".join(f" {a}" for a in sys.argv[1:]),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
