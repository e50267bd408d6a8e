"""What ``agentrt context stats`` reports about a repository, as JSON-ready data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    build_index(scan.root, scan, store, index_stats)
    files: list[tuple[str, str]] = []
    texts: list[str] = []
    for source, text in iter_text_files(scan):
        files.append((source.path, source.language))
        texts.append(text)
    tokens = counter.count_batch(texts)
    by_language: dict[str, list[int]] = {}
    for (_, language), n in zip(files, tokens, strict=True):
        entry = by_language.setdefault(language or "other", [0, 0])
        entry[0] += 1
        entry[1] += n
    store_stats = store.stats()
    return {
        "repo": str(scan.root),
        "encoding": encoding,
        "files": len(files),
        "tokens": sum(tokens),
        "languages": [
            {"language": lang, "files": v[0], "tokens": v[1]}
            for lang, v in sorted(by_language.items(), key=lambda kv: -kv[1][1])
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


def _jsonable(stats: object) -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    if is_dataclass(stats) and not isinstance(stats, type):
        return {k: v for k, v in asdict(stats).items() if isinstance(v, int | float | str)}
    return {}
