"""Hostile and broken manifests and workflows, through the CLI: every case of
``corpus/cases.yaml`` exits 2 with one located line per problem, never a traceback, and
never runs anything (canary files stay absent).

Cases run in-process through typer's CliRunner (fast); those that would hang if their fix
regressed run in a subprocess under a memory and time limit, all at once.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.reliability.conftest import CORPUS, REPO_ROOT, cli_env

CASES: dict[str, dict[str, Any]] = yaml.safe_load((CORPUS / "cases.yaml").read_text())
LIB = CORPUS / "lib"
OUTSIDE = CORPUS / "outside"
CANARIES = (
    "agentrt-canary-import",
    "agentrt-canary-yaml",
    "agentrt-canary-popen",
    "agentrt-canary-retry",
    "agentrt-canary-wf",
)
ISOLATED_TIMEOUT = 6.0  # seconds; a fixed loader answers in about one
ISOLATED_MEMORY = 800 * 1024**2  # address space, bytes: enough for the CLI, not for 9^9 nodes
# One problem per line: `path:line: field: message`; validate adds a summary line.
PROBLEM_LINE = re.compile(r"^\S+?:\d+: \S+: \S.*$")
SUMMARY_LINE = re.compile(r"^\d+ problem\(s\) in \d+ agent manifest\(s\)$")


@dataclass(frozen=True)
class Expect:
    line: str  # a number or "*" (any line)
    field: str
    fragment: str

    @classmethod
    def parse(cls, text: str) -> Expect:
        head, _, fragment = text.partition(" | ")
        line, field = head.split(" ", 1)
        return cls(line, field, fragment)

    def found_in(self, path: Path, output: str) -> bool:
        # A folder case (several manifests) names the file of the folder the problem is in.
        file = re.escape(str(path)) + (r"/[^/:]+\.yaml" if path.is_dir() else "")
        where = file + r":\d+" if self.line == "*" else f"{file}:{self.line}"
        pattern = rf"^{where}: {re.escape(self.field)}: .*{re.escape(self.fragment)}"
        return re.search(pattern, output, re.M) is not None


def _commands(key: str) -> list[list[str]]:
    path = str(CORPUS / key)
    if key.startswith("agents/"):
        return [["agents", "validate", path]]
    if CASES[key].get("isolate"):  # one loader for both commands; spare the CI a second hang
        return [["workflows", "show", path, "-A", str(LIB)]]
    return [["workflows", "show", path, "-A", str(LIB)], ["run", path, "-A", str(LIB)]]


def _params(prefix: str) -> Iterator[Any]:
    for key, spec in sorted(CASES.items()):
        if key.startswith(prefix):
            marks = [pytest.mark.xfail(strict=True, reason=spec["bug"])] if "bug" in spec else []
            yield pytest.param(key, marks=marks, id=key.split("/", 1)[1])


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory for canaries; the outside module importable (but not allowed)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTRT_CANARY_DIR", str(tmp_path))
    monkeypatch.syspath_prepend(str(OUTSIDE))
    # `agentrt run` sets this for its own console; keep it from leaking into other tests.
    monkeypatch.setenv("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    return tmp_path


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ISOLATED_MEMORY, ISOLATED_MEMORY))


HUGE = ("agents", "validate", "--no-imports", "HUGE")  # the generated 20 MB manifest


def _write_huge(path: Path) -> Path:
    with path.open("w") as fh:
        fh.write('id: huge\nversion: 1.0.0\nentrypoint: corpus_agents:ok\ndescription: "')
        fh.write("lol " * 5_000_000)  # 20 MB
        fh.write('"\n')
    return path


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, ...], tuple[int, str]]:
    """The isolated cases and the huge manifest, all started at once:
    command → (exit code, output)."""
    cwd = tmp_path_factory.mktemp("isolated")
    env = cli_env(
        cwd / "home",
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(OUTSIDE)]),
        AGENTRT_CANARY_DIR=str(cwd),
    )
    commands = [
        tuple(c) for key, spec in CASES.items() if spec.get("isolate") for c in _commands(key)
    ]
    huge = str(_write_huge(cwd / "huge.yaml"))
    procs = {}
    for command in [*commands, HUGE]:
        argv = [huge if part == "HUGE" else part for part in command]
        procs[command] = subprocess.Popen(
            [sys.executable, "-m", "agentrt.cli", *argv],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_limit_memory,
        )
    deadline = time.monotonic() + ISOLATED_TIMEOUT
    outcomes = {}
    for command, proc in procs.items():
        try:
            out, _ = proc.communicate(timeout=max(deadline - time.monotonic(), 0.1))
            outcomes[command] = (proc.returncode, out.replace(huge, "HUGE"))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            outcomes[command] = (-1, f"timed out after {ISOLATED_TIMEOUT:g} s\n{out}")
    assert not any((cwd / c).exists() for c in CANARIES)
    return outcomes


def _invoke(command: list[str]) -> tuple[int, str]:
    from agentrt.cli import app

    result = CliRunner().invoke(app, command)
    output = result.stderr + result.stdout
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        output += f"\nTraceback: {type(result.exception).__name__}: {result.exception}"
    return result.exit_code, output


def _check(key: str, outcomes: list[tuple[int, str]], sandbox: Path) -> None:
    path = CORPUS / key
    expects = [Expect.parse(e) for e in CASES[key]["expect"]]
    for code, output in outcomes:
        assert code == 2, output
        assert "Traceback" not in output, output
        for expect in expects:
            assert expect.found_in(path, output), f"{expect} not in:\n{output}"
        for line in output.strip().splitlines():
            assert PROBLEM_LINE.match(line) or SUMMARY_LINE.match(line), f"not one line: {line!r}"
    assert not [c for c in CANARIES if (sandbox / c).exists()], "something ran"


@pytest.mark.parametrize("key", list(_params("agents/")))
def test_broken_agent_manifest(
    key: str, sandbox: Path, isolated: dict[tuple[str, ...], tuple[int, str]]
) -> None:
    commands = _commands(key)
    if CASES[key].get("isolate"):
        outcomes = [isolated[tuple(c)] for c in commands]
    else:
        outcomes = [_invoke(c) for c in commands]
    _check(key, outcomes, sandbox)


@pytest.mark.parametrize("key", list(_params("workflows/")))
def test_broken_workflow(
    key: str, sandbox: Path, isolated: dict[tuple[str, ...], tuple[int, str]]
) -> None:
    commands = _commands(key)
    if CASES[key].get("isolate"):
        outcomes = [isolated[tuple(c)] for c in commands]
    else:
        outcomes = [_invoke(c) for c in commands]
    _check(key, outcomes, sandbox)


def test_corpus_is_complete_and_documented() -> None:
    on_disk = {
        p.relative_to(CORPUS).as_posix()
        for kind in ("agents", "workflows")
        for p in (CORPUS / kind).iterdir()
        if p.suffix == ".yaml" or (p.is_dir() and not p.name.startswith(("_", ".")))
    }
    assert on_disk == set(CASES)
    assert len(CASES) >= 30
    for key in CASES:
        target = CORPUS / key
        for file in sorted(target.glob("*.yaml")) if target.is_dir() else [target]:
            assert file.read_bytes().startswith(b"# case: "), file


def test_every_problem_has_a_line() -> None:
    # _check holds every problem of every case to PROBLEM_LINE (`path:line:`); and no
    # expectation may go without a line either.
    assert all(Expect.parse(e).line != "-" for spec in CASES.values() for e in spec["expect"])


def test_huge_manifest_is_refused_quickly(
    isolated: dict[tuple[str, ...], tuple[int, str]],
) -> None:
    code, output = isolated[HUGE]
    assert code == 2 and "Traceback" not in output, output[-2000:]
    assert re.search(r"^HUGE(:\d+)?: \(document\): .*MB", output, re.M), output[-2000:]


@pytest.mark.usefixtures("prefect_harness")
def test_a_manifest_alone_cannot_run_a_command(tmp_path: Path) -> None:
    from agentrt.agents.registry import Registry
    from agentrt.flows.run import run_workflow
    from agentrt.flows.workflow import WorkflowManifest

    folder = tmp_path / "agents"
    folder.mkdir()
    (folder / "sh.yaml").write_text(
        "id: sh\nversion: 1.0.0\nentrypoint: agentrt.agents.builtin.common:subprocess.run\n"
    )
    canary = tmp_path / "agentrt-canary-argv"
    workflow = WorkflowManifest.model_validate(
        {
            "name": "argv",
            "steps": [
                {"agent": "sh", "inputs": {"touch": {"value": 1}, str(canary): {"value": 2}}}
            ],
        }
    )
    registry = Registry.discover([folder], builtin=False, env=False, entry_points=False)
    result = run_workflow(workflow, registry=registry)
    assert not canary.exists(), "a manifest ran `touch` through subprocess.run"
    assert result.errors and result.errors[0].error_type == "EntrypointError"


def test_schema_refs_are_never_retrieved(tmp_path: Path) -> None:
    # Validation refuses external $refs; this is the run-time backstop for schemas that
    # reach the runtime another way: no file is read, no URL fetched.
    from agentrt.flows.schemas import SchemaValidationError, _jsonschema_check

    target = tmp_path / "schema.json"
    target.write_text('{"type": "integer"}')
    for ref in (target.as_uri(), "http://127.0.0.1:9/schema.json"):
        schema = {"properties": {"p": {"$ref": ref}}}
        with pytest.raises(SchemaValidationError, match="cannot be resolved"):
            _jsonschema_check(schema, {"p": "not an integer"})


@pytest.mark.timeout(20)
def test_a_fifo_or_deep_nesting_is_refused_not_hung(tmp_path: Path) -> None:
    from agentrt.agents.diagnostics import ManifestError, load_yaml

    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # opening it would block until a writer comes
    deep = tmp_path / "deep.yaml"
    deep.write_text("id: a\nx: " + "[" * 50_000 + "]" * 50_000 + "\n")
    for path, message in ((fifo, "not a regular file"), (deep, "nested too deeply")):
        with pytest.raises(ManifestError, match=message) as caught:
            load_yaml(path)
        (problem,) = caught.value.problems
        assert problem.file == str(path) and problem.line in (None, 2), problem
