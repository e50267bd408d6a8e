"""End to end, as a user: deploy, push, a worker runs the triggered review, the UI shows it.

A real ``prefect server start`` (SQLite, temporary home) on a free loopback port; the
``prefect``/``agentrt`` commands from docs/deploy.md as subprocesses; the flow run page
opened in headless Chromium, whose Task Runs tab must list every agent's task run
(``agent@version``). Screenshots are kept in ``tests/deploy/artifacts/``.

Chromium policy: in CI (``CI`` set) a missing or broken Chromium FAILS the test with the
reason (``.ci/run`` installs Debian's ``chromium``). Locally, a machine without Chromium
skips the browser test with the install command; a Chromium that is present but does not
work always fails.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.deploy.browser import Chromium, ChromiumError, find_chromium
from tests.deploy.scenario import (
    check_outcome,
    deploy_push_and_run,
    make_small_repo,
    review_chain_agents,
)
from tests.deploy.servers import PrefectServer

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

pytestmark = pytest.mark.slow


def chromium_or_skip() -> str:
    binary = find_chromium()
    if binary:
        return binary
    reason = "Chromium not found (set CHROMIUM or run: apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the UI test")
    pytest.skip(reason)


def test_push_triggers_review_on_push_and_the_ui_shows_its_agents(tmp_path: Path) -> None:
    browser = chromium_or_skip()
    repo = make_small_repo(tmp_path / "repo")
    agents = review_chain_agents()
    t0 = time.monotonic()
    with PrefectServer(tmp_path / "server") as server:
        outcome = deploy_push_and_run(server, repo, tmp_path)
        check_outcome(outcome, repo, agents)
        flow_run_id = outcome.flow_run["id"]

        try:
            with Chromium(browser, tmp_path / "chromium") as page:
                page.goto(f"{server.url}/runs/flow-run/{flow_run_id}")
                # The header: run name, state, the deployment and automation that started it.
                expected = [outcome.flow_run["name"], "Completed", "review-on-push"]
                page.wait_for(
                    "!!document.getElementById('task-runs') && "
                    + " && ".join(f"document.body.innerText.includes({t!r})" for t in expected),
                    what=f"the run page with {expected}",
                )
                page.screenshot(ARTIFACTS / "flow-run.png")

                # The Task Runs tab lists each agent's task run by its agent@version name.
                page.evaluate("document.getElementById('task-runs').click()")
                listed = " && ".join(f"list.includes({name!r})" for name in sorted(agents))
                page.wait_for(
                    "(() => { const el = document.querySelector('.flow-run-task-runs');"
                    f" const list = el ? el.innerText : ''; return {listed}; }})()",
                    what=f"the task runs {sorted(agents)}",
                )
                shot = page.screenshot(ARTIFACTS / "flow-run-task-runs.png")

                page.evaluate("document.getElementById('artifacts').click()")
                page.wait_for(
                    "document.body.innerText.includes('review-chain-report')",
                    what="the report artifact",
                )
                page.screenshot(ARTIFACTS / "flow-run-artifacts.png")
        except ChromiumError as exc:
            pytest.fail(f"the UI check could not run in Chromium: {exc}")
    outcome.timings["total"] = round(time.monotonic() - t0, 1)
    print(
        f"\nscreenshots: {shot.parent}; server start {server.startup_seconds}s; {outcome.timings}"
    )
