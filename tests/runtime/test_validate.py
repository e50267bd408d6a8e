"""`agentrt agents validate`: every bad-manifest case gives file:line: field: message, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentrt.cli import app
from tests.runtime.helpers import FIXTURE_AGENTS, agent_yaml, write

runner = CliRunner()

CASES = {
    "yaml_syntax": (
        "id: a\nversion: 1.0.0\nentrypoint: rt_agents:work\ncapabilities: [x, y\n",
        5,
        "",
        "YAML syntax error",
    ),
    "unknown_field": (
        agent_yaml("a") + "retrys:\n  max: 2\n",
        4,
        "retrys",
        "unknown field",
    ),
    "bad_version": (
        "id: a\nversion: one-point-oh\nentrypoint: rt_agents:work\n",
        2,
        "version",
        "not a PEP 440 version",
    ),
    "wrong_type": (
        agent_yaml("a") + "retries:\n  max: three\n",
        5,
        "retries.max",
        "valid integer",
    ),
    "bad_id": (
        "id: Bad-Id\nversion: 1.0.0\nentrypoint: rt_agents:work\n",
        1,
        "id",
        "not a valid agent id",
    ),
    "missing_field": ("id: a\nversion: 1.0.0\n", 1, "entrypoint", "required field is missing"),
    "entrypoint_missing_module": (
        "id: a\nversion: 1.0.0\nentrypoint: no_such_module:run\n",
        3,
        "entrypoint",
        "module 'no_such_module' not found",
    ),
    "entrypoint_missing_attr": (
        "id: a\nversion: 1.0.0\nentrypoint: rt_agents:nope\n",
        3,
        "entrypoint",
        "has no attribute 'nope'",
    ),
    "entrypoint_not_callable": (
        "id: a\nversion: 1.0.0\nentrypoint: rt_agents:NOT_CALLABLE\n",
        3,
        "entrypoint",
        "not a function",
    ),
    "entrypoint_outside_roots": (
        "id: a\nversion: 1.0.0\nentrypoint: os:system\n",
        3,
        "entrypoint",
        "outside the allowed import roots",
    ),
    "self_dependency": (agent_yaml("a", requires="[a]"), 1, "", "requires itself"),
    "bad_requirement": (
        agent_yaml("a", requires="['b>>1']"),
        4,
        "requires",
        "not an agent requirement",
    ),
    "python_tag": (
        "id: a\nversion: 1.0.0\nentrypoint: !!python/object/apply:os.system ['touch PWNED']\n",
        3,
        "",
        "YAML syntax error",
    ),
    "not_a_mapping": ("- id: a\n- version: 1\n", 1, "", "expected a YAML mapping"),
    "empty": ("", 1, "", "the file is empty"),
}


def _validate(*paths: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["agents", "validate", *map(str, paths)])
    return result.exit_code, result.stderr + result.stdout


@pytest.fixture(autouse=True)
def fixture_module_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    # Manifests written to tmp_path use the fixture module rt_agents by package name.
    monkeypatch.syspath_prepend(str(FIXTURE_AGENTS))
    monkeypatch.setenv("AGENTRT_IMPORT_ROOTS", "rt_agents")


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_manifest_is_reported_with_location(case: str, tmp_path: Path) -> None:
    text, line, field, message = CASES[case]
    path = write(tmp_path / f"{case}.yaml", text) if text else tmp_path / f"{case}.yaml"
    path.touch()
    code, output = _validate(path)
    assert code == 2, output
    assert "Traceback" not in output
    expected = f"{path}:{line}: {field or '(document)'}: "
    assert expected in output, output
    assert message in output, output
    assert not (tmp_path / "PWNED").exists()


def test_duplicate_and_cycle(tmp_path: Path) -> None:
    write(tmp_path / "one.yaml", agent_yaml("dup"))
    write(tmp_path / "two.yaml", agent_yaml("dup"))
    write(tmp_path / "a.yaml", agent_yaml("ca", requires="[cb]"))
    write(tmp_path / "b.yaml", agent_yaml("cb", requires="[ca]"))
    code, output = _validate(tmp_path)
    assert code == 2
    assert f"{tmp_path / 'two.yaml'}:1: version: duplicate agent dup@1.0.0" in output
    assert "dependency cycle ca → cb → ca" in output or "dependency cycle cb → ca → cb" in output


def test_valid_manifests_pass() -> None:
    code, output = _validate(FIXTURE_AGENTS)
    assert code == 0, output
    assert "no problems" in output


def test_a_registered_manifest_named_again_is_not_its_own_duplicate() -> None:
    from agentrt.agents.registry import BUILTIN_MANIFESTS

    named = BUILTIN_MANIFESTS / "code_review.yaml"
    code, output = _validate(named)
    assert code == 0, output
    assert "ok: 1 agent manifest(s), no problems" in output, output


def test_validate_does_not_import_prefect(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from agentrt.cli import main\n"
        f"sys.argv = ['agentrt', 'agents', 'validate', {str(FIXTURE_AGENTS)!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    rc = e.code\n"
        "assert 'prefect' not in sys.modules, 'prefect was imported'\n"
        "sys.exit(rc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_entrypoint_must_live_next_to_its_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENTRT_IMPORT_ROOTS")
    (tmp_path / "elsewhere").mkdir()
    write(tmp_path / "elsewhere" / "sneaky.py", "def run(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path / "elsewhere"))
    path = write(tmp_path / "m" / "a.yaml", "id: a\nversion: 1.0.0\nentrypoint: sneaky:run\n")
    code, output = _validate(path)
    assert code == 2
    assert f"{path}:3: entrypoint: module 'sneaky' is outside the allowed import roots" in output
