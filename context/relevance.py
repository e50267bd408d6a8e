"""Relevance: rank files and code units of a repository against a query.

The lexical side is BM25 (``bm25s``) over code-aware terms: every identifier is kept whole and
also split on snake_case and camelCase, so ``get_user_name`` matches a query about "user
name" and a query naming ``getUserName`` exactly matches strongly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

__all__ = ["rank_passages", "split_identifier", "tokenize"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# camelCase / PascalCase / acronyms: "HTTPServerError2" -> HTTP, Server, Error2
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+[0-9]*|[A-Z]+[0-9]*|[0-9]+")

# Words that carry no signal in code or issue text. Kept short on purpose: BM25's IDF already
# discounts frequent terms; this list only saves index space on the very commonest ones.
_STOPWORD_TEXT = """
    a an and are as at be but by for from has have if in into is it its not of on or so
    that the their then there these this to was were will with when which who what how
    i we you he she they me my our your us do does did done can could would should may
    all any some no yes just also only than too very
    self cls def return none true false pass else elif import
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@lru_cache(maxsize=65536)
def split_identifier(identifier: str) -> tuple[str, ...]:
    """Terms of one identifier: itself (lower-cased) and its snake/camel-case parts.

    >>> split_identifier("getUserName")
    ('getusername', 'get', 'user', 'name')
    """
    whole = identifier.lower().strip("_")
    if not whole:
        return ()
    parts: list[str] = [whole]
    for piece in identifier.split("_"):
        if not piece:
            continue
        sub = _CAMEL.findall(piece) or [piece]
        for s in sub:
            low = s.lower()
            if low != whole and len(low) > 1:
                parts.append(low)
    return tuple(p for p in parts if p not in STOPWORDS)


def tokenize(text: str) -> list[str]:
    """Code-aware BM25 terms of ``text`` (identifiers whole and split, lower-cased)."""
    out: list[str] = []
    for match in _IDENT.finditer(text):
        out.extend(split_identifier(match.group()))
    return out


def _bm25_scores(query_terms: Sequence[str], docs: Iterable[Sequence[str]]) -> list[float]:
    """Raw BM25 scores of ``docs`` (already tokenised) for ``query_terms``."""
    import bm25s  # imported lazily: it pulls in scipy (~0.25 s)
    from bm25s.tokenization import Tokenized

    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(t, len(vocab)) for t in doc] for doc in docs]
    n = len(ids)
    query_ids = list(dict.fromkeys(vocab[t] for t in query_terms if t in vocab))
    if n == 0:
        return []
    if not query_ids:
        return [0.0] * n
    retriever = bm25s.BM25()
    retriever.index(Tokenized(ids=ids, vocab=vocab), show_progress=False)
    return [float(s) for s in retriever.get_scores(query_ids)]


def _normalise(scores: Sequence[float]) -> list[float]:
    top = max(scores, default=0.0)
    if top <= 0:
        return [0.0] * len(scores)
    return [max(0.0, s / top) for s in scores]


def rank_passages(query: str, passages: Sequence[str]) -> list[float]:
    """BM25 relevance of each passage to ``query``, normalised to [0, 1] (best passage = 1).

    Uses the same code-aware tokenisation as repository ranking. An empty query, or one that
    shares no term with any passage, scores every passage 0. The result has one score per
    passage, in order.
    """
    if not passages:
        return []
    query_terms = tokenize(query)
    if not query_terms:
        return [0.0] * len(passages)
    return _normalise(_bm25_scores(query_terms, (tokenize(p) for p in passages)))
