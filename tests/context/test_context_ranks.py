"""Tests for bench.context_ranks, the rank-only diagnostic of context selection."""

from __future__ import annotations

import pytest

from bench.context_ranks import bucket, parse_variant


def test_bucket_labels_worst_gold_rank() -> None:
    assert [bucket(r) for r in (0, 1, 2, 9, 10, -1)] == [
        "first",
        "second",
        "3rd-10th",
        "3rd-10th",
        "lower",
        "missing",
    ]


def test_parse_variant_checks_constant_names() -> None:
    assert parse_variant("nopr:W_FILE_PAGERANK=0,TEST_PRIOR=0.4") == (
        "nopr",
        {"W_FILE_PAGERANK": 0.0, "TEST_PRIOR": 0.4},
    )
    assert parse_variant("plain") == ("plain", {})
    with pytest.raises(ValueError, match="NO_SUCH"):
        parse_variant("x:NO_SUCH=1")
