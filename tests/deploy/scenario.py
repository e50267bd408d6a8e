"""The deployment scenario, step by step as a user runs it (docs/deploy.md).

``prefect work-pool create`` → ``prefect deploy --all`` (from the repository root, reading
``prefect.yaml``) → ``agentrt events push`` → the trigger schedules a ``review-on-push``
flow run → ``prefect worker start --run-once`` runs it → the API shows it completed with
its task runs and artifacts. Every step is a real subprocess against a real server.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from agentrt.flows.run import prepare
from tests.deploy.servers import PrefectServer

REPO_ROOT = Path(__file__).resolve().parents[2]
POOL = "agentrt"  # the work pool prefect.yaml names
PUSH_DEPLOYMENT = "review-on-push"
FILES = {
    "pkg/__init__.py": '"""A package."""\n',
    "pkg/calc.py": '"""Arithmetic."""\n\n\ndef add(a, b):\n    """Sum."""\n    return a + b\n',
    "pkg/shell.py": (
        '"""Runs commands."""\nimport subprocess\n\n\n'
        "def run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
    ),
}


def git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "PATH": "/usr/bin:/bin:/usr/local/bin",
    }
    done = subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=env
    )
    return done.stdout.strip()


@dataclass
class SmallRepo:
    path: Path
    first: str  # the commit before the push
    pushed: str  # the pushed commit: it changes pkg/calc.py only


def make_small_repo(root: Path) -> SmallRepo:
    """A git repository with two commits; the second changes one file."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "first")
    first = git(root, "rev-parse", "HEAD")
    with (root / "pkg/calc.py").open("a") as f:
        f.write('\n\ndef mul(a, b):\n    """Product."""\n    return a * b\n')
    git(root, "commit", "-qam", "second")
    return SmallRepo(root, first, git(root, "rev-parse", "HEAD"))


def run(
    args: list[str], env: dict[str, str], *, cwd: Path, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run a command; fail with its whole output when it fails."""
    done = subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode:
        hint = ""
        if "workers/filter" in done.stdout + done.stderr and "422" in done.stdout + done.stderr:
            hint = (
                "\nhint: fastapi >= 0.151 rejects the null `limit` Prefect 3.8's CLI sends; "
                "install fastapi<0.151 (pyproject pin)"
            )
        raise AssertionError(
            f"{' '.join(args)} exited {done.returncode}\n--- stdout\n{done.stdout}\n"
            f"--- stderr\n{done.stderr}{hint}"
        )
    return done


@dataclass
class Outcome:
    """What the API says about the triggered run, and how long each step took."""

    flow_run: dict[str, Any]
    task_runs: list[dict[str, Any]]
    artifacts: list[dict[str, Any]]
    deployments: list[dict[str, Any]]
    event: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


class Api:
    """The few REST calls the assertions need (what the UI itself reads)."""

    def __init__(self, api_url: str) -> None:
        self.http = httpx.Client(base_url=api_url, timeout=30)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = self.http.post(path, json=body)
        response.raise_for_status()
        return response.json()

    def get(self, path: str) -> Any:
        response = self.http.get(path)
        response.raise_for_status()
        return response.json()

    def deployments(self) -> list[dict[str, Any]]:
        return self.post("/deployments/filter", {})

    def flow_runs_of(self, deployment_id: str) -> list[dict[str, Any]]:
        return self.post(
            "/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}}
        )

    def task_runs_of(self, flow_run_id: str) -> list[dict[str, Any]]:
        return self.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})

    def artifacts_of(self, flow_run_id: str) -> list[dict[str, Any]]:
        return self.post(
            "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}
        )


def deploy_push_and_run(server: PrefectServer, repo: SmallRepo, work: Path) -> Outcome:
    """The whole scenario; returns what the API shows afterwards."""
    timings: dict[str, float] = {}
    env = server.client_env(AGENTRT_HOME=str(work / "agentrt"))
    python = sys.executable

    def step(name: str, args: list[str], *, cwd: Path = REPO_ROOT, timeout: float = 180) -> str:
        t0 = time.monotonic()
        done = run(args, env, cwd=cwd, timeout=timeout)
        timings[name] = round(time.monotonic() - t0, 1)
        return done.stdout

    step(
        "work-pool create",
        [python, "-m", "prefect", "work-pool", "create", POOL, "--type", "process"],
    )
    step("deploy --all", [python, "-m", "prefect", "--no-prompt", "deploy", "--all"])
    api = Api(server.api_url)
    deployments = api.deployments()
    push = next(d for d in deployments if d["name"] == PUSH_DEPLOYMENT)

    out = step(
        "events push",
        [
            *(python, "-m", "agentrt.cli", "events", "push"),
            *("--repo", str(repo.path), "--rev", "HEAD", "--json"),
        ],
        cwd=work,
    )
    event = json.loads(out)

    t0 = time.monotonic()
    runs: list[dict[str, Any]] = []
    while time.monotonic() - t0 < 90 and not runs:
        runs = api.flow_runs_of(push["id"])
        if not runs:
            time.sleep(0.5)
    timings["trigger → scheduled run"] = round(time.monotonic() - t0, 1)
    assert runs, f"no {PUSH_DEPLOYMENT} flow run 90 s after the event {event}"
    assert len(runs) == 1, f"one event should start one run, got {len(runs)}"

    step(
        "worker --run-once",
        [python, "-m", "prefect", "worker", "start", "--pool", POOL, "--run-once"],
        cwd=work,
        timeout=300,
    )
    flow_run = api.get(f"/flow_runs/{runs[0]['id']}")
    return Outcome(
        flow_run=flow_run,
        task_runs=api.task_runs_of(flow_run["id"]),
        artifacts=api.artifacts_of(flow_run["id"]),
        deployments=deployments,
        event=event,
        timings=timings,
    )


def review_chain_agents() -> set[str]:
    """The task run names review-on-push must produce (``agent@version``)."""
    from agentrt.agents.llm import model_not_configured

    plan, _ = prepare("review-chain", strict=False)
    # An LLM agent without a configured model gets no task run: its fallback stands in.
    return {
        step.agent.key
        for step in plan.steps.values()
        if step.agent.manifest.kind != "llm" or not model_not_configured(step.agent)
    }


def check_outcome(outcome: Outcome, repo: SmallRepo, expected_agents: set[str]) -> None:
    """The assertions shared by the SQLite and PostgreSQL scenarios."""
    names = {d["name"] for d in outcome.deployments}
    assert {"code-analysis-nightly", PUSH_DEPLOYMENT} <= names, names
    nightly = next(d for d in outcome.deployments if d["name"] == "code-analysis-nightly")
    assert [s["schedule"].get("cron") for s in nightly["schedules"]] == ["0 2 * * *"]

    assert outcome.event["payload"] == {
        "repo": str(repo.path.resolve()),
        "since": repo.first,
        "rev": repo.pushed,
    }
    run = outcome.flow_run
    state = run["state"]
    assert state["type"] == "COMPLETED", f"flow run ended {state['type']}: {state.get('message')}"
    # The trigger put the event's payload into the flow's single `params` parameter.
    assert run["parameters"] == {"params": {"repo": str(repo.path.resolve()), "since": repo.first}}

    task_names = {t["name"] for t in outcome.task_runs}
    assert task_names == expected_agents
    assert {t["state_type"] for t in outcome.task_runs} == {"COMPLETED"}
    for task_run in outcome.task_runs:  # tagged for filtering in the UI
        assert f"agent:{task_run['name'].split('@')[0]}" in task_run["tags"]

    kinds = {a["type"] for a in outcome.artifacts}
    assert {"markdown", "table"} <= kinds, kinds
    report = next(a for a in outcome.artifacts if a["type"] == "markdown")
    # Only the pushed change was reviewed: git_changes saw one file since the first commit.
    assert f"1 file changed since {repo.first}" in report["data"], report["data"][:2000]
    assert "`pkg/calc.py`" in report["data"]
    for agent in expected_agents:
        assert agent in report["data"], f"{agent} missing from the report artifact"
