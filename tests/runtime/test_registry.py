"""Registry: discovery, version selection, capabilities, resolution problems."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agentrt.agents.registry import AgentNotFound, Registry, ResolutionError
from tests.runtime.helpers import FIXTURE_AGENTS, agent_yaml, write


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    shutil.copy(FIXTURE_AGENTS / "rt_agents.py", tmp_path / "rt_agents.py")
    return tmp_path


def test_discovers_fixture_agents_and_indexes_capabilities() -> None:
    registry = Registry.discover([FIXTURE_AGENTS], builtin=False, entry_points=False)
    assert registry.problems == []
    assert {"alpha", "beta", "flaky", "reader"} <= set(registry.ids())
    testing = {a.id for a in registry.find(capability="testing")}
    assert testing == {"alpha", "beta", "gamma", "delta"}
    assert registry.capabilities()["alpha"] == ["alpha"]


def test_keeps_versions_side_by_side_and_picks_highest_match(folder: Path) -> None:
    for version in ("1.0.0", "1.5.0", "2.0.0", "2.1.0rc1"):
        write(folder / f"x-{version}.yaml", agent_yaml("x", version))
    registry = Registry.discover([folder], builtin=False, entry_points=False)
    assert [str(a.version) for a in registry.versions("x")] == [
        "1.0.0",
        "1.5.0",
        "2.0.0",
        "2.1.0rc1",
    ]
    assert str(registry.get("x").version) == "2.0.0"  # pre-releases only when asked
    assert str(registry.get("x", ">=1,<2").version) == "1.5.0"
    assert str(registry.get("x", ">=2.1.0rc1").version) == "2.1.0rc1"
    with pytest.raises(AgentNotFound, match="no version of 'x' satisfies >=3"):
        registry.get("x", ">=3")
    with pytest.raises(AgentNotFound, match="did you mean x"):
        registry.get("xx")


def test_resolves_requirements_transitively_in_dependency_order(folder: Path) -> None:
    write(folder / "base1.yaml", agent_yaml("base", "1.0.0"))
    write(folder / "base2.yaml", agent_yaml("base", "2.0.0"))
    write(folder / "mid.yaml", agent_yaml("mid", requires="['base<2']"))
    write(folder / "top.yaml", agent_yaml("top", requires="[mid]"))
    registry = Registry.discover([folder], builtin=False, entry_points=False)
    order = registry.resolve(["top"])
    assert [a.key for a in order] == ["base@1.0.0", "mid@1.0.0", "top@1.0.0"]


def test_reports_version_conflicts_missing_agents_and_cycles(folder: Path) -> None:
    write(folder / "base1.yaml", agent_yaml("base", "1.0.0"))
    write(folder / "base2.yaml", agent_yaml("base", "2.0.0"))
    write(folder / "new.yaml", agent_yaml("wants_new", requires="['base>=2']"))
    write(folder / "old.yaml", agent_yaml("wants_old", requires="['base<2']"))
    write(folder / "orphan.yaml", agent_yaml("orphan", requires="[ghost]"))
    write(folder / "a.yaml", agent_yaml("cyc_a", requires="[cyc_b]"))
    write(folder / "b.yaml", agent_yaml("cyc_b", requires="[cyc_a]"))
    registry = Registry.discover([folder], builtin=False, entry_points=False)
    with pytest.raises(ResolutionError) as conflict:
        registry.resolve(["wants_new", "wants_old"])
    assert "version conflict for base" in str(conflict.value)
    assert "wants >=2" in str(conflict.value) and "wants <2" in str(conflict.value)
    with pytest.raises(ResolutionError, match="no agent 'ghost' is registered"):
        registry.resolve(["orphan"])
    cycle = r"dependency cycle cyc_(a|b) → cyc_(a|b) → cyc_(a|b)"
    with pytest.raises(ResolutionError, match=cycle):
        registry.resolve(["cyc_a"])


def test_duplicate_id_and_version_is_a_problem_not_a_crash(folder: Path) -> None:
    write(folder / "one.yaml", agent_yaml("dup"))
    write(folder / "two.yaml", agent_yaml("dup"))
    registry = Registry.discover([folder], builtin=False, entry_points=False)
    assert len(registry.versions("dup")) == 1
    (problem,) = registry.problems
    assert "duplicate agent dup@1.0.0" in problem.message and "one.yaml" in problem.message


def test_agent_path_environment_variable(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(folder / "envy.yaml", agent_yaml("envy"))
    monkeypatch.setenv("AGENTRT_AGENT_PATH", str(folder))
    assert "envy" in Registry.discover(builtin=False, entry_points=False).ids()
