"""A persistent, size-bounded, multi-process cache for everything context-related.

:class:`ContextStore` wraps :class:`diskcache.Cache` (SQLite + files, safe for several
processes at once) with least-recently-used eviction and zstandard-compressed values
(:class:`ZstdDisk`). Keys are plain strings, usually built with :func:`make_key` from a
namespace and content hashes, so a key changes exactly when its inputs do.

Large values live in files beside the SQLite database, written before the row that names
them is committed. A process killed in between leaves files no row names, so every process
that writes such files holds a lease (a ``cache.db.writer-<token>`` file, locked while it
lives, its token in the names of its files); opening the store after a writer died removes
the files of dead writers that no row names (:class:`_Leases`).

By default the store lives in ``$AGENTRT_HOME/context`` (``AGENTRT_HOME`` defaults to
``./.agentrt``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import os.path as op
import pickle
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any, TypeVar

import diskcache
import zstandard
from diskcache.core import DBNAME, MODE_BINARY, MODE_RAW, UNKNOWN

from agentrt.errors import AgentrtError

__all__ = [
    "DEFAULT_SIZE_LIMIT",
    "ContextStore",
    "StoreError",
    "StoreStats",
    "ZstdDisk",
    "default_store_dir",
    "make_key",
]

T = TypeVar("T")

DEFAULT_SIZE_LIMIT = 2 * 1024**3
HOME_ENV_VAR = "AGENTRT_HOME"

# Counters kept in the cache itself, so every process sees and updates the same ones.
# make_key() keys always contain ":" followed by hex, so they cannot collide with these.
_RAW_BYTES_KEY = "__agentrt_store__/bytes_raw"
_WRITTEN_BYTES_KEY = "__agentrt_store__/bytes_compressed"
_RESERVED_KEYS = (_RAW_BYTES_KEY, _WRITTEN_BYTES_KEY)
_MISSING: Any = object()

try:  # a lease is an flock (released by the kernel when its process dies); POSIX only
    import fcntl
except ImportError:  # pragma: no cover - Windows: no leases, no recovery after a crash
    fcntl = None  # type: ignore[assignment]

# "cache.db" in the name: diskcache's check() counts such files as the database's own
# (like cache.db-wal), not as stray value files.
_LEASE_PREFIX = f"{DBNAME}.writer-"
_VALUE_SUFFIX = ".val"


class StoreError(AgentrtError, RuntimeError):
    """The store cannot be opened or a value cannot be stored."""


def default_store_dir() -> Path:
    """``$AGENTRT_HOME/context``; ``AGENTRT_HOME`` defaults to ``.agentrt`` in the cwd."""
    home = os.environ.get(HOME_ENV_VAR)
    base = Path(home).expanduser() if home else Path(".agentrt")
    return (base if base.is_absolute() else Path.cwd() / base) / "context"


def make_key(namespace: str, *parts: object) -> str:
    """A stable key ``"<namespace>:<blake2b hex>"`` for ``parts``.

    ``parts`` are encoded canonically (JSON with sorted keys; tuples as lists; ``bytes``
    and paths tagged so they cannot be confused with strings), so equal inputs give the
    same key in every process and Python version. Supported: ``None``, ``bool``, ``int``,
    ``float``, ``str``, ``bytes``, paths, and lists/tuples/dicts (string keys) of these.
    """
    if not namespace:
        raise ValueError("make_key needs a non-empty namespace, e.g. make_key('tokens', ...)")
    try:
        encoded = json.dumps(
            [_canonical(p) for p in parts],
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=True,
        ).encode("utf-8", "surrogatepass")
    except TypeError as exc:
        raise TypeError(f"make_key({namespace!r}, ...): {exc}") from None
    return f"{namespace}:{hashlib.blake2b(encoded, digest_size=20).hexdigest()}"


def _canonical(value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return {"__bytes__": value.hex()}
    if isinstance(value, PurePath):
        return {"__path__": value.as_posix()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("dict keys in key parts must be strings")
        return {k: _canonical(v) for k, v in value.items()}
    raise TypeError(
        f"cannot use a {type(value).__name__} in a key; pass str/int/float/bytes/Path "
        "or a content hash instead"
    )


class Encoded(bytes):
    """A value already encoded as a store frame (:func:`encode_value`): written as is.

    Lets worker processes do the pickling and compressing of what they computed, in
    parallel, instead of the process that writes to the store.
    """

    raw_size: int = 0


def encode_value(value: object, compression_level: int = 3) -> Encoded:
    """``value`` as :class:`ZstdDisk` stores a pickled value (decode with :func:`decode_value`)."""
    return encode_pickled(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), compression_level)


def encode_pickled(payload: bytes, compression_level: int = 3) -> Encoded:
    """As :func:`encode_value`, of a value already pickled (``pickle.loads(payload)``)."""
    compressed = zstandard.ZstdCompressor(level=compression_level).compress(payload)
    frame = Encoded(b"pz" + compressed if len(compressed) < len(payload) else b"pn" + payload)
    frame.raw_size = len(payload)
    return frame


def decode_value(frame: bytes) -> Any:
    """The value of a frame made by :func:`encode_value`."""
    payload = frame[2:]
    if frame[1:2] == b"z":
        payload = zstandard.ZstdDecompressor().decompress(payload)
    return pickle.loads(payload)


class _Leases:
    """Which processes write value files into a store, and cleaning up after dead ones.

    A writer takes a lease the first time it writes a value file: it creates
    ``cache.db.writer-<token>``, keeps an exclusive ``flock`` on it while it lives, and puts
    the token in its value files' names (``ab/cd/<random>.<token>.val``). A clean close
    removes the lease. A lease that can be locked by someone else belongs to a process that
    died: :meth:`recover` then removes the value files no row names whose token has no live
    lease (no live writer can still commit them), and the dead leases.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._token: str | None = None
        self._pid = 0

    def token(self) -> str:
        """This process's token, taking the lease on first use (and again after a fork)."""
        pid = os.getpid()
        if self._token is None or self._pid != pid:
            with self._lock:
                if self._token is None or self._pid != pid:
                    self._token = self._take(pid)
                    self._pid = pid
        return self._token

    def _take(self, pid: int) -> str:
        token = os.urandom(6).hex()
        if fcntl is None:
            return token
        path = op.join(self.directory, _LEASE_PREFIX + token)
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new random name: uncontended
        except OSError:  # a file system without flock: no leases there, and no recovery
            os.close(fd)
            os.unlink(path)
            return token
        # Released when the store is closed or collected, or the interpreter exits; only by
        # the process that took it (a forked child shares the descriptor, not the lease).
        self._release = weakref.finalize(self, _drop_lease, path, fd, pid)
        return token

    def release(self) -> None:
        release = getattr(self, "_release", None)
        if release is not None:
            release()
        self._token = None

    def recover(self) -> int:
        """Remove what dead writers left behind; returns the number of files removed."""
        if fcntl is None:
            return 0
        try:
            names = [n for n in os.listdir(self.directory) if n.startswith(_LEASE_PREFIX)]
        except OSError:
            return 0
        live: set[str] = set()
        dead: list[tuple[str, int]] = []
        for name in names:
            path = op.join(self.directory, name)
            try:
                fd = os.open(path, os.O_RDWR)
            except OSError:
                continue  # released meanwhile
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                live.add(name[len(_LEASE_PREFIX) :])
                continue
            dead.append((path, fd))  # held until its files are gone: one process cleans up
        if not dead:
            return 0
        try:
            return self._remove_orphans(live)
        finally:
            for path, fd in dead:
                with contextlib.suppress(OSError):
                    os.unlink(path)
                os.close(fd)

    def _remove_orphans(self, live: set[str]) -> int:
        with contextlib.closing(sqlite3.connect(op.join(self.directory, DBNAME), timeout=60)) as db:
            named = {
                row[0]
                for row in db.execute("SELECT filename FROM Cache WHERE filename IS NOT NULL")
            }
        removed = 0
        for dirpath, _, files in os.walk(self.directory):
            for name in files:
                parts = name.split(".")
                # Only files of this scheme: <random>.<token>.val whose writer is dead.
                if len(parts) != 3 or "." + parts[2] != _VALUE_SUFFIX or parts[1] in live:
                    continue
                path = op.join(dirpath, name)
                if op.relpath(path, self.directory) in named:
                    continue
                with contextlib.suppress(OSError):
                    os.remove(path)
                    removed += 1
            if dirpath != self.directory:
                with contextlib.suppress(OSError):
                    os.removedirs(dirpath)  # as diskcache does: empty folders go too
        return removed


def _drop_lease(path: str, fd: int, pid: int) -> None:
    if os.getpid() != pid:
        return
    with contextlib.suppress(OSError):
        os.unlink(path)
    with contextlib.suppress(OSError):
        os.close(fd)


class _Batch:
    """Value files a batch wrote, and old ones it replaced (removed only once committed)."""

    __slots__ = ("replaced", "written")

    def __init__(self) -> None:
        self.written: list[str] = []
        self.replaced: list[str] = []


class ZstdDisk(diskcache.Disk):
    """diskcache serialisation with zstandard-compressed values.

    ``int`` and ``float`` values stay native SQLite values. Everything else is stored as
    a small frame: one byte for the kind (``b`` bytes, ``s`` str, ``p`` pickle), one for
    the codec (``z`` zstd, ``n`` none when compressing would not shrink it), then the
    payload. Keys are left to diskcache, uncompressed, so lookups stay exact.
    """

    def __init__(self, directory: str, compression_level: int = 3, **kwargs: Any) -> None:
        super().__init__(directory, **kwargs)
        self.compression_level = compression_level
        # zstd (de)compressor objects must not be shared between threads.
        self._local = threading.local()
        self.leases = _Leases(directory)

    def filename(self, key: Any = UNKNOWN, value: Any = UNKNOWN) -> tuple[str, str]:
        """diskcache's random name, with this process's lease token in it (``_Leases``)."""
        hex_name = os.urandom(14).hex()
        name = f"{hex_name[4:]}.{self.leases.token()}{_VALUE_SUFFIX}"
        filename = op.join(hex_name[:2], hex_name[2:4], name)
        return filename, op.join(self._directory, filename)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Writes of this thread in one transaction: all their value files, or none.

        diskcache removes a replaced value file as soon as the (nested) write that replaced
        it is done, and leaves the new file behind when the transaction rolls back. In a
        batch, replaced files are removed only after the commit, and new ones when it fails.
        """
        if getattr(self._local, "batch", None) is not None:
            yield
            return
        batch = self._local.batch = _Batch()
        try:
            yield
        except BaseException:
            self._local.batch = None
            for name in batch.written:
                super().remove(name)
            raise
        self._local.batch = None
        for name in batch.replaced:
            super().remove(name)

    def remove(self, file_path: str) -> None:
        batch = getattr(self._local, "batch", None)
        if batch is not None:
            batch.replaced.append(file_path)
        else:
            super().remove(file_path)

    def _compressor(self) -> zstandard.ZstdCompressor:
        compressor = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = zstandard.ZstdCompressor(level=self.compression_level)
            self._local.compressor = compressor
        return compressor

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        decompressor = getattr(self._local, "decompressor", None)
        if decompressor is None:
            decompressor = zstandard.ZstdDecompressor()
            self._local.decompressor = decompressor
        return decompressor

    @property
    def last_sizes(self) -> tuple[int, int]:
        """(raw, stored) sizes of the last value this thread stored."""
        return getattr(self._local, "sizes", (0, 0))

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> tuple[Any, ...]:
        if type(value) is float or (type(value) is int and -(2**63) <= value < 2**63):
            self._local.sizes = (0, 0)
            return super().store(value, read, key=key)
        if type(value) is Encoded:  # a frame made by encode_value: already compressed
            self._local.sizes = (value.raw_size, len(value))
            return self._written(super().store(bytes(value), False, key=key))
        if read:  # a file-like object
            value = value.read()
        if type(value) is bytes:
            kind, payload = b"b", value
        elif type(value) is str:
            kind, payload = b"s", value.encode("utf-8", "surrogatepass")
        else:
            try:
                payload = pickle.dumps(value, protocol=self.pickle_protocol)
            except (pickle.PicklingError, TypeError, AttributeError) as exc:
                raise StoreError(
                    f"cannot store a {type(value).__name__}: it is not picklable ({exc})"
                ) from exc
            kind = b"p"
        compressed = self._compressor().compress(payload)
        if len(compressed) < len(payload):
            frame = kind + b"z" + compressed
        else:
            frame = kind + b"n" + payload
        self._local.sizes = (len(payload), len(frame))
        return self._written(super().store(frame, False, key=key))

    def _written(self, stored: tuple[Any, ...]) -> tuple[Any, ...]:
        batch = getattr(self._local, "batch", None)
        if batch is not None and stored[2] is not None:  # (size, mode, filename, value)
            batch.written.append(stored[2])
        return stored

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        data = super().fetch(mode, filename, value, False)
        if mode not in (MODE_RAW, MODE_BINARY) or not isinstance(data, bytes):
            return data  # int / float (or an entry written by plain diskcache)
        kind, codec, payload = data[:1], data[1:2], data[2:]
        if codec == b"z":
            payload = self._decompressor().decompress(payload)
        if kind == b"b":
            return payload
        if kind == b"s":
            return payload.decode("utf-8", "surrogatepass")
        return pickle.load(io.BytesIO(payload))


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Store statistics, shared by every process using the same directory.

    ``hits``/``misses`` count lookups (``get``, ``get_or_compute``). ``bytes_stored`` is
    the store's current size on disk (SQLite pages plus value files). ``bytes_raw`` and
    ``bytes_compressed`` add up the uncompressed and compressed sizes of every value
    written since the store was created or cleared (evictions do not subtract).
    """

    hits: int
    misses: int
    entries: int
    bytes_stored: int
    bytes_raw: int
    bytes_compressed: int

    @property
    def compression_ratio(self) -> float:
        """Uncompressed / compressed size of the values written (1.0 when none)."""
        return self.bytes_raw / self.bytes_compressed if self.bytes_compressed else 1.0


class ContextStore:
    """A diskcache-backed key-value store with LRU eviction and zstd compression.

    Args:
        directory: where the store lives (default: :func:`default_store_dir`).
        size_limit_bytes: once the store is larger, least recently used entries are
            evicted (checked after every write, or batch of writes).
        compression_level: zstd level for values (1 fast … 19 small; 3 is zstd's default).

    Safe to use from several threads and processes at once. Values may be anything
    picklable; ``int``/``float`` are stored natively, ``str``/``bytes`` without pickling.
    """

    make_key = staticmethod(make_key)

    def __init__(
        self,
        directory: str | Path | None = None,
        *,
        size_limit_bytes: int = DEFAULT_SIZE_LIMIT,
        compression_level: int = 3,
    ) -> None:
        self.directory = Path(directory).expanduser() if directory else default_store_dir()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._cache = diskcache.Cache(
                str(self.directory),
                disk=ZstdDisk,
                disk_compression_level=compression_level,
                eviction_policy="least-recently-used",
                size_limit=size_limit_bytes,
                statistics=True,
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot open the context store at {self.directory}: {exc}. Pass another "
                f"directory or set {HOME_ENV_VAR} to a writable folder."
            ) from exc
        disk = self._cache.disk
        assert isinstance(disk, ZstdDisk)
        self._disk = disk
        disk.leases.recover()
        self._cull_limit = self._cache.cull_limit

    @property
    def cache(self) -> diskcache.Cache:
        """The underlying :class:`diskcache.Cache` (for advanced use)."""
        return self._cache

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default`` (counts a hit or a miss)."""
        return self._cache.get(key, default)

    def set(
        self, key: str, value: object, *, expire: float | None = None, tag: str | None = None
    ) -> None:
        """Store ``value`` under ``key`` (``expire`` in seconds; ``tag`` for eviction)."""
        self.set_many([(key, value)], expire=expire, tag=tag)

    def set_many(
        self,
        items: Iterable[tuple[str, object]],
        *,
        expire: float | None = None,
        tag: str | None = None,
    ) -> int:
        """Store several ``(key, value)`` pairs in one transaction; returns how many.

        The values and the shared size counters are written together, or nothing is (an
        exception or a crash midway leaves the previous values whole). An index build
        writes one record per file: one transaction for all of them instead of one each
        saves most of the writing time. Pass batches of a few hundred: other processes
        wait while the transaction is open.
        """
        raw_total = written_total = n = 0
        cache = self._cache
        with self._disk.batch(), cache.transact():
            # Eviction is checked once for the batch (cull() below), not after every value:
            # diskcache's per-write check is three more statements per value. Only this
            # instance's attribute changes (update=False), not the shared Settings table.
            cache.reset("cull_limit", 0, update=False)
            try:
                for key, value in items:
                    cache.set(key, value, expire=expire, tag=tag)
                    raw, written = self._disk.last_sizes
                    raw_total += raw
                    written_total += written
                    n += 1
                if written_total:
                    cache.incr(_RAW_BYTES_KEY, raw_total)
                    cache.incr(_WRITTEN_BYTES_KEY, written_total)
            finally:
                cache.reset("cull_limit", self._cull_limit, update=False)
        cache.cull()
        return n

    def get_or_compute(self, key: str, fn: Callable[[], T]) -> tuple[T, bool]:
        """``(value, True)`` if ``key`` is stored, else ``(fn(), False)`` after storing it.

        Two processes missing at the same time both compute; the later write wins, which
        is harmless for the deterministic functions this is meant for.
        """
        value = self._cache.get(key, _MISSING)
        if value is not _MISSING:
            return value, True
        value = fn()
        self.set(key, value)
        return value, False

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it was there."""
        return bool(self._cache.delete(key))

    def __contains__(self, key: object) -> bool:
        return key in self._cache

    def clear(self) -> int:
        """Remove every entry and reset the statistics; returns the entries removed."""
        reserved = sum(1 for k in _RESERVED_KEYS if k in self._cache)
        removed = self._cache.clear()
        self._cache.stats(enable=True, reset=True)
        return max(0, removed - reserved)

    def stats(self) -> StoreStats:
        """Current statistics (see :class:`StoreStats`)."""
        hits, misses = self._cache.stats(enable=True)
        present = [k for k in _RESERVED_KEYS if k in self._cache]
        entries = len(self._cache) - len(present)
        # incr(key, 0) reads a counter atomically without counting as a cache hit.
        counters = {k: self._cache.incr(k, 0) for k in present}
        return StoreStats(
            hits=hits,
            misses=misses,
            entries=entries,
            bytes_stored=self._cache.volume(),
            bytes_raw=counters.get(_RAW_BYTES_KEY, 0),
            bytes_compressed=counters.get(_WRITTEN_BYTES_KEY, 0),
        )

    def close(self) -> None:
        self._cache.close()
        self._disk.leases.release()

    def __enter__(self) -> ContextStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ContextStore({str(self.directory)!r})"
