"""What ``agentrt context stats`` reports about a repository, as JSON-ready data.

Per language: files, tokens, code units, and what agentrt understands of it — its
*structure* (``ast`` for Python, ``tree-sitter`` for the languages of
:data:`agentrt.context.syntax.LANGUAGES`, else ``lines``: fixed line windows), its
*skeleton* (``signatures``, ``headings`` for Markdown and reStructuredText, else
``heuristic``: lines that look like definitions) and its *graph* (``imports+references``
when its imports are resolved to files, ``references`` when only names link its units,
else ``none``), with how many of its imports name files of the repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentrt.context.compress import DEFINITION_KINDS, FileStructure
from agentrt.context.graph import IMPORT_LANGUAGES, RepoFiles, resolve_import

__all__ = ["repository_stats"]


def repository_stats(repo: Path, *, encoding: str | None = None) -> dict[str, Any]:
    """What ``stats`` reports, as a JSON-ready dict (also builds or refreshes the index)."""
    import time

    from agentrt.context.relevance import IndexStats, build_index
    from agentrt.context.select import DEFAULT_EXCLUDES
    from agentrt.context.sources import iter_text_files, scan_repository
    from agentrt.context.store import ContextStore, default_store_dir
    from agentrt.context.tokens import TokenCounter, default_encoding_name

    encoding = encoding or default_encoding_name()
    store = ContextStore(default_store_dir())
    counter = TokenCounter(encoding, store)
    scan = scan_repository(repo, extra_ignores=DEFAULT_EXCLUDES)
    started = time.perf_counter()
    index_stats = IndexStats(skipped=len(scan.skipped))
    index = build_index(scan.root, scan, store, index_stats)
    files: list[tuple[str, str]] = []
    texts: list[str] = []
    for source, text in iter_text_files(scan):
        files.append((source.path, source.language))
        texts.append(text)
    tokens = counter.count_batch(texts)
    position = index.position
    repo_files = RepoFiles(index.paths, index.structures)
    by_language: dict[str, _Language] = {}
    for (path, language), n in zip(files, tokens, strict=True):
        f = position.get(path)
        structure = index.structures[f] if f is not None else None
        # A file's language is the grammar's that parsed it (a C++ header read as C++).
        name = (structure.language if structure is not None else "") or language or "other"
        entry = by_language.setdefault(name, _Language(name))
        entry.files += 1
        entry.tokens += n
        if structure is not None and f is not None:
            resolved = sum(1 for i in structure.imports if resolve_import(repo_files, f, i))
            entry.add(structure, resolved)
    store_stats = store.stats()
    return {
        "repo": str(scan.root),
        "encoding": encoding,
        "files": len(files),
        "tokens": sum(tokens),
        "languages": [
            entry.as_dict() for entry in sorted(by_language.values(), key=lambda e: -e.tokens)
        ],
        "skipped": [{"path": s.path, "reason": s.reason} for s in scan.skipped],
        "index": {
            "source": index_stats.index_source,
            "parsed": index_stats.parsed,
            "cached": index_stats.records_cached + index_stats.unchanged,
            "seconds": round(time.perf_counter() - started, 3),
        },
        "store": {"directory": str(store.directory), **_jsonable(store_stats)},
    }


@dataclass(slots=True)
class _Language:
    name: str
    files: int = 0
    tokens: int = 0
    units: int = 0
    #: Units that define a name (functions, classes…), not blocks or line windows.
    definitions: int = 0
    #: Files parsed by a grammar.
    parsed: int = 0
    imports: int = 0
    #: Imports that name files of the repository (the others name libraries).
    imports_resolved: int = 0
    structure: str = "lines"

    def add(self, structure: FileStructure, resolved: int) -> None:
        self.units += len(structure.units)
        self.definitions += sum(
            1 for u in structure.units if u.kind in DEFINITION_KINDS and u.kind != "declaration"
        )
        if structure.parsed:
            self.parsed += 1
            self.structure = "ast" if structure.language == "python" else "tree-sitter"
        self.imports += len(structure.imports)
        self.imports_resolved += resolved

    def as_dict(self) -> dict[str, Any]:
        if self.parsed:
            skeleton = "signatures"
        elif self.name in ("markdown", "restructuredtext"):
            skeleton = "headings"
        else:
            skeleton = "heuristic"
        if self.parsed and self.name in IMPORT_LANGUAGES:
            graph = "imports+references"
        elif self.definitions:
            graph = "references"
        else:
            graph = "none"
        return {
            "language": self.name,
            "files": self.files,
            "tokens": self.tokens,
            "units": self.units,
            "definitions": self.definitions,
            "parsed": self.parsed,
            "structure": self.structure,
            "skeleton": skeleton,
            "graph": graph,
            "imports": self.imports,
            "imports_resolved": self.imports_resolved,
        }


def _jsonable(stats: object) -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    if is_dataclass(stats) and not isinstance(stats, type):
        return {k: v for k, v in asdict(stats).items() if isinstance(v, int | float | str)}
    return {}
