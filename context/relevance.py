"""Relevance: rank files and code units of a repository against a query.

Signals, combined in :func:`rank`:

* **lexical**: BM25 over code-aware terms, at two granularities (whole files, and code
  units: functions, methods, class headers, module-level blocks, line windows). Every
  identifier is kept whole and also split on snake_case and camelCase, so
  ``get_user_name`` matches a query about "user name", and path components count as terms;
* **exact mentions** (:func:`find_mentions`): file paths, traceback frames, dotted module
  paths, ``Class.method`` and distinctive identifiers the query names; the strongest signal
  an issue carries;
* **structure**: personalised PageRank over the import/reference graph, seeded with the
  lexical and mention hits (as in Aider's repository map), and a path prior that ranks tests
  and prose below source code.

:func:`query_signals` computes them for a query; :func:`hand_file_scores` mixes a file's
with the hand-set ``W_*`` weights, and :func:`file_features` turns them into the feature
matrix of the learned ranker (:mod:`agentrt.context.ranker`, ``AGENTRT_RANKER=learned``),
the one function both its training (``bench.train_ranker``) and :func:`rank` use.

The index (:func:`build_index`) is built once per repository state and kept in a
:class:`~agentrt.context.store.ContextStore`: per file, the analysis (structure and term-id arrays)
is cached by content hash; per repository state, the assembled index. A refresh stats every
file, re-reads only those whose size or mtime changed, re-parses only those whose content
changed, and re-assembles the BM25 matrices and graph from the cached per-file arrays with
numpy. BM25 is implemented here on scipy sparse matrices with the formula of ``bm25s``
(Lucene variant) rather than with ``bm25s`` itself, whose index build loops over documents
in Python (2.4 s per 100k documents, against ~0.2 s here) and cannot reuse per-file work.

:func:`rank_passages` applies the same tokenisation and BM25 to arbitrary passages.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import itertools
import os
import pickle
import re
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from functools import cached_property, lru_cache
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from agentrt.context.compress import DEFINITION_KINDS, TEST_PATH, FileStructure, Unit, analyze
from agentrt.context.graph import RepoFiles, import_graph, module_name, reference_graph
from agentrt.context.history import W_HISTORY, cochange_scores
from agentrt.context.twins import Twins, find_twins, unit_hashes

if TYPE_CHECKING:
    from agentrt.context.history import CoChanges
    from agentrt.context.sources import RepoScan, SourceFile
    from agentrt.context.store import ContextStore

__all__ = ["rank_passages", "split_identifier", "tokenize"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IDENT_OR_NEWLINE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\n")
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
    if identifier.isalpha() and identifier.islower():  # most identifiers: nothing to split
        return () if identifier in STOPWORDS else (identifier,)
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


#: The camelCase pieces of every "_"-separated part of identifiers joined by newlines: "_"
#: and "\n" match no alternative, so the pieces of each identifier come out in order,
#: exactly as :data:`_CAMEL` finds them part by part, with a "\n" after each identifier.
_CAMEL_OR_NEWLINE = re.compile(_CAMEL.pattern + r"|\n")


def _split_many(identifiers: list[str]) -> list[tuple[str, ...]]:
    """:func:`split_identifier` of many identifiers of :data:`_IDENT`'s form, batched.

    One regex pass and one lower-casing over all of them instead of a few calls each
    (the same result: a part of an ASCII identifier always holds a camelCase piece).
    """
    if not identifiers:
        return []
    pieces = _CAMEL_OR_NEWLINE.findall("\n".join(identifiers) + "\n")
    lowered = " ".join(pieces).lower().split(" ")
    wholes = "\n".join(identifiers).lower().split("\n")
    stop = STOPWORDS
    out: list[tuple[str, ...]] = []
    append = out.append
    wholes.reverse()
    whole = wholes.pop().strip("_")
    parts = [whole] if whole and whole not in stop else []
    for low in lowered:
        if low == "\n":
            append(tuple(parts))
            if wholes:
                whole = wholes.pop().strip("_")
                parts = [whole] if whole and whole not in stop else []
        elif low != whole and len(low) > 1 and low not in stop:
            parts.append(low)
    return out


def tokenize(text: str) -> list[str]:
    """Code-aware BM25 terms of ``text`` (identifiers whole and split, lower-cased)."""
    return list(chain.from_iterable(map(split_identifier, _IDENT.findall(text))))


_TERM_MASK = 0x7FFFFFFF


@lru_cache(maxsize=262144)
def term_id(term: str) -> int:
    """Stable 31-bit id of a term (crc32), the same in every process.

    Hashed ids let each file's terms be stored as integer arrays, once, and indexes be
    assembled from them with numpy alone; collisions among a repository's ~10^5 distinct
    terms in 2^31 buckets are negligible.
    """
    return zlib.crc32(term.encode("utf-8", "surrogatepass")) & _TERM_MASK


@lru_cache(maxsize=262144)
def identifier_ids(identifier: str) -> tuple[int, ...]:
    """Term ids of one identifier (see :func:`split_identifier`)."""
    return tuple(map(term_id, split_identifier(identifier)))


class _Vocabulary(dict):  # type: ignore[type-arg]
    """Every identifier this process has tokenised, numbered in order of first sight.

    Per number, in arrays: the term id of the identifier itself (graph edges; -1 for the
    "\\n" token that numbers lines), whether it has 3+ characters, and where its BM25 term
    ids (see :func:`split_identifier`) sit in one flat array. A file's distinct identifiers
    are looked up once each (``map(vocabulary.__getitem__, …)``, hits stay in C) and
    everything else is numpy indexing: per-identifier tuples of ids cost more to build and
    flatten than the splitting they cached. Identifiers not seen yet are numbered a file's
    worth at a time (:meth:`add_new`), their splitting and bookkeeping batched.
    """

    #: Bounded: a process indexes many repositories. Reset only between files.
    LIMIT = 500_000

    def __init__(self) -> None:
        super().__init__()
        self.reset()

    def reset(self) -> None:
        self.clear()
        self.raw = np.empty(4096, dtype=np.int64)
        self.long = np.empty(4096, dtype=bool)
        self.start = np.empty(4096, dtype=np.int64)
        self.length = np.empty(4096, dtype=np.int64)
        self.flat = np.empty(16384, dtype=np.int64)
        self.flat_size = 0
        self["\n"]  # number 0: no terms, raw id -1

    def add_new(self, keys: list[str]) -> None:
        """Number those of ``keys`` (identifiers, "\\n" excepted) not numbered yet, at once."""
        new = list(itertools.filterfalse(self.__contains__, keys))
        if not new:
            return
        n, m = len(self), len(new)
        self._grow_rows(n + m)
        split = _split_many(new)
        # term_id of every part, without its cache: most are new (a cache miss costs more).
        crc32 = zlib.crc32
        ids = np.asarray([crc32(p.encode()) for p in chain.from_iterable(split)], dtype=np.int64)
        ids &= _TERM_MASK
        lengths = np.fromiter(map(len, split), dtype=np.int64, count=m)
        end = self.flat_size + len(ids)
        self._grow_flat(end)
        self.flat[self.flat_size : end] = ids
        self.raw[n : n + m] = [crc32(k.encode()) & _TERM_MASK for k in new]
        self.long[n : n + m] = [len(k) >= 3 for k in new]
        self.start[n : n + m] = self.flat_size + np.cumsum(lengths) - lengths
        self.length[n : n + m] = lengths
        self.flat_size = end
        self.update(zip(new, range(n, n + m), strict=True))

    def _grow_rows(self, rows: int) -> None:
        """Room for ``rows`` identifiers in the per-identifier arrays (doubling)."""
        n = len(self)
        if rows > len(self.raw):
            size = max(2 * len(self.raw), rows)
            for name in ("raw", "long", "start", "length"):
                old = getattr(self, name)
                grown = np.empty(size, dtype=old.dtype)
                grown[:n] = old[:n]
                setattr(self, name, grown)

    def _grow_flat(self, end: int) -> None:
        """Room for ``end`` term ids in ``flat`` (doubling)."""
        if end > len(self.flat):
            grown = np.empty(max(2 * len(self.flat), end), dtype=np.int64)
            grown[: self.flat_size] = self.flat[: self.flat_size]
            self.flat = grown

    def __missing__(self, key: str) -> int:
        n = len(self)
        self._grow_rows(n + 1)
        ids = () if key == "\n" else identifier_ids(key)
        end = self.flat_size + len(ids)
        self._grow_flat(end)
        self.flat[self.flat_size : end] = ids
        self.raw[n] = -1 if key == "\n" else term_id(key)
        self.long[n] = len(key) >= 3
        self.start[n] = self.flat_size
        self.length[n] = len(ids)
        self.flat_size = end
        self[key] = n
        return n


_VOCABULARY = _Vocabulary()


def text_ids(text: str) -> np.ndarray:
    """Term ids of ``text`` (code-aware tokenisation)."""
    ids = list(chain.from_iterable(map(identifier_ids, _IDENT.findall(text))))
    return np.asarray(ids, dtype=np.int64)


class Bm25:
    """BM25 (Lucene variant, k1=1.5, b=0.75, as in ``bm25s``) as a sparse term x doc matrix.

    Built with numpy from (doc, term id, term frequency) triples, so building an index over
    a repository's ~10^5 code units takes a fraction of a second and needs no Python loop
    per document; scoring a query sums the rows of its terms.
    """

    def __init__(
        self,
        n_docs: int,
        doc: np.ndarray,
        term: np.ndarray,
        tf: np.ndarray,
        doc_len: np.ndarray,
        *,
        k1: float = 1.5,
        b: float = 0.75,
    ) -> None:
        import scipy.sparse as sp

        self.n_docs = n_docs
        # Term ids are 31-bit: sorting them as int32 takes half the time of int64. The
        # distinct terms by a sort and each entry's row by a binary search: 3x faster than
        # ``np.unique(..., return_inverse=True)``, whose argsort dominated building the index.
        term32 = term.astype(np.int32, copy=False)
        terms = np.unique(term32)
        row = np.searchsorted(terms, term32)
        self.terms = terms.astype(np.int64)
        df = np.bincount(row, minlength=len(self.terms)).astype(np.float64)
        idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
        avg = float(doc_len.mean()) if n_docs and doc_len.sum() > 0 else 1.0
        # idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg)), evaluated in place in
        # the same order (the same float64 values): a unit index has millions of entries,
        # and each temporary array of them weighed 25 MB at the peak of building an index.
        norm = doc_len[doc]
        norm *= b
        norm /= avg
        norm += 1.0 - b
        norm *= k1
        weight = idf[row]
        tf = tf.astype(np.float64)
        weight *= tf
        weight *= k1 + 1.0
        tf += norm
        del norm
        weight /= tf
        del tf
        weight = weight.astype(np.float32)
        self.matrix = sp.csr_matrix((weight, (row, doc)), shape=(len(self.terms), n_docs))

    @classmethod
    def from_id_lists(cls, docs: Sequence[np.ndarray]) -> Bm25:
        """Index documents given as arrays of term ids (repeats = frequency)."""
        lengths = np.asarray([len(d) for d in docs], dtype=np.int64)
        if not len(docs) or not lengths.sum():
            empty = np.zeros(0, dtype=np.int64)
            return cls(len(docs), empty, empty, empty, lengths.astype(np.float64))
        doc_of = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
        key = doc_of << 32 | np.concatenate(docs).astype(np.int64)
        pairs, tf = np.unique(key, return_counts=True)
        return cls(len(docs), pairs >> 32, pairs & 0xFFFFFFFF, tf, lengths.astype(np.float64))

    def scores(self, query_ids: np.ndarray, tf_power: float = 0.0) -> np.ndarray:
        """Score of every document: the sum over distinct query terms of their weights.

        With ``tf_power`` > 0, each term's weight is multiplied by (its count in the query)
        ** ``tf_power``: a term an issue repeats is usually what the issue is about.
        """
        if not self.n_docs or not len(self.terms) or not len(query_ids):
            return np.zeros(self.n_docs, dtype=np.float32)
        ids, counts = np.unique(query_ids, return_counts=True)
        pos = np.minimum(np.searchsorted(self.terms, ids), len(self.terms) - 1)
        found = self.terms[pos] == ids
        rows = pos[found]
        if not len(rows):
            return np.zeros(self.n_docs, dtype=np.float32)
        if tf_power:
            weights = counts[found].astype(np.float32) ** tf_power
            return np.asarray(self.matrix[rows].T @ weights, dtype=np.float32).ravel()
        return np.asarray(self.matrix[rows].sum(axis=0), dtype=np.float32).ravel()


def _normalise(scores: Sequence[float]) -> list[float]:
    top = max(scores, default=0.0)
    if top <= 0:
        return [0.0] * len(scores)
    return [max(0.0, float(s) / top) for s in scores]


def rank_passages(query: str, passages: Sequence[str]) -> list[float]:
    """BM25 relevance of each passage to ``query``, normalised to [0, 1] (best passage = 1).

    Uses the same code-aware tokenisation as repository ranking. An empty query, or one that
    shares no term with any passage, scores every passage 0. The result has one score per
    passage, in order.
    """
    if not passages:
        return []
    query_ids = text_ids(query)
    if not len(query_ids):
        return [0.0] * len(passages)
    index = Bm25.from_id_lists([text_ids(p) for p in passages])
    return _normalise(index.scores(query_ids).tolist())


# =========================================================================== repository index

#: Bump when the per-file analysis or the index layout changes: old cache entries are ignored.
INDEX_VERSION = 11

_PATH_SPLIT = re.compile(r"[/\\._\-]+")
_EXTENSIONS = frozenset({"py", "pyi", "txt", "rst", "md", "cfg", "toml", "json", "yaml", "yml"})
#: Identifiers defined in more files than this are too common to link files by reference.
_MAX_DEFINING_FILES = 8


def path_terms(path: str) -> list[str]:
    """Terms of a file path: directory and file names, split like identifiers."""
    out: list[str] = []
    for part in _PATH_SPLIT.split(path):
        if part and part not in _EXTENSIONS:
            out.extend(split_identifier(part))
    return out


@dataclass(slots=True)
class FileRecord:
    """Everything the index needs from one file version; cached by content hash.

    Term statistics are stored as integer arrays of term ids (see :func:`term_id`) so a
    repository index is assembled from records with numpy alone.
    """

    structure: FileStructure
    #: Whole-file BM25 document: distinct term ids, their frequencies, total length.
    file_terms: np.ndarray
    file_tf: np.ndarray
    file_len: int
    #: Per-unit BM25 documents, flattened: local unit number, term id, frequency.
    unit_doc: np.ndarray
    unit_term: np.ndarray
    unit_tf: np.ndarray
    unit_len: np.ndarray
    #: Distinct identifiers the file uses, as term ids of the raw identifier (graph edges).
    identifiers: np.ndarray
    #: Per unit (windows of parsed files excepted), the distinct identifiers of 3+ characters,
    #: flattened: local unit number, term id of the raw identifier (the reference graph).
    unit_ref_doc: np.ndarray
    unit_ref_id: np.ndarray
    #: Per unit, the digest of its normalised text (0: too small to pair); see
    #: :func:`agentrt.context.twins.unit_hashes`. Parsed files only.
    unit_hash: np.ndarray

    def __reduce__(self) -> tuple[object, ...]:
        # Workers send records pickled: unpickling ten small arrays per record (a dtype, a
        # buffer and a reshape each) was most of decoding them. One buffer holds them all.
        values: list[object] = [getattr(self, name) for name in _RECORD_FIELDS]
        layout: list[tuple[int, str, int]] = []
        chunks: list[bytes] = []
        for i, value in enumerate(values):
            if type(value) is np.ndarray and value.ndim == 1:
                layout.append((i, value.dtype.str, len(value)))
                chunks.append(value.tobytes() + bytes(-value.nbytes % 8))  # 8-byte aligned
                values[i] = None
        return (_unpack_record, (values, layout, b"".join(chunks)))


_RECORD_FIELDS = tuple(f.name for f in fields(FileRecord))


def _unpack_record(
    values: list[object], layout: list[tuple[int, str, int]], data: bytes
) -> FileRecord:
    """A :class:`FileRecord` from its ``__reduce__`` (arrays: read-only views of ``data``)."""
    offset = 0
    for i, dtype, n in layout:
        array = np.frombuffer(data, dtype=dtype, count=n, offset=offset)
        values[i] = array
        offset += array.nbytes + (-array.nbytes % 8)
    return FileRecord(*values)  # type: ignore[arg-type]


def _counted(doc: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (doc, term) pairs and their counts."""
    pairs, tf = np.unique(doc.astype(np.int64) << 32 | ids, return_counts=True)
    return (pairs >> 32).astype(np.int32), pairs & 0xFFFFFFFF, tf.astype(np.int32)


def _ranges_gather(starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``starts[k]..stops[k]-1`` for every k, concatenated, and their k."""
    lengths = np.maximum(stops - starts, 0)
    total = int(lengths.sum())
    owner = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    first = np.cumsum(lengths) - lengths
    return starts[owner] + (np.arange(total, dtype=np.int64) - first[owner]), owner


def analyze_file(path: str, text: str) -> FileRecord:
    """Parse and tokenise one file: the expensive step that the index caches per content."""
    structure = analyze(path, text)
    n_lines = structure.n_lines
    # One pass of the identifier regex over the whole text (newlines are tokens too, to
    # number lines); each distinct identifier is split once. ``flat`` holds the term ids
    # of every identifier occurrence in order; offsets[i] is where line i + 1's ids start.
    tokens = _IDENT_OR_NEWLINE.findall(text)
    distinct = list(dict.fromkeys(tokens))
    vocabulary = _VOCABULARY
    if len(vocabulary) > vocabulary.LIMIT:
        vocabulary.reset()
    vocabulary.add_new(distinct)
    # Vocabulary numbers of every token ("\n" is number 0) and of the distinct ones.
    codes = np.fromiter(map(vocabulary.__getitem__, tokens), dtype=np.int64, count=len(tokens))
    numbers = np.fromiter(map(vocabulary.__getitem__, distinct), np.int64, len(distinct))
    is_newline = codes == 0
    line_of = np.cumsum(is_newline) - is_newline
    occurrence = codes[~is_newline]
    occurrence_line = line_of[~is_newline]
    lengths = vocabulary.length[occurrence]
    first = vocabulary.start[occurrence]
    positions, _ = _ranges_gather(first, first + lengths)
    flat = vocabulary.flat[positions]
    per_line = np.bincount(occurrence_line, weights=lengths, minlength=n_lines)
    offsets = np.concatenate(([0], np.cumsum(per_line[:n_lines]))).astype(np.int64)
    p_ids = np.asarray([term_id(t) for t in path_terms(path)], dtype=np.int64)

    units = structure.units
    starts = np.asarray([u.start_line for u in units], dtype=np.int64)
    stops = np.asarray([u.end_line for u in units], dtype=np.int64)
    segment, segment_doc = _ranges_gather(
        offsets[np.minimum(starts, n_lines + 1) - 1], offsets[np.minimum(stops, n_lines)]
    )
    # The unit's own name counts twice: a unit is most about what it is called. Its term
    # ids are the vocabulary's (a name not in the text is added; "\n", number 0, has none).
    name_numbers = np.fromiter(
        map(
            vocabulary.__getitem__,
            [u.name.rsplit(".", 1)[-1] if u.kind in DEFINITION_KINDS else "\n" for u in units],
        ),
        dtype=np.int64,
        count=len(units),
    )
    name_len = vocabulary.length[name_numbers]
    name_first = vocabulary.start[name_numbers]
    names = vocabulary.flat[_ranges_gather(name_first, name_first + name_len)[0]]
    unit_numbers = np.arange(len(units), dtype=np.int64)
    unit_len = (np.bincount(segment_doc, minlength=len(units)) + name_len + len(p_ids)).astype(
        np.int32
    )
    unit_doc, unit_term, unit_tf = _counted(
        np.concatenate(
            (segment_doc, np.repeat(unit_numbers, name_len), np.repeat(unit_numbers, len(p_ids)))
        ),
        np.concatenate((flat[segment], names, np.tile(p_ids, len(units)))),
    )
    file_ids = np.concatenate((flat, p_ids, p_ids))
    file_terms, file_tf = np.unique(file_ids, return_counts=True)
    raw = vocabulary.raw[numbers]
    identifiers = np.unique(raw[raw >= 0])
    # Identifiers each unit uses: slices of the occurrences, by line.
    occurrence_raw = np.where(vocabulary.long[occurrence], vocabulary.raw[occurrence], -1)
    per_line_count = np.bincount(occurrence_line, minlength=n_lines)[:n_lines]
    occ_offsets = np.concatenate(([0], np.cumsum(per_line_count))).astype(np.int64)
    # In a parsed file windows repeat the functions they cut; in text they are the units.
    not_window = np.asarray([u.kind != "window" or not structure.parsed for u in units], dtype=bool)
    ref_positions, ref_owner = _ranges_gather(
        np.where(not_window, occ_offsets[np.minimum(starts, n_lines + 1) - 1], 0),
        np.where(not_window, occ_offsets[np.minimum(stops, n_lines)], 0),
    )
    ref_ids = occurrence_raw[ref_positions]
    ref_keys = np.unique(ref_owner[ref_ids >= 0] << 32 | ref_ids[ref_ids >= 0])
    return FileRecord(
        structure,
        file_terms,
        file_tf.astype(np.int32),
        len(file_ids),
        unit_doc,
        unit_term,
        unit_tf,
        unit_len,
        identifiers,
        (ref_keys >> 32).astype(np.int32),
        (ref_keys & 0xFFFFFFFF).astype(np.int32),
        unit_hashes(text, units) if structure.parsed else np.zeros(len(units), dtype=np.int64),
    )


def content_hash(text: str) -> str:
    """Stable digest of a file's text (the key of its cached analysis)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


@dataclass(slots=True)
class IndexStats:
    """What building or refreshing an index did; lets tests assert incrementality."""

    files: int = 0
    #: Files whose size and mtime matched the last manifest: not even read.
    unchanged: int = 0
    #: Files read and hashed (new, or size/mtime changed).
    read: int = 0
    #: Files parsed and tokenised (no cached analysis for their content).
    parsed: int = 0
    #: Analyses found in the memory or store cache.
    records_cached: int = 0
    #: Where the BM25 index and graph came from: "memory", "store" or "built".
    index_source: str = ""
    skipped: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]


class Definitions:
    """Definition name -> global unit numbers (``get`` and ``in``, as a dict's).

    Kept as one array of unit numbers with offsets per name: a stored index of a large
    repository holds ~10^5 names, and unpickling them as a dict of lists took a third of
    loading the index; the lists are made when a name is looked up.
    """

    __slots__ = ("_names", "_offsets", "_units", "_where")

    def __init__(self, table: dict[str, list[int]]) -> None:
        lengths = np.fromiter(map(len, table.values()), dtype=np.int64, count=len(table))
        offsets = np.zeros(len(table) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        units = np.fromiter(chain.from_iterable(table.values()), np.int32, int(offsets[-1]))
        self.__setstate__((list(table), offsets, units))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Definitions):
            return NotImplemented
        return (
            self._names == other._names
            and np.array_equal(self._offsets, other._offsets)
            and np.array_equal(self._units, other._units)
        )

    __hash__ = None  # type: ignore[assignment]

    def get(self, name: str, default: Sequence[int] | None = None) -> Sequence[int] | None:
        i = self._where.get(name)
        if i is None:
            return default
        return self._units[self._offsets[i] : self._offsets[i + 1]].tolist()  # type: ignore[no-any-return]

    def __contains__(self, name: object) -> bool:
        return name in self._where

    def __len__(self) -> int:
        return len(self._names)

    def __getstate__(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        return self._names, self._offsets, self._units

    def __setstate__(self, state: tuple[list[str], np.ndarray, np.ndarray]) -> None:
        self._names, self._offsets, self._units = state
        self._where = dict(zip(self._names, range(len(self._names)), strict=True))


@dataclass
class RepoIndex:
    """Lexical and structural index of one repository state (picklable, without records)."""

    root: str
    digest: str
    paths: list[str]
    hashes: list[str]
    structures: list[FileStructure]
    #: For unit number k (over the whole repository): its file and its index in that file.
    unit_file: np.ndarray
    unit_local: np.ndarray
    file_bm25: Bm25
    unit_bm25: Bm25
    #: Definition name (``name`` and ``Class.method``) -> global unit numbers.
    definitions: Definitions
    #: Dotted module name -> file number.
    modules: dict[str, int]
    #: File name -> file numbers (for mentions of a path suffix).
    basenames: dict[str, list[int]]
    #: Column-stochastic transition matrix of the file graph (imports and references).
    transition: object
    #: Global PageRank of files (repository overview).
    centrality: np.ndarray
    #: Prior weight of each file by its path (see :func:`path_prior`).
    priors: np.ndarray
    #: File import graph, every language resolved its own way: a scipy sparse matrix,
    #: ``imports[a, b] > 0`` when file a imports file b (1 per import naming b, 1/n when an
    #: import names a package of n files); see :func:`agentrt.context.graph.import_graph`.
    imports: object = None
    #: Unit reference graph (a call graph by name): a scipy sparse matrix over global unit
    #: numbers, ``references[u, v] > 0`` when unit u uses the name unit v defines (1 / the
    #: number of units it may mean); see :func:`agentrt.context.graph.reference_graph`.
    references: object = None
    #: Units whose text another file repeats verbatim, and which files are amalgamations
    #: (see :mod:`agentrt.context.twins`).
    twins: Twins | None = None
    records: dict[str, FileRecord] | None = None

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["records"] = None  # kept per file in the store; too big to repeat here
        state.pop("position", None)  # derived (cached_property below)
        state.pop("query_priors", None)
        return state

    @property
    def n_files(self) -> int:
        return len(self.paths)

    @cached_property
    def position(self) -> dict[str, int]:
        """Each path's file number (made once per index, which the process keeps)."""
        return {path: f for f, path in enumerate(self.paths)}

    @cached_property
    def query_priors(self) -> np.ndarray:
        """Priors applied when a query is ranked, on top of :attr:`priors` (made per index,
        not stored, so that changing them needs no new index): see :func:`template_priors`."""
        return template_priors(self.paths)

    def unit(self, k: int) -> tuple[str, Unit]:
        f = int(self.unit_file[k])
        return self.paths[f], self.structures[f].units[int(self.unit_local[k])]

    def file_units(self, f: int) -> range:
        """Global unit numbers of file ``f`` (units are numbered file by file)."""
        start = int(np.searchsorted(self.unit_file, f, side="left"))
        stop = int(np.searchsorted(self.unit_file, f, side="right"))
        return range(start, stop)


def _build_graph(
    paths: Sequence[str],
    structures: Sequence[FileStructure],
    records: Sequence[FileRecord],
    imports: object,
) -> object:
    """File graph as a column-stochastic sparse matrix (edge u -> v: u imports or uses v).

    Import edges come from ``imports`` (see :func:`agentrt.context.graph.import_graph`).
    Reference edges link a file to the files defining an identifier it uses (as in Aider's
    repository map), weighted 1 / number of defining files; names defined in more than a
    handful of files (``get``, ``save``) link nothing.
    """
    import scipy.sparse as sp

    n = len(paths)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    weights: list[np.ndarray] = []

    coo = sp.coo_matrix(imports)  # type: ignore[arg-type]
    rows.append(coo.row.astype(np.int64))
    cols.append(coo.col.astype(np.int64))
    weights.append(coo.data.astype(np.float64))

    def_ids: list[int] = []
    def_files: list[int] = []
    for f, structure in enumerate(structures):
        for name in {d.rsplit(".", 1)[-1] for d in structure.definitions}:
            if len(name) > 3 and not name.startswith("__"):
                def_ids.append(term_id(name))
                def_files.append(f)
    if def_ids:
        d_id = np.asarray(def_ids, dtype=np.int64)
        d_file = np.asarray(def_files, dtype=np.int64)
        order = np.argsort(d_id, kind="stable")
        d_id, d_file = d_id[order], d_file[order]
        ref_file = np.repeat(np.arange(n, dtype=np.int64), [len(r.identifiers) for r in records])
        ref_id = np.concatenate([r.identifiers for r in records]) if records else d_id[:0]
        # One search among the distinct definition ids (as in graph.reference_graph).
        runs = np.flatnonzero(np.diff(d_id, prepend=d_id[0] - 1))
        run_ids = d_id[runs]
        at = np.minimum(np.searchsorted(run_ids, ref_id), len(run_ids) - 1)
        lo = runs[at]
        count = np.where(run_ids[at] == ref_id, np.diff(runs, append=len(d_id))[at], 0)
        keep = (count > 0) & (count <= _MAX_DEFINING_FILES)
        lo, count, ref_file = lo[keep], count[keep], ref_file[keep]
        # Expand each reference into one edge per defining file.
        total = int(count.sum())
        starts = np.repeat(lo - np.concatenate(([0], np.cumsum(count)[:-1])), count)
        targets = d_file[starts + np.arange(total)]
        rows.append(np.repeat(ref_file, count))
        cols.append(targets)
        weights.append(np.repeat(1.0 / count, count))

    row, col, weight = np.concatenate(rows), np.concatenate(cols), np.concatenate(weights)
    keep = row != col
    matrix = sp.csr_matrix((weight[keep], (row[keep], col[keep])), shape=(n, n))
    out_degree = np.asarray(matrix.sum(axis=1)).ravel()
    inv = np.divide(1.0, out_degree, out=np.zeros_like(out_degree), where=out_degree > 0)
    return sp.csr_matrix(sp.diags(inv) @ matrix).T.tocsr()


def _resolve_import(imported: str, package: list[str], modules: dict[str, int]) -> int | None:
    if imported.startswith("."):
        level = len(imported) - len(imported.lstrip("."))
        base = package[: len(package) - (level - 1)] if level > 1 else package
        imported = ".".join([*base, imported.lstrip(".")]).strip(".")
    while imported:
        target = modules.get(imported)
        if target is not None:
            return target
        imported = imported.rpartition(".")[0]
    return None


# Accessors for other modules (agentrt.context.impact): the import edges and term lookups of
# an index, without knowing how the index stores them.


def imported_files(index: RepoIndex, f: int) -> list[int]:
    """The files of ``index`` that file ``f`` imports (its import edges), in order, once each.

    Every language's resolved imports (:func:`agentrt.context.graph.import_graph`) when the
    index has them; else Python's, resolved here."""
    if index.imports is not None:
        row = index.imports.getrow(f)  # type: ignore[attr-defined]
        return [int(t) for t in row.indices if int(t) != f]
    path = index.paths[f]
    package = (module_name(path) or "").split(".")
    if not path.endswith("__init__.py"):
        package = package[:-1]
    out: list[int] = []
    for imported in index.structures[f].imports:
        target = _resolve_import(imported, package, index.modules)
        if target is not None and target != f and target not in out:
            out.append(target)
    return out


def resolve_module(index: RepoIndex, module: str, from_file: int) -> int | None:
    """The file of ``module`` (absolute, or relative to file ``from_file``), or None."""
    path = index.paths[from_file]
    package = (module_name(path) or "").split(".")
    if not path.endswith("__init__.py"):
        package = package[:-1]
    return _resolve_import(module, package, index.modules)


def files_mentioning(index: RepoIndex, identifiers: Iterable[str]) -> set[int] | None:
    """Files whose text contains any of ``identifiers`` (case-insensitively, as a whole term).

    A superset of the files that use them (comments and strings count too). None when an
    identifier cannot be looked up (it is a stop word): then any file may use it.
    """
    found: set[int] = set()
    bm25 = index.file_bm25
    for identifier in identifiers:
        ids = identifier_ids(identifier)
        whole = identifier.lower().strip("_")
        if not ids or whole in STOPWORDS:
            return None
        term = ids[0]
        pos = int(np.searchsorted(bm25.terms, term))
        if pos < len(bm25.terms) and bm25.terms[pos] == term:
            found.update(int(f) for f in bm25.matrix[pos].indices)  # type: ignore[attr-defined]
    return found


def pagerank(
    transition: object, personalization: np.ndarray | None = None, *, damping: float = 0.85
) -> np.ndarray:
    """(Personalised) PageRank by power iteration over the column-stochastic ``transition``."""
    n = transition.shape[0]  # type: ignore[attr-defined]
    if n == 0:
        return np.zeros(0)
    if personalization is None or personalization.sum() <= 0:
        p = np.full(n, 1.0 / n)
    else:
        p = personalization / personalization.sum()
    dangling = np.asarray(transition.sum(axis=0)).ravel() == 0  # type: ignore[attr-defined]
    rank = p.copy()
    for _ in range(50):
        new = damping * (transition @ rank + rank[dangling].sum() * p) + (1 - damping) * p
        if np.abs(new - rank).sum() < 1e-6:
            return new
        rank = new
    return rank


# --------------------------------------------------------------------------- index lifecycle

# Indexes of recently used repositories, so repeated selections in one process skip even the
# store round trip. Small on purpose: an index of a large repository weighs tens of MB.
_MEMORY: OrderedDict[str, RepoIndex] = OrderedDict()
_MEMORY_SIZE = 2
_RACY_MARGIN_NS = 2_000_000_000


def _manifest_key(store: ContextStore, root: Path) -> str:
    return store.make_key("relevance-manifest", str(INDEX_VERSION), str(root))


def _record_key(store: ContextStore, digest: str) -> str:
    return store.make_key("relevance-record", str(INDEX_VERSION), digest)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while indexing.

    Parsing allocates millions of AST nodes; each allocation burst triggers collections
    that rescan every live object (the records built so far included), which took 44 % of
    the analysis CPU on Django. The nodes hold no cycles, so reference counting frees them.
    Pool workers are forked inside the pause, so they inherit it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_index(
    root: Path, scan: RepoScan, store: ContextStore, stats: IndexStats | None = None
) -> RepoIndex:
    """The index of ``scan``'s repository state, reusing everything that did not change.

    Files whose size and mtime match the last manifest are not read; files whose content
    hash has a cached analysis are not parsed; the BM25 indexes and the graph are rebuilt
    from cached per-file terms only when the set of (path, content) changed.
    """
    with _gc_paused():
        return _build_index(root, scan, store, stats or IndexStats())


def _build_index(root: Path, scan: RepoScan, store: ContextStore, stats: IndexStats) -> RepoIndex:
    started = time.perf_counter()
    root_key = str(root)
    manifest_key = _manifest_key(store, root)
    recorded_at, manifest = store.get(manifest_key) or (0, {})
    # A size/mtime pair is trusted only for files older than the manifest by a margin: a
    # file rewritten within the same clock tick as it was hashed keeps its mtime ("racy git").
    trusted_before = recorded_at - _RACY_MARGIN_NS
    previous = _MEMORY.get(root_key)
    known_records = previous.records if previous is not None and previous.records else {}

    paths: list[str] = []
    hashes: list[str] = []
    texts: dict[str, str] = {}
    for source in scan.files:
        entry = manifest.get(source.path)
        stats.files += 1
        if (
            entry is not None
            and entry[0] == source.size
            and entry[1] == source.mtime_ns
            and source.mtime_ns < trusted_before
        ):
            digest = entry[2]
            stats.unchanged += 1
        else:
            text = source.read_text()
            digest = content_hash(text)
            texts[digest] = text
            stats.read += 1
        paths.append(source.path)
        hashes.append(digest)
    new_manifest = {
        s.path: (s.size, s.mtime_ns, h) for s, h in zip(scan.files, hashes, strict=True)
    }
    if stats.read:
        store.set(manifest_key, (time.time_ns(), new_manifest))

    state = hashlib.blake2b(digest_size=16)
    for path, digest in zip(paths, hashes, strict=True):
        state.update(f"{path}\0{digest}\n".encode())
    repo_digest = state.hexdigest()

    if previous is not None and previous.digest == repo_digest:
        stats.index_source = "memory"
        stats.seconds = time.perf_counter() - started
        return previous
    index_key = store.make_key("relevance-index", str(INDEX_VERSION), repo_digest)
    cached = store.get(index_key)
    if isinstance(cached, RepoIndex):
        stats.index_source = "store"
        cached.root = root_key
        _remember(root_key, cached)
        stats.seconds = time.perf_counter() - started
        return cached

    records: dict[str, FileRecord] = {}
    todo: dict[str, str] = {}  # content hash -> path, files to analyse
    for path, digest in zip(paths, hashes, strict=True):
        if digest in records or digest in todo:
            continue
        record = known_records.get(digest)
        if record is None:
            record = store.get(_record_key(store, digest))
        if isinstance(record, FileRecord):
            stats.records_cached += 1
            records[digest] = record
        else:
            todo[digest] = path
    by_path = {s.path: s for s in scan.files}
    for batch in _batched(_analyze_many(todo, texts, by_path), _WRITE_BATCH):
        store.set_many((_record_key(store, digest), stored) for digest, _, stored in batch)
        records.update((digest, record) for digest, record, _ in batch)
        stats.parsed += len(batch)

    index = _assemble(root_key, repo_digest, paths, hashes, records)
    store.set(index_key, index)
    index.records = records
    stats.index_source = "built"
    _remember(root_key, index)
    stats.seconds = time.perf_counter() - started
    return index


T = TypeVar("T")
#: Analysed files are stored this many to a transaction.
_WRITE_BATCH = 256
#: Below this many files to analyse, a process pool costs more than it saves.
_PARALLEL_MIN_FILES = 400


def _analyze_many(
    todo: dict[str, str], texts: dict[str, str], sources: dict[str, SourceFile]
) -> Iterator[tuple[str, FileRecord, object]]:
    """Analyse files (content hash -> path), in worker processes when there are many.

    Yields (content hash, record, what to store): workers send their records encoded for
    the store (:func:`~agentrt.context.store.encode_value`), so the pickling and compressing
    happen in parallel, and pickled: this process only unpickles them.
    """
    from agentrt.context.store import Encoded

    jobs = [(digest, path, texts.get(digest)) for digest, path in todo.items()]
    workers = min(os.cpu_count() or 1, 4)
    if len(jobs) >= _PARALLEL_MIN_FILES and workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # Workers read files themselves: shipping texts through pipes would cost more.
        # Many small batches: when the last one finishes, the other worker (and this
        # process, which decodes and stores each batch as it comes) waits less.
        n_batches = workers * 16
        batches = [
            [(d, p, str(sources[p].abs_path)) for d, p, _ in jobs[i::n_batches]]
            for i in range(n_batches)
        ]
        try:
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                results = pool.map(_analyze_batch, batches)
                # While the workers parse: what assembling the index imports (half a second
                # in a fresh process) would otherwise wait until they are done.
                import scipy.sparse  # noqa: F401

                for batch in results:
                    for digest, frame, payload in batch:
                        encoded = Encoded(frame)
                        encoded.raw_size = len(payload)
                        yield digest, pickle.loads(payload), encoded
            return
        except (OSError, RuntimeError, ValueError):
            pass  # no fork here (or no processes allowed): analyse in this process
    for digest, path, text in jobs:
        if text is None:
            text = sources[path].read_text()
        record = analyze_file(path, text)
        yield digest, record, record


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of ``size`` items (the last one shorter); itertools.batched is Python 3.12+."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _analyze_batch(batch: list[tuple[str, str, str]]) -> list[tuple[str, bytes, bytes]]:
    """(content hash, store frame, pickle) of each file's record."""
    from agentrt.context.store import encode_pickled

    out: list[tuple[str, bytes, bytes]] = []
    for digest, path, abs_path in batch:
        data = Path(abs_path).read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")  # as SourceFile.read_text does
        payload = pickle.dumps(analyze_file(path, text), protocol=pickle.HIGHEST_PROTOCOL)
        out.append((digest, bytes(encode_pickled(payload)), payload))
    return out


def _remember(root_key: str, index: RepoIndex) -> None:
    _MEMORY[root_key] = index
    _MEMORY.move_to_end(root_key)
    while len(_MEMORY) > _MEMORY_SIZE:
        _MEMORY.popitem(last=False)


def _assemble(
    root: str, digest: str, paths: list[str], hashes: list[str], records: dict[str, FileRecord]
) -> RepoIndex:
    file_records = [records[h] for h in hashes]
    structures = [r.structure for r in file_records]
    n_units = np.asarray([len(s.units) for s in structures], dtype=np.int64)
    base = np.concatenate(([0], np.cumsum(n_units)))
    total_units = int(base[-1])
    unit_file = np.repeat(np.arange(len(paths), dtype=np.int32), n_units)
    unit_local = (np.arange(total_units) - base[unit_file]).astype(np.int32)

    def cat(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype=dtype)

    # The unit BM25 matrix (the largest part: sorts of millions of entries, which release
    # the GIL) is built in a thread while this one builds the rest: the workers are done,
    # so the second core is free.
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1)
    pending_unit_bm25 = pool.submit(
        lambda: Bm25(
            total_units,
            # int32 (unit numbers and 31-bit term ids fit): the thread's arrays are alive
            # at the same time as the graphs', so their size is the peak memory's.
            cat(
                [r.unit_doc.astype(np.int64) + base[f] for f, r in enumerate(file_records)],
                np.int32,
            ),
            cat([r.unit_term for r in file_records], np.int32),
            cat([r.unit_tf for r in file_records], np.int32),
            cat([r.unit_len for r in file_records], np.float64),
        )
    )
    pool.shutdown(wait=False)
    file_bm25 = Bm25(
        len(paths),
        np.repeat(np.arange(len(paths), dtype=np.int64), [len(r.file_terms) for r in file_records]),
        cat([r.file_terms for r in file_records], np.int64),
        cat([r.file_tf for r in file_records], np.int64),
        np.asarray([r.file_len for r in file_records], dtype=np.float64),
    )
    definitions: dict[str, list[int]] = {}
    unit_names: list[str] = []
    unit_kinds: list[str] = []
    for f, structure in enumerate(structures):
        for local, unit in enumerate(structure.units):
            unit_names.append(unit.name)
            unit_kinds.append(unit.kind)
            if unit.kind in DEFINITION_KINDS:
                k = int(base[f]) + local
                # Every dotted suffix: ``ns.Class.method`` is found as ``Class.method`` and
                # ``method`` (a Python method's ``Class.method`` has only those two).
                parts = unit.name.split(".")
                for cut in range(len(parts)):
                    definitions.setdefault(".".join(parts[cut:]), []).append(k)
    files = RepoFiles(paths, structures)
    imports = import_graph(files)
    references = reference_graph(
        structures,
        unit_file,
        unit_names,
        unit_kinds,
        cat(
            [r.unit_ref_doc.astype(np.int64) + base[f] for f, r in enumerate(file_records)],
            np.int64,
        ),
        cat([r.unit_ref_id for r in file_records], np.int64),
        _NameIds(),
        imports,
    )
    transition = _build_graph(paths, structures, file_records, imports)
    twins = find_twins(unit_file, cat([r.unit_hash for r in file_records], np.int64), paths)
    unit_bm25 = pending_unit_bm25.result()
    return RepoIndex(
        root=root,
        digest=digest,
        paths=paths,
        hashes=hashes,
        structures=structures,
        unit_file=unit_file,
        unit_local=unit_local,
        file_bm25=file_bm25,
        unit_bm25=unit_bm25,
        definitions=Definitions(definitions),
        modules={**files.mention_modules(), **files.modules},
        basenames=files.basenames,
        transition=transition,
        centrality=pagerank(transition),
        priors=np.asarray([path_prior(p) for p in paths], dtype=np.float32),
        imports=imports,
        references=references,
        twins=twins,
    )


class _NameIds(dict):  # type: ignore[type-arg]
    """Term id of a name, computed on first use (see :func:`term_id`)."""

    def __missing__(self, name: str) -> int:
        value = self[name] = term_id(name)
        return value


# --------------------------------------------------------------------------- ranking

_TRACEBACK = re.compile(r'File "([^"]+)", line (\d+)(?:, in ([A-Za-z_]\w*))?')
_PATHLIKE = re.compile(
    r"[\w.\-/\\]*\w\.(?:py|pyi|pyx|rst|txt|md|cfg|toml|ini|json|ya?ml|js|css|html"
    r"|[cm]?jsx?|[cm]?tsx?|go|rs|java|kt|kts|c|h|cc|cpp|cxx|hh|hpp|hxx|ipp|inl|cs|rb|php"
    r"|swift|scala)\b(?::(\d+))?"
)
#: ``Class::method``, ``crate::mod::fn``, ``obj->member`` read as dotted names (but not a
#: pytest node id's ``test_x.py::TestCase``, which names a file first).
_QUALIFIER = re.compile(r"(?<!\.py)::|->")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_CODE = re.compile(r"`([^`\n]+)`|```.*?```", re.S)
#: HTML comments: issue templates' hidden instructions ("please check the guidelines").
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)


def split_title(query: str) -> tuple[str, str]:
    """``(title, query)``: the first non-blank line of a multi-line query ("" for one line),
    and the query without HTML comments (template boilerplate that hides in issue texts)."""
    query = _HTML_COMMENT.sub(" ", query)
    lines = [line.strip() for line in query.splitlines() if line.strip()]
    return (lines[0] if len(lines) > 1 else ""), query


# Weights of the ranking signals, tuned on the SWE-bench-derived benchmark (bench/).
W_FILE_BM25 = 1.0
W_FILE_MENTION = 1.0
W_FILE_PAGERANK = 0.1
W_UNIT_MENTION = 1.0
#: The first line of a multi-line query (an issue's title, a task's summary) names its
#: subject, which the body dilutes with reproduction steps, logs and template text. So the
#: title is also scored on its own: a file's score is multiplied by (1 + W_TITLE_BOOST * its
#: BM25 score for the title), a unit gets W_UNIT_TITLE * its own added. The gold file ranks
#: first in 200 of 392 benchmark issues, 165 without the title (`python -m bench.context_ranks
#: --variant 'notitle:W_TITLE_BOOST=0,W_UNIT_TITLE=0'`). Multiplied for files, not added:
#: added, one title word lifted every short file containing it over the files the body is
#: about (a scratch variant: hunk recall at 4k on 145 issues fell 71 -> 68; multiplied, 75).
W_TITLE_BOOST = 4.0
W_UNIT_TITLE = 0.5
#: Query terms weigh (count in the query) ** this: a long issue names its subject many times
#: and incidental words once. A square root keeps one repeated term from dominating.
QUERY_TF_POWER = 0.5
#: A unit used by the best units (see :attr:`RepoIndex.references`) gains this times its
#: share of their (squared) scores. Off: at 0.3 it cost Python 2 of 39 gold files at 13k
#: (`bench.context_selection --quick`) for 1-2 more of 75 polyglot issues; at 0.1, 1. A
#: signal for a learned ranker (``bench.context_ranks --variant 'refs:W_UNIT_CALLEE=0.3'``).
W_UNIT_CALLEE = 0.0
#: A unit's score is its own evidence scaled by FLOOR + (1 - FLOOR) * its file's score.
UNIT_FILE_FLOOR = 0.0
#: Prior by kind of path: tests and prose are context, but rarely where a change goes.
TEST_PRIOR = 0.5
DOC_PRIOR = 0.6
_CODE_SUFFIXES = (
    ".py", ".pyi", ".pyx", ".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts",
    ".c", ".h", ".cc", ".cpp", ".cxx", ".hh", ".hpp", ".hxx", ".ipp", ".inl", ".go", ".rs",
    ".java", ".kt", ".kts", ".cs", ".rb", ".php", ".swift", ".scala",
)  # fmt: skip


def path_prior(path: str) -> float:
    """Prior weight of a file by its path (1 for source code)."""
    if TEST_PATH.search(path):
        return TEST_PRIOR
    if not path.endswith(_CODE_SUFFIXES):
        return DOC_PRIOR
    return 1.0


@dataclass(slots=True)
class Mentions:
    """Exact references the query makes to files and definitions, with weights."""

    files: dict[int, float]
    units: dict[int, float]


@dataclass(slots=True)
class Ranking:
    """Scores in [0, 1] of every file and unit of an index for one query."""

    file_scores: np.ndarray
    unit_scores: np.ndarray
    mentions: Mentions
    #: The query has no terms (after HTML comments are dropped): files are ranked by
    #: centrality alone, and a selection is an overview of the repository.
    overview: bool = False


def find_mentions(index: RepoIndex, query: str) -> Mentions:
    """Files and definitions the query names: paths, tracebacks, dotted names, identifiers.

    These are the strongest signals an issue carries: a traceback frame or a dotted path
    pins a file down, a backticked ``Class.method`` a unit. Names defined in many places
    weigh less (1 / number of definitions).
    """
    files: dict[int, float] = {}
    units: dict[int, float] = {}

    def add_file(f: int, w: float) -> None:
        files[f] = max(files.get(f, 0.0), w)

    def add_units(name: str, w: float, precise: bool = True) -> None:
        owners = index.definitions.get(name)
        if not owners:
            return
        # The ambiguity of a precise name (qualified, camelCase, snake_case) is counted in
        # files, not units: a Java class's overloaded constructors or a Rust type's several
        # ``impl`` blocks are one name in one place, and an issue naming it means that file.
        # A plain word's is counted in units: ``value`` or ``parse`` overloaded twenty times
        # in one file is a common word there, not a pointer to it.
        counted = _defining(index, owners)
        places = len(counted)
        if precise and places > 1:
            places = len(set(index.unit_file[counted].tolist()))
        share = w / places**0.5 if "." in name else w / places
        for k in owners:
            units[k] = max(units.get(k, 0.0), share)

    for match in _TRACEBACK.finditer(query):
        for f in _match_path(index, match.group(1)):
            add_file(f, 1.0)
            if match.group(3):
                for k in index.file_units(f):
                    if index.structures[f].units[int(index.unit_local[k])].name.rsplit(".", 1)[
                        -1
                    ] == match.group(3):
                        units[k] = max(units.get(k, 0.0), 1.0)
    for match in _PATHLIKE.finditer(query):
        line = match.group(1)
        mention = match.group()[: match.start(1) - match.end() - 1] if line else match.group()
        matched = _match_path(index, mention)
        for f in matched:
            add_file(f, 1.0 / len(matched) ** 0.5)
            # ``file.rs:120`` (a compiler error, a panic, a stack frame) pins a unit down;
            # Python's locations come from tracebacks (above).
            if line and len(matched) == 1 and index.structures[f].language != "python":
                k = _unit_at(index, f, int(line))
                if k is not None:
                    units[k] = max(units.get(k, 0.0), 1.0)
    code_spans = " ".join(m.group(0) for m in _CODE.finditer(query))
    for match in _DOTTED.finditer(_QUALIFIER.sub(".", query)):
        parts = match.group().split(".")
        for cut in range(len(parts), 0, -1):
            f = index.modules.get(".".join(parts[:cut]))
            if f is not None:
                add_file(f, 1.0)
                rest = parts[cut:]
                if rest:
                    add_units(".".join(rest[:2]), 1.0)
                break
        for a, b in itertools.pairwise(parts):
            add_units(f"{a}.{b}", 1.0)
    in_code = {m.group() for m in _IDENT.finditer(code_spans)}
    for ident in dict.fromkeys(m.group() for m in _IDENT.finditer(query)):
        if len(ident) < 4 or ident.lower() in STOPWORDS:
            continue
        precise = "_" in ident.strip("_") or _is_camel(ident)
        distinctive = precise or ident in in_code
        add_units(ident, 0.8 if distinctive else 0.3, precise)
    # A file gets credit for the definitions it holds that the query names.
    for k, w in units.items():
        f = int(index.unit_file[k])
        files[f] = max(files.get(f, 0.0), 0.8 * w)
    return Mentions(files, units)


def _defining(index: RepoIndex, owners: Sequence[int]) -> Sequence[int]:
    """The units of ``owners`` that define their name, not just declare it (a C or C++
    prototype): a declaration does not make its function's name ambiguous."""
    if len(owners) < 2 or len(owners) > 64:
        return owners
    kept = [
        k
        for k in owners
        if index.structures[int(index.unit_file[k])].units[int(index.unit_local[k])].kind
        != "declaration"
    ]
    return kept or owners


def _unit_at(index: RepoIndex, f: int, line: int) -> int | None:
    """The smallest definition unit of file ``f`` that holds ``line`` (else any unit)."""
    best: int | None = None
    best_key = (True, 0)
    for k in index.file_units(f):
        unit = index.structures[f].units[int(index.unit_local[k])]
        if unit.start_line <= line <= unit.end_line:
            key = (unit.kind not in DEFINITION_KINDS, unit.n_lines)
            if best is None or key < best_key:
                best, best_key = k, key
    return best


def _is_camel(ident: str) -> bool:
    return any(c.isupper() for c in ident[1:]) and any(c.islower() for c in ident)


def _match_path(index: RepoIndex, mention: str) -> list[int]:
    """Files whose path ends with the longest matching suffix of ``mention``."""
    parts = [p for p in mention.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts:
        return []
    candidates = index.basenames.get(parts[-1], [])
    if not candidates:
        return []
    best: list[int] = []
    best_len = 0
    for f in candidates:
        path_parts = index.paths[f].split("/")
        n = 0
        while n < min(len(parts), len(path_parts)) and parts[-1 - n] == path_parts[-1 - n]:
            n += 1
        if n > best_len:
            best, best_len = [f], n
        elif n == best_len:
            best.append(f)
    return best


def _norm(values: np.ndarray) -> np.ndarray:
    top = float(values.max()) if values.size else 0.0
    return values / top if top > 0 else np.zeros_like(values)


@dataclass(slots=True)
class Signals:
    """The evidence :func:`rank` combines for one query, each array normalised to [0, 1].

    The raw material of both rankers: the hand-set mix (:func:`hand_file_scores`) and the
    learned one (:func:`file_features` then :mod:`agentrt.context.ranker`).
    """

    mentions: Mentions
    #: Per file: BM25 of the query (without its title line's own weight), BM25 of the title
    #: alone (zeros: no title), exact mentions, personalised PageRank seeded with those.
    file_lex: np.ndarray
    file_title: np.ndarray
    file_mention: np.ndarray
    ppr: np.ndarray
    #: Per unit: BM25 of the query, of the title alone, exact mentions.
    unit_lex: np.ndarray
    unit_title: np.ndarray
    unit_mention: np.ndarray
    #: Distinct term ids of the whole query (title included).
    query_terms: np.ndarray


def query_signals(index: RepoIndex, query: str) -> Signals | None:
    """The ranking signals of ``query`` over ``index`` (None: the query has no terms)."""
    title, query = split_title(query)
    terms = text_ids(query)
    if not len(terms):
        return None
    mentions = find_mentions(index, query)
    file_lex = _norm(index.file_bm25.scores(terms, QUERY_TF_POWER))
    file_mention = np.zeros(index.n_files, dtype=np.float32)
    for f, w in mentions.files.items():
        file_mention[f] = min(1.0, w)
    seed = file_lex**2 + file_mention
    ppr = _norm(pagerank(index.transition, seed)) if seed.sum() > 0 else np.zeros(index.n_files)
    n_units = len(index.unit_file)
    unit_lex = _norm(index.unit_bm25.scores(terms, QUERY_TF_POWER))
    title_terms = text_ids(title)
    if len(title_terms):
        file_title = _norm(index.file_bm25.scores(title_terms, QUERY_TF_POWER))
        unit_title = _norm(index.unit_bm25.scores(title_terms, QUERY_TF_POWER))
    else:
        file_title = np.zeros(index.n_files, dtype=np.float32)
        unit_title = np.zeros(n_units, dtype=np.float32)
    unit_mention = np.zeros(n_units, dtype=np.float32)
    for k, w in mentions.units.items():
        unit_mention[k] = min(1.0, w)
    return Signals(
        mentions,
        file_lex,
        file_title,
        file_mention,
        ppr,
        unit_lex,
        unit_title,
        unit_mention,
        np.unique(np.concatenate((terms, title_terms))),
    )


#: Issue and pull-request templates (``.github/ISSUE_TEMPLATE/bug_report.md``): an issue is
#: a filled-in copy of one, so it matches their boilerplate better than any file it is
#: about, and a fix is never made there. Their prior (on top of the prose one).
TEMPLATE_PRIOR = 0.1
_TEMPLATE_PATH = re.compile(r"(^|/)(ISSUE_TEMPLATE|PULL_REQUEST_TEMPLATE)(/|\.|$)", re.I)


def template_priors(paths: Sequence[str]) -> np.ndarray:
    """Per path: :data:`TEMPLATE_PRIOR` for issue and pull-request templates, else 1."""
    out = np.ones(len(paths), dtype=np.float32)
    for f, path in enumerate(paths):
        if _TEMPLATE_PATH.search(path):
            out[f] = TEMPLATE_PRIOR
    return out


def hand_file_scores(index: RepoIndex, signals: Signals) -> np.ndarray:
    """The hand-set mix of the file signals (the W_* constants), normalised to [0, 1]."""
    scores = (
        (
            W_FILE_BM25 * signals.file_lex
            + W_FILE_MENTION * signals.file_mention
            + W_FILE_PAGERANK * signals.ppr
        )
        * index.priors
        * index.query_priors
    )
    return _norm(scores * (1 + W_TITLE_BOOST * signals.file_title))


#: Names of the columns of :func:`file_features`, in order. The learned ranker's weights
#: (``context/ranker.json``) name them too, and it refuses weights for other features.
FILE_FEATURES = (
    "hand",  # the hand-set score (hand_file_scores)
    "lex",  # BM25 of the query
    "lex_rank",  # 1 / (1 + the file's rank by lex); 0 without lexical evidence
    "title",  # BM25 of the title line
    "title_rank",
    "lex_x_title",
    "mention",  # exact mentions (paths, modules, definitions)
    "ppr",  # personalised PageRank seeded with lex and mentions
    "ppr_rank",
    "unit_lex_max",  # the best unit's BM25
    "unit_title_max",
    "unit_mention_max",  # the most mentioned definition it holds
    "name_cover",  # share of the file name's terms the query uses
    "dir_cover",  # share of its directories' terms the query uses
    "pair_hand",  # best hand-set score of its pair (x.h for x.c: the same path but the suffix)
    "sibling_hand",  # best hand-set score of another file in its directory
    "centrality",  # log(1 + n * global PageRank)
    "test",  # a test path
    "doc",  # neither code nor test (prose, config, data)
    "log_lines",
    "log_units",
    "parsed",  # parsed by a grammar (units are definitions, not windows)
)


def file_features(index: RepoIndex, signals: Signals) -> np.ndarray:
    """The features of every file for one query: shape (files, len(FILE_FEATURES)), float32.

    One function for training (``bench.train_ranker``) and inference (:func:`rank`), so the
    shipped weights always see the features they were fitted on.
    """
    n = index.n_files
    static = _static_features(index)
    unit_max = [
        _per_file_max(index, values)
        for values in (signals.unit_lex, signals.unit_title, signals.unit_mention)
    ]
    name_cover, dir_cover = _path_cover(index, signals.query_terms)
    hand = hand_file_scores(index, signals)
    pair_group, dir_group = _index_features(index)[2]
    columns = (
        hand,
        signals.file_lex,
        _reciprocal_rank(signals.file_lex),
        signals.file_title,
        _reciprocal_rank(signals.file_title),
        signals.file_lex * signals.file_title,
        signals.file_mention,
        signals.ppr,
        _reciprocal_rank(signals.ppr),
        *unit_max,
        name_cover,
        dir_cover,
        _best_of_others(pair_group, hand),
        _best_of_others(dir_group, hand),
    )
    out = np.empty((n, len(FILE_FEATURES)), dtype=np.float32)
    for j, column in enumerate(columns):
        out[:, j] = column
    out[:, len(columns) :] = static
    return out


def _reciprocal_rank(values: np.ndarray) -> np.ndarray:
    """1 / (1 + rank) of each value (best = 1), 0 where the value is 0."""
    order = np.argsort(-values, kind="stable")
    out = np.empty(len(values), dtype=np.float32)
    out[order] = 1.0 / (1.0 + np.arange(len(values), dtype=np.float32))
    return np.where(values > 0, out, 0.0).astype(np.float32)


def _per_file_max(index: RepoIndex, values: np.ndarray) -> np.ndarray:
    """The largest of ``values`` (one per unit) over each file's units (0: no unit)."""
    out = np.zeros(index.n_files, dtype=np.float32)
    if not len(values):
        return out
    counts = np.bincount(index.unit_file, minlength=index.n_files)
    starts = np.cumsum(counts) - counts
    some = counts > 0
    out[some] = np.maximum.reduceat(values, starts[some])
    return out


def _best_of_others(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per file, the largest of ``values`` over the other files of its group (0: none)."""
    n = len(values)
    out = np.zeros(n, dtype=np.float32)
    if n < 2:
        return out
    order = np.lexsort((-values, group))
    sorted_group = group[order]
    head = np.ones(n, dtype=bool)
    head[1:] = sorted_group[1:] != sorted_group[:-1]
    first = np.maximum.accumulate(np.where(head, np.arange(n), 0))  # the group's best
    best = values[order][first]
    second_pos = first + 1
    has_second = (second_pos < n) & (sorted_group[np.minimum(second_pos, n - 1)] == sorted_group)
    second = np.where(has_second, values[order][np.minimum(second_pos, n - 1)], 0.0)
    out[order] = np.where(head, second, best)
    return out


#: Per index digest: the query-independent features, the path terms and the file groups
#: (see :func:`_index_features`).
_FEATURE_CACHE: OrderedDict[
    str, tuple[np.ndarray, tuple[np.ndarray, ...], tuple[np.ndarray, np.ndarray]]
] = OrderedDict()


def _index_features(
    index: RepoIndex,
) -> tuple[np.ndarray, tuple[np.ndarray, ...], tuple[np.ndarray, np.ndarray]]:
    """Per file: the query-independent features; (file, term id) pairs of its name's and
    its directories' terms; its pair group (its path without the suffix) and directory."""
    cached = _FEATURE_CACHE.get(index.digest)
    if cached is not None and len(cached[0]) == index.n_files:
        return cached
    n = index.n_files
    counts = np.bincount(index.unit_file, minlength=n).astype(np.float32)
    static = np.empty((n, 6), dtype=np.float32)
    static[:, 0] = np.log1p(n * np.asarray(index.centrality, dtype=np.float64))
    test = [bool(TEST_PATH.search(p)) for p in index.paths]
    static[:, 1] = test
    static[:, 2] = [
        not (t or p.endswith(_CODE_SUFFIXES)) for p, t in zip(index.paths, test, strict=True)
    ]
    static[:, 3] = np.log1p([s.n_lines for s in index.structures])
    static[:, 4] = np.log1p(counts)
    static[:, 5] = [s.parsed for s in index.structures]
    name_file: list[int] = []
    name_ids: list[int] = []
    dir_file: list[int] = []
    dir_ids: list[int] = []
    for f, path in enumerate(index.paths):
        directory, _, name = path.rpartition("/")
        for term in path_terms(name):
            name_file.append(f)
            name_ids.append(term_id(term))
        for term in dict.fromkeys(path_terms(directory)):
            dir_file.append(f)
            dir_ids.append(term_id(term))
    arrays = tuple(np.asarray(a, dtype=np.int64) for a in (name_file, name_ids, dir_file, dir_ids))
    stems: dict[str, int] = {}
    dirs: dict[str, int] = {}
    pair_group = np.asarray(
        [stems.setdefault(p.rsplit(".", 1)[0] if "." in p.rpartition("/")[2] else p, len(stems))
         for p in index.paths],
        dtype=np.int64,
    )  # fmt: skip
    dir_group = np.asarray(
        [dirs.setdefault(p.rpartition("/")[0], len(dirs)) for p in index.paths], dtype=np.int64
    )
    cached = (static, arrays, (pair_group, dir_group))
    _FEATURE_CACHE[index.digest] = cached
    while len(_FEATURE_CACHE) > _MEMORY_SIZE:
        _FEATURE_CACHE.popitem(last=False)
    return cached


def _static_features(index: RepoIndex) -> np.ndarray:
    """The query-independent columns of :func:`file_features` (the last six)."""
    return _index_features(index)[0]


def _path_cover(index: RepoIndex, query_terms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per file, the share of its name's and of its directories' terms in ``query_terms``."""
    name_file, name_ids, dir_file, dir_ids = _index_features(index)[1]
    n = index.n_files
    out = []
    for owner, ids in ((name_file, name_ids), (dir_file, dir_ids)):
        total = np.bincount(owner, minlength=n)
        hit = np.bincount(owner, weights=np.isin(ids, query_terms), minlength=n)
        out.append((hit / np.maximum(total, 1)).astype(np.float32))
    return out[0], out[1]


#: Names of the columns of :func:`unit_features`, in order: the learned unit ranker's
#: weights (the ``units`` part of ``context/ranker.json``) name them too.
UNIT_FEATURES = (
    "hand",  # the hand-set unit score (hand_unit_scores)
    "lex",  # BM25 of the query
    "lex_rank",  # 1 / (1 + the unit's rank by lex over the repository); 0 without evidence
    "title",  # BM25 of the title line
    "mention",  # exact mentions of its name or qualified name
    "lex_in_file",  # lex / the best lex of a unit of its file
    "lex_rank_in_file",  # 1 / (1 + its rank by lex among its file's units)
    "title_in_file",
    "file",  # its file's score (the file ranking in effect)
    "file_rank",  # 1 / (1 + its file's rank)
    "file_mention",  # the query mentions its file
    "used_by_hits",  # the units the query hits use it (the reference graph)
    "uses_hits",  # it uses units the query hits
    "name_cover",  # share of its own name's terms the query uses
    "position",  # where it starts in its file (0: first line, 1: last)
    "log_lines",
    "definition",  # defines a name (not a block or a window)
    "type",  # class, struct, enum, interface, trait, impl, type
    "callable",  # function, method, macro
    "window",  # a line window (text, or a long function's piece)
    "test",  # in a test file
    "doc",  # in neither code nor a test
    "parsed",  # its file was parsed by a grammar
    "log_file_units",
)
_TYPE_KINDS = frozenset({"class", "struct", "enum", "interface", "trait", "impl", "type"})
_CALLABLE_KINDS = frozenset({"function", "method", "macro"})


def _unit_evidence(
    index: RepoIndex, signals: Signals, file_scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A unit's own evidence (BM25, title, mentions) and the factor its file's score gives."""
    own = signals.unit_lex + W_UNIT_TITLE * signals.unit_title
    own = own + W_UNIT_MENTION * signals.unit_mention
    factor = UNIT_FILE_FLOOR + (1 - UNIT_FILE_FLOOR) * file_scores[index.unit_file]
    return own, factor


def _used_by(index: RepoIndex, values: np.ndarray) -> np.ndarray:
    """Per unit, the sum of ``values`` over the units that reference it."""
    return np.asarray(index.references.T @ values, dtype=np.float32).ravel()  # type: ignore[attr-defined]


def hand_unit_scores(index: RepoIndex, signals: Signals, file_scores: np.ndarray) -> np.ndarray:
    """The hand-set unit scores, in [0, 1]: own evidence scaled by the file's score."""
    own, factor = _unit_evidence(index, signals, file_scores)
    if W_UNIT_CALLEE and index.references is not None and len(own):
        # What the best units use (a macro, a helper, a type) is context for them: a unit
        # gains from the units referencing it, in proportion to their squared scores.
        hits = _norm(own * factor) ** 2
        own = own + W_UNIT_CALLEE * _norm(_used_by(index, hits))
    return _norm(own * factor)


def unit_features(index: RepoIndex, signals: Signals, file_scores: np.ndarray) -> np.ndarray:
    """The features of every unit for one query: shape (units, len(UNIT_FEATURES)), float32.

    ``file_scores`` are the files' scores in effect (hand-set or learned). One function for
    training (``bench.train_ranker``) and inference (:func:`rank`), as :func:`file_features`.
    """
    n = len(index.unit_file)
    out = np.zeros((n, len(UNIT_FEATURES)), dtype=np.float32)
    if not n:
        return out
    hand = hand_unit_scores(index, signals, file_scores)
    lex, title = signals.unit_lex, signals.unit_title
    best_lex = _per_file_max(index, lex)[index.unit_file]
    best_title = _per_file_max(index, title)[index.unit_file]
    if index.references is not None:
        own, factor = _unit_evidence(index, signals, file_scores)
        hits = _norm(own * factor) ** 2
        used_by = _norm(_used_by(index, hits))
        uses = _norm(np.asarray(index.references @ hits, dtype=np.float32).ravel())  # type: ignore[attr-defined]
    else:
        used_by = uses = np.zeros(n, dtype=np.float32)
    static, (name_unit, name_ids) = _unit_index_features(index)
    total = np.bincount(name_unit, minlength=n)
    hit = np.bincount(name_unit, weights=np.isin(name_ids, signals.query_terms), minlength=n)
    columns = (
        hand,
        lex,
        _reciprocal_rank(lex),
        title,
        signals.unit_mention,
        np.divide(lex, best_lex, out=np.zeros(n, dtype=np.float32), where=best_lex > 0),
        _reciprocal_rank_in_file(index, lex),
        np.divide(title, best_title, out=np.zeros(n, dtype=np.float32), where=best_title > 0),
        file_scores[index.unit_file],
        _reciprocal_rank(file_scores)[index.unit_file],
        signals.file_mention[index.unit_file],
        used_by,
        uses,
        hit / np.maximum(total, 1),
    )
    for j, column in enumerate(columns):
        out[:, j] = column
    out[:, len(columns) :] = static
    return out


def _reciprocal_rank_in_file(index: RepoIndex, values: np.ndarray) -> np.ndarray:
    """1 / (1 + rank) of each unit's value among its file's units, 0 where the value is 0."""
    n = len(values)
    order = np.lexsort((-values, index.unit_file))  # units are numbered file by file
    first = np.searchsorted(index.unit_file, index.unit_file, side="left")
    position = np.empty(n, dtype=np.float32)
    position[order] = np.arange(n, dtype=np.float32)
    return np.where(values > 0, 1.0 / (1.0 + position - first), 0.0).astype(np.float32)


#: Per index digest: the query-independent unit features and the (unit, term id) pairs of
#: the units' own names (see :func:`_unit_index_features`).
_UNIT_FEATURE_CACHE: OrderedDict[str, tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]] = (
    OrderedDict()
)


def _unit_index_features(index: RepoIndex) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Per unit: the query-independent columns of :func:`unit_features` (the last ten),
    and (unit, term id) pairs of the terms of its own name."""
    cached = _UNIT_FEATURE_CACHE.get(index.digest)
    n = len(index.unit_file)
    if cached is not None and len(cached[0]) == n:
        return cached
    file_static = _static_features(index)  # centrality, test, doc, log lines, log units, parsed
    static = np.zeros((n, 10), dtype=np.float32)
    name_unit: list[int] = []
    name_ids: list[int] = []
    k = 0
    for structure in index.structures:
        lines = max(structure.n_lines, 1)
        for unit in structure.units:
            static[k, 0] = (unit.start_line - 1) / lines
            static[k, 1] = np.log1p(unit.n_lines)
            static[k, 2] = unit.kind in DEFINITION_KINDS
            static[k, 3] = unit.kind in _TYPE_KINDS
            static[k, 4] = unit.kind in _CALLABLE_KINDS
            static[k, 5] = unit.kind == "window"
            if unit.kind in DEFINITION_KINDS:
                for term in identifier_ids(unit.name.rsplit(".", 1)[-1]):
                    name_unit.append(k)
                    name_ids.append(term)
            k += 1
    per_file = file_static[index.unit_file]
    static[:, 6] = per_file[:, 1]  # test
    static[:, 7] = per_file[:, 2]  # doc
    static[:, 8] = per_file[:, 5]  # parsed
    static[:, 9] = per_file[:, 4]  # log units
    cached = (
        static,
        (np.asarray(name_unit, dtype=np.int64), np.asarray(name_ids, dtype=np.int64)),
    )
    _UNIT_FEATURE_CACHE[index.digest] = cached
    while len(_UNIT_FEATURE_CACHE) > _MEMORY_SIZE:
        _UNIT_FEATURE_CACHE.popitem(last=False)
    return cached


def with_history(index: RepoIndex, file_scores: np.ndarray, history: CoChanges) -> np.ndarray:
    """``file_scores`` raised by the source files' coupling with the best source files in the
    project's history: times 1 + W_HISTORY times :func:`agentrt.context.history.
    cochange_scores`, normalised. Tests, docs and other prose neither seed nor gain (their
    :attr:`RepoIndex.priors`, :func:`path_prior`, are below 1)."""
    extra = cochange_scores(index.paths, file_scores, history, index.priors == 1.0)
    return _norm(file_scores * (1 + W_HISTORY * extra))


def rank(index: RepoIndex, query: str, history: CoChanges | None = None) -> Ranking:
    """Score every file and unit of ``index`` for ``query`` (scores normalised to [0, 1]).

    A file's score mixes its BM25 score, the query's exact mentions of it, and personalised
    PageRank over the import/reference graph seeded with those two (files next to the hits
    matter too), scaled up by its BM25 score for the query's title alone (see :func:`split_title`):
    by the hand-set weights (W_*), or by the learned ranker (:mod:`agentrt.context.ranker`,
    ``AGENTRT_RANKER``). A unit's score mixes its own BM25 score and mentions with its file's
    score (:func:`hand_unit_scores`); the learned unit ranker (``AGENTRT_UNIT_RANKER``)
    reorders those by :func:`unit_features`. ``history`` (the repository's co-changes) then
    raises the files most coupled with the best ones (:func:`with_history`; units keep their
    scores). An empty query ranks files by global centrality and units by nothing.
    """
    n_units = len(index.unit_file)
    signals = query_signals(index, query)
    if signals is None:
        overview = _norm((index.centrality * index.priors).astype(np.float32))
        return Ranking(
            overview, np.zeros(n_units, dtype=np.float32), Mentions({}, {}), overview=True
        )
    file_scores = hand_file_scores(index, signals)
    from agentrt.context import ranker

    if ranker.ranker_mode() == "learned":
        model = ranker.load_ranker()
        file_scores = model.file_scores(file_features(index, signals), file_scores)
    unit_scores = hand_unit_scores(index, signals, file_scores)
    if ranker.unit_ranker_mode() == "learned" and n_units:
        units = ranker.load_ranker().units
        if units is None:
            raise ranker.RankerError(f"the ranker weights {ranker.RANKER_FILE} hold no unit model")
        groups = index.unit_file if ranker.UNIT_SCOPE == "file" else None
        unit_scores = units.file_scores(
            unit_features(index, signals, file_scores), unit_scores, groups
        )
    if history is not None:
        file_scores = with_history(index, file_scores, history)
    return Ranking(file_scores.astype(np.float32), unit_scores.astype(np.float32), signals.mentions)
