"""``agentrt events push``: the event it builds, and how it fails (no server, bad input)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentrt.flows.events import EVENT_PUSHED, EventError, push_event
from tests.deploy.scenario import git, make_small_repo
from tests.deploy.servers import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_rev_and_default_since_are_resolved_to_commits(tmp_path: Path) -> None:
    repo = make_small_repo(tmp_path / "repo")
    event = push_event(repo.path, "HEAD")
    assert event.name == EVENT_PUSHED
    assert event.payload == {
        "repo": str(repo.path.resolve()),
        "since": repo.first,
        "rev": repo.pushed,
    }
    assert event.resource["prefect.resource.id"] == "agentrt.repo.repo"
    assert event.resource["agentrt.repo.path"] == str(repo.path.resolve())


def test_explicit_since_and_gits_new_branch_marker(tmp_path: Path) -> None:
    repo = make_small_repo(tmp_path / "repo")
    assert push_event(repo.path, repo.pushed, "HEAD~1").since == repo.first
    # A post-receive hook gets forty zeros as the old revision of a new branch: review all.
    assert push_event(repo.path, repo.pushed, "0" * 40).since == ""
    assert push_event(repo.path, repo.pushed, "").since == ""
    # The root commit has no parent: the whole repository.
    assert push_event(repo.path, repo.first).since == ""


def test_bad_input_is_reported_with_the_fix(tmp_path: Path) -> None:
    repo = make_small_repo(tmp_path / "repo")
    with pytest.raises(EventError, match="no such directory") as missing:
        push_event(tmp_path / "nope", "HEAD")
    assert missing.value.bad_input
    with pytest.raises(EventError, match=r"not a commit in .*git log") as unknown:
        push_event(repo.path, "no-such-branch")
    assert unknown.value.bad_input
    with pytest.raises(EventError, match="not a git revision"):
        push_event(repo.path, "HEAD", "--all")
    with pytest.raises(EventError, match="must not be empty"):
        push_event(repo.path, " ")


def test_outside_git_revisions_are_passed_as_given(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    event = push_event(plain, "v1.2", "v1.1")
    assert (event.rev, event.since) == ("v1.2", "v1.1")


def test_events_push_is_mounted_in_the_agentrt_cli() -> None:
    from agentrt.cli import app as agentrt

    result = CliRunner().invoke(agentrt, ["events", "push", "--help"])
    assert result.exit_code == 0
    assert "--repo" in result.output and "--since" in result.output


def test_cli_exit_codes_as_a_git_hook_sees_them(tmp_path: Path) -> None:
    """Through the entry point, in a clean environment: no server configured → 2,
    unreachable server → 1, unknown revision → 2; one line of error, no traceback."""
    repo = make_small_repo(tmp_path / "repo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")  # no profile with an API URL
    command = [sys.executable, "-m", "agentrt.cli", "events", "push", "--repo", str(repo.path)]
    unset = subprocess.run([*command, "--rev", "HEAD"], env=env, capture_output=True, text=True)
    assert unset.returncode == 2, unset.stderr
    assert "PREFECT_API_URL" in unset.stderr and "make server" in unset.stderr

    env["PREFECT_API_URL"] = f"http://127.0.0.1:{free_port()}/api"
    down = subprocess.run([*command, "--rev", "HEAD"], env=env, capture_output=True, text=True)
    assert down.returncode == 1, down.stderr
    assert "not reachable" in down.stderr and "Traceback" not in down.stderr
    bad = subprocess.run([*command, "--rev", "nope"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2, bad.stderr
    assert "not a commit" in bad.stderr


def test_importing_the_cli_module_does_not_import_prefect() -> None:
    code = (
        "import sys, agentrt.flows.events; assert 'prefect' not in sys.modules, 'prefect imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def test_git_helper_sees_the_small_repo(tmp_path: Path) -> None:
    repo = make_small_repo(tmp_path / "repo")
    assert git(repo.path, "diff", "--name-only", repo.first, repo.pushed) == "pkg/calc.py"
