"""Which delivered context items an output uses: the *citation* rule of context efficiency.

Context efficiency is ``tokens_referenced / tokens_delivered`` (docs/metrics.md). We cannot
see inside a model or an analyser, so an item counts as *referenced* when the output cites
it:

* **a located citation** — a path with a line (``{"path": "a.py", "line": 12}``, an
  ``ApiObject``'s ``line`` under its module's ``path``, the text ``a.py:12`` or
  ``a.py:10-20`` or ``a.py#L12``) references the items of that file whose line range
  contains (overlaps) the line;
* **a file citation** — a path without a line (a ``path``/``file``/``files`` value, or a
  bare ``a.py`` in text) references every item of that file;
* **a named identifier** — a name *defined* in an item's text (``def``/``class``/
  ``function``/``fn``/``func``/``type``/``interface``/``struct``, a top-level assignment) named
  as a whole word in the output's text references that item. Names shorter than 4
  characters, dunders and a few generic words are ignored.

Paths are compared after normalisation; an absolute path matches a repository-relative one
that it ends with at a folder boundary. Each item counts once.

:func:`cited_items` applies the rule with switches: LLM agents use all of it on their answer
(:func:`agentrt.agents.llm.run_llm_agent`); the runtime uses the structured citations (paths
and lines in fields, not prose) for the readers of a context deliverer's output
(:func:`agentrt.flows.metrics.referenced_tokens`).

Pure Python, nothing heavy imported: agents may use it freely.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

__all__ = [
    "Citation",
    "citations",
    "cited_items",
    "defined_identifiers",
    "item_tokens",
    "referenced_tokens",
]

_PATH_KEYS = frozenset({"path", "paths", "file", "files", "filename"})
_LINE_KEYS = ("line", "lineno", "start_line", "line_start")
_END_KEYS = ("end_line", "end_lineno", "line_end")

# path, optionally :line, :line-end, :line:col, #Lline or #Lline-Lend
_TEXT_CITATION = re.compile(
    r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]*\w\.[A-Za-z][A-Za-z0-9]{0,9})"
    r"(?:(?::|#L)(\d+)(?:\s*[-–]\s*L?(\d+))?)?(?![\w/])"
)
_DEFINITION = re.compile(
    r"^\s*(?:export\s+)?(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?"
    r"(?:def|class|function|fn|func|type|interface|struct|enum|trait)\s+([A-Za-z_]\w*)"
    r"|^([A-Za-z_]\w*)\s*(?::[^=\n]*)?=(?!=)",
    re.MULTILINE,
)
_WORD = re.compile(r"[A-Za-z_]\w*")
_GENERIC = frozenset(
    {"self", "main", "test", "None", "True", "False", "data", "name", "value", "path", "text"}
    | {"type", "list", "dict", "item", "items", "args", "kwargs", "result", "output", "input"}
)


@dataclass(frozen=True, slots=True)
class Citation:
    """A cited file, with the cited line range when the citation has one."""

    path: str
    start: int | None = None
    end: int | None = None


def _norm_path(path: str) -> str:
    path = path.strip().replace("\\", "/")
    return posixpath.normpath(path) if path else ""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _strings(value: Any) -> Iterator[str]:
    """Every string value in a JSON-like output (not the keys, nor the values of path keys:
    those are structured citations, located by their mapping's line)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, BaseModel):
            v = v.model_dump()
        if isinstance(v, str):
            yield v
        elif isinstance(v, Mapping):
            stack.extend(child for key, child in v.items() if key not in _PATH_KEYS)
        elif isinstance(v, list | tuple):
            stack.extend(v)


def citations(output: Any, *, text: bool = True) -> set[Citation]:
    """Every citation in ``output`` (any JSON-like value, pydantic models, lists of them).

    Structured: a mapping's ``path``/``paths``/``file``/``files``/``filename`` values, with
    its ``line`` (``lineno``, ``start_line``) and ``end_line`` when it has them; a mapping
    with a line but no path inherits the nearest enclosing path. With ``text``, also
    ``path``, ``path:line``, ``path:start-end`` and ``path#Lline`` written in string values.
    """
    found: set[Citation] = set()
    stack: list[tuple[Any, str | None]] = [(output, None)]
    while stack:
        value, enclosing = stack.pop()
        if isinstance(value, BaseModel):
            value = value.model_dump()
        if isinstance(value, Mapping):
            paths = []
            for key in _PATH_KEYS & value.keys():
                named = value[key]
                for p in (
                    [named]
                    if isinstance(named, str)
                    else named
                    if isinstance(named, list | tuple)
                    else []
                ):
                    if isinstance(p, str) and (p := _norm_path(p)):
                        paths.append(p)
            start = next((_int(value.get(k)) for k in _LINE_KEYS if _int(value.get(k))), None)
            end = next((_int(value.get(k)) for k in _END_KEYS if _int(value.get(k))), None)
            own = paths or ([enclosing] if enclosing and start else [])
            for path in own:
                found.add(Citation(path, start, max(end, start) if start and end else start))
            inner = paths[0] if len(paths) == 1 else enclosing
            for child in value.values():
                if isinstance(child, Mapping | list | tuple | BaseModel):
                    stack.append((child, inner))
        elif isinstance(value, list | tuple):
            stack.extend((v, enclosing) for v in value if isinstance(v, Mapping | list | BaseModel))
    if text:
        for string in _strings(output):
            for match in _TEXT_CITATION.finditer(string):
                path = _norm_path(match.group(1))
                start = int(match.group(2)) if match.group(2) else None
                end = int(match.group(3)) if match.group(3) else start
                if start is not None and end is not None and end < start:
                    end = start
                found.add(Citation(path, start, end))
    found.discard(Citation(""))
    return found


def defined_identifiers(text: str) -> set[str]:
    """Names an item's text defines: functions, classes, types, top-level assignments."""
    names = {a or b for a, b in _DEFINITION.findall(text or "")}
    return {n for n in names if len(n) >= 4 and n not in _GENERIC and not n.startswith("__")}


def _get(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, Mapping) else getattr(item, key, None)


def item_tokens(item: Any) -> int:
    tokens = _get(item, "tokens")
    return int(tokens) if isinstance(tokens, int | float) and tokens > 0 else 0


def _same_file(a: str, b: str) -> bool:
    # An absolute path and a repository-relative one name the same file when one ends
    # with the other at a folder boundary.
    return a == b or a.endswith("/" + b) or b.endswith("/" + a)


def cited_items(
    items: Iterable[Any],
    output: Any,
    *,
    text: bool = True,
    identifiers: bool = True,
    file_level: bool = True,
) -> list[Any]:
    """The delivered ``items`` (with ``path``, optional ``start_line``/``end_line``/``text``;
    dicts or objects such as :class:`~agentrt.context.items.SelectionItem`) that ``output``
    cites, in their order, each once.

    ``text``: read citations written in string values too (``a.py:12``), not only fields;
    ``identifiers``: a name an item defines, named in the output, cites it; ``file_level``:
    a citation without a line cites every item of its file (without it, only located
    citations count).
    """
    items = list(items)
    found = citations(output, text=text)
    if not file_level:
        found = {c for c in found if c.start is not None}
    words: set[str] | None = None
    if identifiers and items:
        words = {w for s in _strings(output) for w in _WORD.findall(s)}
    used = []
    for item in items:
        path = _get(item, "path")
        if not isinstance(path, str) or not path:
            continue
        path = _norm_path(path)
        lo, hi = _int(_get(item, "start_line")), _int(_get(item, "end_line"))
        hit = False
        for c in found:
            if not _same_file(c.path, path):
                continue
            if c.start is None or lo is None:
                hit = True  # a file citation, or an item without a range (the whole file)
            else:
                hit = c.start <= (hi or lo) and (c.end or c.start) >= lo
            if hit:
                break
        if not hit and words:
            hit = bool(defined_identifiers(str(_get(item, "text") or "")) & words)
        if hit:
            used.append(item)
    return used


def referenced_tokens(items: Iterable[Any], output: Any, **rule: bool) -> int:
    """Σ ``tokens`` of :func:`cited_items` (same switches)."""
    return sum(item_tokens(i) for i in cited_items(items, output, **rule))
