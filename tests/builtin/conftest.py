"""Fixture repositories for the built-in analysers: small trees written into tmp_path."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

RepoFactory = Callable[[dict[str, str]], Path]


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write ``{relative path: text}`` under ``root`` (text dedented) and return ``root``."""
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


@pytest.fixture
def make_repo(tmp_path: Path) -> RepoFactory:
    """A factory: ``make_repo({"pkg/a.py": "..."})`` writes a repository and returns its root."""
    counter = iter(range(1000))

    def factory(files: dict[str, str]) -> Path:
        return write_tree(tmp_path / f"repo{next(counter)}", files)

    return factory
