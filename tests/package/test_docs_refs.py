"""README and docs/ stay true to the code: every file path and every ``agentrt.…`` name they
mention exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FOLDERS = "agentrt|agents|context|flows|bench|tests|notebooks|docs"
PATH = re.compile(rf"(?<![\w./-])((?:{FOLDERS})/[\w./-]*\w\.(?:py|yaml|md|ipynb))\b")
NAME = re.compile(r"(?<![\w./-])(agentrt(?:\.[A-Za-z_]\w*)+)")


def _mentions(pattern: re.Pattern[str]) -> list[tuple[str, int, str]]:
    found = []
    for doc in DOCS:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            found += [(doc.name, number, m) for m in pattern.findall(line)]
    return found


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def test_paths_in_docs_exist() -> None:
    missing = [f"{doc}:{n}: {p}" for doc, n, p in _mentions(PATH) if not (ROOT / p).exists()]
    assert missing == []


@pytest.mark.parametrize("doc", [d.name for d in DOCS])
def test_agentrt_names_in_docs_exist(doc: str) -> None:
    names = {(n, m) for d, n, m in _mentions(NAME) if d == doc}
    # Not Python names: event names (agentrt.repo.pushed) and the metrics logger's name.
    names = {(n, m) for n, m in names if not m.startswith("agentrt.repo.")}
    names -= {(n, m) for n, m in names if m == "agentrt.metrics"}
    missing = [f"{doc}:{n}: {m}" for n, m in sorted(names) if not _resolves(m)]
    assert missing == []
