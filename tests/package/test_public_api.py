"""The public API is what each package's ``__init__`` exports, and nothing private leaks."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = ["agentrt", "agentrt.agents", "agentrt.context", "agentrt.flows"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_exists(package: str) -> None:
    module = importlib.import_module(package)
    exported = module.__all__
    assert exported, f"{package} exports nothing"
    assert len(exported) == len(set(exported)), f"{package}.__all__ repeats a name"
    for name in exported:
        assert getattr(module, name) is not None, f"{package}.{name}"


@pytest.mark.parametrize("package", PACKAGES)
def test_nothing_private_is_exported(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        if name == "__version__":
            continue
        assert not name.startswith("_"), f"{package}.__all__ exports private {name}"
        value = getattr(module, name)
        if not (isinstance(value, type) or callable(value)):
            continue  # a constant (e.g. an entry-point group name)
        home = getattr(value, "__module__", None) or ""
        assert home.startswith("agentrt"), f"{package}.{name} comes from {home}"
        assert not any(part.startswith("_") for part in home.split(".")), (
            f"{package}.{name} is defined in the private module {home}"
        )


def test_the_root_exports_the_core_api() -> None:
    import agentrt

    for name in (
        "run_workflow",
        "Registry",
        "AgentManifest",
        "WorkflowManifest",
        "AgentContext",
        "select",
        "AgentrtError",
    ):
        assert name in agentrt.__all__
    assert issubclass(agentrt.ManifestError, agentrt.AgentrtError)


def test_unknown_names_raise_attribute_error() -> None:
    import agentrt

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        agentrt.nope  # noqa: B018


def test_importing_agentrt_does_not_import_prefect() -> None:
    code = (
        "import sys, agentrt, agentrt.agents, agentrt.context, agentrt.flows\n"
        "agentrt.Registry, agentrt.select, agentrt.run_workflow\n"
        "print('prefect' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
