"""The deploy → push → worker scenario on a Prefect server backed by PostgreSQL.

Opt-in (it starts a PostgreSQL cluster as well as a Prefect server): run it with
``AGENTRT_TEST_POSTGRES=1``. When opted in, a missing PostgreSQL fails the test with the
install command instead of skipping it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.deploy.scenario import (
    check_outcome,
    deploy_push_and_run,
    make_small_repo,
    review_chain_agents,
)
from tests.deploy.servers import Postgres, PostgresUnavailable, PrefectServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("AGENTRT_TEST_POSTGRES"),
        reason="PostgreSQL scenario is opt-in: set AGENTRT_TEST_POSTGRES=1",
    ),
]


async def _rows(url: str, flow_run_id: str) -> tuple[int, int, str]:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        task_runs = await conn.fetchval(
            "SELECT count(*) FROM task_run WHERE flow_run_id = $1::uuid", flow_run_id
        )
        artifacts = await conn.fetchval(
            "SELECT count(*) FROM artifact WHERE flow_run_id = $1::uuid", flow_run_id
        )
        state = await conn.fetchval(
            "SELECT state_type::text FROM flow_run WHERE id = $1::uuid", flow_run_id
        )
    finally:
        await conn.close()
    return task_runs, artifacts, state


def test_push_triggers_review_on_push_on_a_postgres_server(tmp_path: Path) -> None:
    repo = make_small_repo(tmp_path / "repo")
    agents = review_chain_agents()
    try:
        with Postgres(durable=False) as postgres:
            with PrefectServer(tmp_path / "server", database_url=postgres.url) as server:
                outcome = deploy_push_and_run(server, repo, tmp_path)
                check_outcome(outcome, repo, agents)
            # What the API reported is what PostgreSQL holds.
            flow_run_id = outcome.flow_run["id"]
            task_runs, artifacts, state = asyncio.run(_rows(postgres.url, flow_run_id))
    except PostgresUnavailable as exc:
        pytest.fail(str(exc))
    assert task_runs == len(agents)
    assert artifacts == len(outcome.artifacts) >= 2
    assert state == "COMPLETED"
