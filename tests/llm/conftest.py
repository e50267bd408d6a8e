"""Fixtures for LLM agent tests: a clean provider environment, the registry, a small repo."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agentrt.agents.registry import RegisteredAgent, Registry

#: Environment variables that choose or configure a model; every test starts without them.
PROVIDER_ENV = (
    "AGENTRT_MODEL",
    "AGENTRT_LLM_BASE_URL",
    "AGENTRT_LLM_MAX_RETRIES",
    "AGENTRT_LLM_OUTPUT_RETRIES",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OLLAMA_BASE_URL",
    "OLLAMA_API_KEY",
    "AGENTRT_PRICES",
)

#: A key-shaped value tests plant in the environment and then look for everywhere.
PLANTED_KEY = "sk-agentrt-PLANTED-7f3a9c1e5b2d4f60a8e1"

APP = """\
    import json


    def load(path):
        handle = open(path)
        return json.loads(handle.read())


    def ratio(a, b):
        try:
            return a / b
        except:
            return None


    class Cache:
        def __init__(self):
            self.items = {}

        def get(self, key):
            return self.items[key]
    """


@pytest.fixture(autouse=True)
def clean_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def registry() -> Registry:
    return Registry.discover(env=False, entry_points=False)


@pytest.fixture(scope="session")
def llm_review(registry: Registry) -> RegisteredAgent:
    return registry.get("llm_review")


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A two-file Python repository; ``pkg/app.py`` has a bare except at line 12."""
    return write_tree(
        tmp_path / "repo",
        {
            "pkg/__init__.py": "",
            "pkg/app.py": APP,
            "pkg/util.py": "def double(x):\n    return 2 * x\n",
        },
    )
