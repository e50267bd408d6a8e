"""prefect.yaml and flows/deployments.py, checked with Prefect's own loaders and models."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import yaml
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.flows import load_flow_from_entrypoint
from prefect.utilities.callables import parameter_schema

from agentrt.flows import deployments
from agentrt.flows.deployments import CODE_ROOT, runner_from_env, use_checkout
from agentrt.flows.workflow import TaskRunnerSpec
from tests.deploy.scenario import make_small_repo

REPO_ROOT = Path(__file__).resolve().parents[2]
PREFECT_YAML = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())


def by_name(name: str) -> dict:
    return next(d for d in PREFECT_YAML["deployments"] if d["name"] == name)


def test_prefect_yaml_entrypoints_load_the_workflow_flows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)  # prefect deploy resolves entrypoints from the repo root
    names = {}
    for deployment in PREFECT_YAML["deployments"]:
        flow = load_flow_from_entrypoint(deployment["entrypoint"])
        names[deployment["name"]] = flow.name
        # One parameter, `params`, which every deployment and trigger fills.
        schema = parameter_schema(flow).model_dump()
        assert list(schema["properties"]) == ["params"]
        assert set(deployment["parameters"]) == {"params"} if "parameters" in deployment else True
        assert deployment["work_pool"]["name"] == "agentrt"
    assert names == {"code-analysis-nightly": "code-analysis", "review-on-push": "review-chain"}


def test_nightly_schedule_and_push_trigger_are_valid_prefect_specs() -> None:
    assert by_name("code-analysis-nightly")["schedules"][0]["cron"] == "0 2 * * *"
    (spec,) = by_name("review-on-push")["triggers"]
    trigger = DeploymentEventTrigger.model_validate(spec)
    assert trigger.expect == {"agentrt.repo.pushed"}
    assert trigger.parameters == {
        "params": {"repo": "{{ event.payload.repo }}", "since": "{{ event.payload.since }}"}
    }
    # The pull step named in prefect.yaml is importable where workers import it from.
    (step,) = PREFECT_YAML["pull"]
    assert list(step) == ["agentrt.flows.deployments.use_checkout"]


def test_runner_from_env_overrides_the_workflow_runner() -> None:
    spec = TaskRunnerSpec()
    assert runner_from_env(spec, {}) == spec
    dask = runner_from_env(
        spec,
        {
            "AGENTRT_TASK_RUNNER": "dask",
            "AGENTRT_TASK_RUNNER_ADDRESS": "tcp://10.0.0.5:8786",
            "AGENTRT_TASK_RUNNER_WORKERS": "4",
        },
    )
    assert (dask.type, dask.address, dask.workers) == ("dask", "tcp://10.0.0.5:8786", 4)
    with pytest.raises(ValueError, match="AGENTRT_TASK_RUNNER=thread\\|process\\|dask\\|ray"):
        runner_from_env(spec, {"AGENTRT_TASK_RUNNER": "spark"})


def test_deployment_flow_uses_the_env_runner() -> None:
    flow = deployments.deployment_flow("code-analysis", env={"AGENTRT_TASK_RUNNER": "process"})
    assert type(flow.task_runner).__name__ == "ProcessPoolTaskRunner"
    assert type(deployments.code_analysis.task_runner).__name__ == "ThreadPoolTaskRunner"


def test_use_checkout_moves_to_the_code(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGENTRT_CODE_DIR", raising=False)
    assert use_checkout() == {"directory": str(CODE_ROOT)}
    assert Path.cwd() == CODE_ROOT
    monkeypatch.setenv("AGENTRT_CODE_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="AGENTRT_CODE_DIR"):
        use_checkout()
    assert use_checkout(str(REPO_ROOT))["directory"] == str(REPO_ROOT.resolve())


@pytest.mark.usefixtures("prefect_harness")
def test_deployed_flow_fills_missing_params_and_rejects_unknown_ones(tmp_path: Path) -> None:
    import httpx
    from prefect.settings import PREFECT_API_URL

    from agentrt.flows.artifacts import _publisher

    repo = make_small_repo(tmp_path / "repo")
    handed_over = _publisher.submitted
    # What an event trigger passes: only repo and since.
    result = asyncio.run(
        deployments.review_chain(params={"repo": str(repo.path), "since": repo.first})
    )
    assert result["state"] == "completed"
    # Deployments publish their artifacts before the flow run ends (automations read them).
    assert _publisher.submitted == handed_over
    artifacts = httpx.post(
        f"{PREFECT_API_URL.value()}/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [result["flow_run_id"]]}}},
    ).json()
    assert {a["key"] for a in artifacts} >= {"review-chain-report", "review-chain-agent-metrics"}
    assert result["params"] == {
        "repo": str(repo.path),
        "since": repo.first,
        "max_critical": 0,
        "max_high": 0,
    }
    assert result["steps"]["git_changes"]["output"]["files"] == ["pkg/calc.py"]
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) bogus"):
        asyncio.run(deployments.review_chain(params={"bogus": 1}))
    assert os.getcwd()  # the flow does not leave us in a removed folder
