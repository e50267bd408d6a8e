"""Tests for agentrt.context.relevance: tokenisation, passage ranking, repository ranking."""

from __future__ import annotations

import pytest

from agentrt.context.relevance import rank_passages, split_identifier, tokenize


def test_split_identifier_keeps_whole_and_parts() -> None:
    assert split_identifier("getUserName") == ("getusername", "get", "user", "name")
    expected = ("parse_httpresponse", "parse", "http", "response")
    assert split_identifier("parse_HTTPResponse") == expected
    assert split_identifier("_private") == ("private",)
    assert split_identifier("__") == ()


def test_batched_splitting_matches_split_identifier() -> None:
    """The index's batched splitting of new identifiers gives split_identifier's terms."""
    from agentrt.context.relevance import _IDENT, _split_many

    text = (
        "getUserName parse_HTTPResponse _private __ _ a A x1_y2Z HTTPServerError2 get_get "
        "the The THE_ _self_ ABCDef abc_DEF_ghi9 a__b IO isAll x_1 __init__ snake_case_id "
        "kMaxValue2D utf8ToUTF16 X Y_ _9 ab_c the_the ifElse"
    )
    identifiers = _IDENT.findall(text)
    assert _split_many(identifiers) == [split_identifier(i) for i in identifiers]
    assert _split_many(identifiers[:1]) == [split_identifier(identifiers[0])]
    assert _split_many([]) == []


def test_tokenize_drops_stopwords() -> None:
    assert tokenize("the user_id is None") == ["user_id", "user", "id"]


def test_rank_passages_orders_and_normalises() -> None:
    passages = [
        "def unrelated(): return 1",
        "def get_user_name(user): return user.name",
        "class UserNameCache: pass",
    ]
    scores = rank_passages("user name lookup fails", passages)
    assert len(scores) == 3
    assert max(scores) == 1.0
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores[0] == 0.0
    assert scores[1] > 0 and scores[2] > 0


def test_rank_passages_edge_cases() -> None:
    assert rank_passages("anything", []) == []
    assert rank_passages("", ["a b c", "d"]) == [0.0, 0.0]
    assert rank_passages("zzz", ["alpha", "beta"]) == [0.0, 0.0]
    assert rank_passages("alpha", ["alpha"]) == [1.0]


def test_rank_passages_many() -> None:
    passages = [f"passage number {i} about topic_{i % 97}" for i in range(20_000)]
    scores = rank_passages("topic_5", passages)
    assert len(scores) == 20_000
    best = max(range(len(scores)), key=scores.__getitem__)
    assert best % 97 == 5


def test_bm25_weighs_query_terms_by_repetition() -> None:
    from agentrt.context.relevance import Bm25, text_ids

    docs = ["rolling window center", "groupby reduce apply", "nothing relevant here"]
    index = Bm25.from_id_lists([text_ids(d) for d in docs])
    query = text_ids("rolling rolling rolling rolling groupby")
    flat = index.scores(query)
    weighted = index.scores(query, tf_power=0.5)
    # Unweighted, each distinct term counts once; weighted, the repeated one counts double.
    assert flat[0] == pytest.approx(flat[1], rel=1e-5)
    assert weighted[0] == pytest.approx(2 * weighted[1], rel=1e-5)
    assert weighted[2] == 0


def test_file_record_pickles_to_equal_arrays() -> None:
    """Records travel from index workers and the store pickled: every array comes back."""
    import pickle

    import numpy as np

    from agentrt.context.relevance import analyze_file

    for path, text in [
        ("pkg/mod.py", "import os\n\nclass UserName:\n    def get_it(self):\n        return os\n"),
        ("src/a.cc", "#include <vector>\nnamespace ns {\nint fooBar(int x) { return x; }\n}\n"),
        ("empty.txt", ""),
    ]:
        record = analyze_file(path, text)
        copy = pickle.loads(pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL))
        assert copy.structure == record.structure
        assert copy.file_len == record.file_len
        for name in record.__slots__:  # type: ignore[attr-defined]
            value = getattr(record, name)
            if isinstance(value, np.ndarray):
                assert getattr(copy, name).dtype == value.dtype, name
                assert np.array_equal(getattr(copy, name), value), name
