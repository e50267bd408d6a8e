"""Repository content is data: both built-in pipelines run over a repository whose modules,
git configuration and attributes would each run a program if anything imported or obeyed
them; nothing runs (canary files stay absent), and the pipelines still do their work.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentrt.agents.registry import Registry

pytestmark = pytest.mark.usefixtures("prefect_harness")

# Named like modules agentrt, its tools and Python itself import, so anything that put the
# repository on sys.path (as `python -m` does with its working directory) would run them.
MODULES = [
    "json.py",
    "yaml.py",
    "ast.py",
    "logging.py",
    "sitecustomize.py",
    "usercustomize.py",
    "setup.py",
    "conftest.py",
    "radon.py",
    "bandit.py",
    "pathspec.py",
    "tiktoken.py",
    "pkg/__init__.py",
    "pkg/__main__.py",
    "pkg/core.py",
]


def _bomb(canaries: Path, name: str) -> str:
    return (
        "import pathlib\n"
        f"pathlib.Path({str(canaries)!r}, {name!r}.replace('/', '_')).write_text(__name__)\n"
        "raise SystemExit(3)\n\n\n"
        "def handler(event):\n"
        '    """Handle an event (the analysers still find this function)."""\n'
        "    return eval(event)  # noqa: S307 - a finding for security_validation\n"
    )


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo.parent)}
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


@pytest.fixture(scope="module")
def booby_trapped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("data")
    repo, canaries = base / "repo", base / "canaries"
    canaries.mkdir()
    for name in MODULES:
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_bomb(canaries, name))
    hook = f"sh -c 'touch {canaries}/git-$0' "
    _git(repo.parent, "init", "-q", str(repo))
    _git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty",
         "-m", "empty")  # fmt: skip
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "-m", "bombs")
    # Configuration a hostile repository can ship: git runs each of these for some command.
    (repo / ".gitattributes").write_text("* filter=evil diff=evil\n")
    with (repo / ".git" / "config").open("a") as fh:
        fh.write(
            f'[core]\n\tfsmonitor = {hook}fsmonitor\n\tpager = {hook}pager\n'
            f'[filter "evil"]\n\tclean = {hook}clean\n\tsmudge = {hook}smudge\n'
            f'\tprocess = {hook}process\n'
            f'[diff "evil"]\n\tcommand = {hook}diff\n\ttextconv = {hook}textconv\n'
            f'[diff]\n\texternal = {hook}external\n'
        )  # fmt: skip
    # A change in the work tree, so `git diff` has to look at file contents.
    with (repo / "pkg" / "core.py").open("a") as fh:
        fh.write("\n\ndef added(x):\n    return x\n")
    return repo, canaries


def test_the_bombs_are_live(booby_trapped: tuple[Path, Path], tmp_path: Path) -> None:
    repo, _ = booby_trapped
    marker = tmp_path / "control"
    marker.mkdir()
    # Python started in the repository imports its json.py...
    (repo / "json.py").write_text(_bomb(marker, "json.py"))
    try:
        done = subprocess.run([sys.executable, "-c", "import json"], cwd=repo, check=False)
        assert done.returncode == 3 and (marker / "json.py").exists()
    finally:
        (repo / "json.py").write_text(_bomb(booby_trapped[1], "json.py"))
    # ...and plain git obeys the repository's configuration.
    canaries = booby_trapped[1]
    subprocess.run(["git", "-C", str(repo), "status"], capture_output=True, check=False)
    fired = sorted(p.name for p in canaries.glob("git-*"))
    for path in canaries.glob("git-*"):
        path.unlink()
    assert fired, "the git configuration traps did not fire for plain `git status`"


@pytest.mark.parametrize(
    ("workflow", "params"),
    [
        ("code-analysis", {}),
        ("review-chain", {"since": "HEAD"}),
    ],
)
def test_pipelines_never_run_repository_content(
    booby_trapped: tuple[Path, Path],
    workflow: str,
    params: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from agentrt.flows.run import run_workflow

    repo, canaries = booby_trapped
    monkeypatch.setenv("HOME", str(tmp_path))  # no user git config either way
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    before = set(canaries.iterdir())
    result = run_workflow(
        workflow, {"repo": str(repo), **params}, registry=Registry.discover(entry_points=False)
    )
    assert sorted(p.name for p in set(canaries.iterdir()) - before) == [], "repository content ran"
    assert result.state == "completed", result.errors
    outputs = {sid: s.output for sid, s in result.steps.items()}
    if workflow == "code-analysis":
        assert outputs["code_review"]["files_analysed"] == len(MODULES)
        assert outputs["context_gathering"]["items"]
    else:
        assert outputs["git_changes"]["files"] == [".gitattributes", "pkg/core.py"]
        assert outputs["security_validation"]["files_analysed"] == 1
        rules = {f.get("rule") for f in outputs["security_validation"]["findings"]}
        assert "B307" in rules  # the eval() in pkg/core.py, found from the syntax tree
