"""agentrt installs next to other libraries: one import name, no squatting on generic ones.

The OpenAI Agents SDK installs a top-level package named ``agents``; agentrt used to as well.
This test builds agentrt's wheel, installs it with ``openai-agents`` into one fresh virtual
environment from the package registry, and imports both there.
"""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIP_QUIET = ["--quiet", "--disable-pip-version-check", "--no-input"]


def _registry_reachable(tmp: Path) -> str | None:
    """None when the registry serves openai-agents, else why not."""
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                *PIP_QUIET,
                "--no-deps",
                "-d",
                str(tmp),
                "openai-agents",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        return "the package registry did not answer within 120 s"
    if done.returncode != 0:
        return f"the package registry is unreachable: {done.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", *PIP_QUIET, "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("agentrt-*.whl")
    return built


def test_the_wheel_has_one_top_level_package_and_its_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"agentrt"}
    assert "agentrt/py.typed" in names
    assert "agentrt/agents/manifests/code_review.yaml" in names
    assert "agentrt/flows/workflows/code-analysis.yaml" in names
    assert "agentrt/agents/prices.toml" in names  # the model price table (agents/prices.py)
    assert "agentrt/context/ranker.json" in names  # the learned ranker's weights
    # Every package folder of the repository is in the wheel (pyproject lists them by hand).
    for folder, prefix in (
        ("agentrt", "agentrt"),
        ("agents", "agentrt/agents"),
        ("context", "agentrt/context"),
        ("flows", "agentrt/flows"),
    ):
        for init in (ROOT / folder).rglob("__init__.py"):
            inside = init.relative_to(ROOT / folder).as_posix()
            assert f"{prefix}/{inside}" in names, f"{init} is missing from the wheel"


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_agentrt_and_openai_agents_share_one_environment(wheel: Path, tmp_path: Path) -> None:
    why = _registry_reachable(tmp_path / "probe")
    if why:
        pytest.skip(why)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            *PIP_QUIET,
            "--no-compile",
            str(wheel),
            "openai-agents",
        ],
        capture_output=True,
        text=True,
        timeout=1000,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    script = (
        "import agents, agentrt\n"
        "assert hasattr(agents, 'Agent') and hasattr(agents, 'Runner'), agents.__file__\n"
        "assert 'site-packages/agents/' in agents.__file__.replace('\\\\', '/')\n"
        "reg = agentrt.Registry.discover()\n"
        "assert reg.get('code_review').manifest.id == 'code_review'\n"
        "print(agentrt.__version__)\n"
    )
    done = subprocess.run(
        [str(python), "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    cli = subprocess.run(
        [str(env_dir / "bin" / "agentrt"), "agents", "list", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "context_gathering" in cli.stdout
