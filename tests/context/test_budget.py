from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agentrt.context.budget import BudgetAllocation, BudgetRequest, TokenBudgetManager, allocate


def req(name: str, priority: int = 0, min_tokens: int = 0, optimal: int = 0) -> BudgetRequest:
    return BudgetRequest(
        name=name, priority=priority, min_tokens=min_tokens, optimal_tokens=optimal
    )


def tokens(allocation: BudgetAllocation) -> dict[str, int]:
    return {name: g.tokens for name, g in allocation.grants.items()}


def test_everyone_gets_optimal_when_budget_suffices() -> None:
    a = TokenBudgetManager().allocate(
        [req("a", 1, 1000, 8000), req("b", 0, 0, 2000), req("idle")], 20_000
    )
    assert tokens(a) == {"a": 8000, "b": 2000, "idle": 0}
    assert [g.status for g in a.grants.values()] == ["optimal", "optimal", "optimal"]
    assert a["a"].reason == "got its optimal 8,000 tokens"
    assert a["idle"].reason == "asked for no tokens and got none"
    assert (a.total, a.allocated, a.remaining) == (20_000, 10_000, 10_000)


def test_minimums_first_then_optimal_by_priority() -> None:
    requests = [
        req("low", 0, 2000, 9000),
        req("high", 2, 3000, 8000),
        req("mid", 1, 1000, 5000),
    ]
    a = allocate(requests, 10_000)
    # mins: 3000 + 1000 + 2000 = 6000; the 4000 left go to high (needs 5000) first.
    assert tokens(a) == {"low": 2000, "high": 7000, "mid": 1000}
    assert list(a.grants) == ["low", "high", "mid"]  # request order
    assert a["high"].status == "partial"
    assert a["high"].reason == (
        "got 7,000 of its optimal 8,000 tokens: the budget of 10,000 ran out after reserving "
        "the minimums of lower-priority agents mid, low"
    )
    assert a["mid"].status == "minimum"
    assert a["mid"].reason == (
        "got only its minimum 1,000 tokens (optimal 5,000): "
        "the budget ran out after higher-priority agent high"
    )
    assert a.remaining == 0


def test_partial_reason_names_higher_priority_agents() -> None:
    a = allocate([req("a", 2, 0, 4000), req("b", 1, 0, 8000), req("c", 0, 0, 100)], 7000)
    assert tokens(a) == {"a": 4000, "b": 3000, "c": 0}
    assert a["b"].reason == (
        "got 3,000 of its optimal 8,000 tokens: the budget ran out after higher-priority agent a"
    )
    assert a["c"].status == "none"
    assert a["c"].reason == (
        "got nothing of its optimal 100 tokens: the budget ran out after higher-priority "
        "agents a, b"
    )


def test_minimum_that_does_not_fit_gets_nothing_but_lower_ones_still_do() -> None:
    requests = [
        req("a", 3, 6000, 6000),
        req("b", 2, 2000, 4000),
        req("big", 1, 5000, 9000),
        req("small", 0, 1000, 1000),
    ]
    a = allocate(requests, 10_000)
    assert tokens(a) == {"a": 6000, "b": 3000, "big": 0, "small": 1000}
    assert a["big"].status == "none"
    assert a["big"].reason == (
        "got nothing: its minimum 5,000 tokens did not fit in the 2,000 left after "
        "higher-priority agents a, b"
    )
    assert a["small"].status == "optimal"


def test_minimum_larger_than_total() -> None:
    a = allocate([req("huge", 0, 5000, 5000)], 1000)
    assert a["huge"].tokens == 0
    assert a["huge"].reason == (
        "got nothing: its minimum 5,000 tokens did not fit in the total budget of 1,000"
    )


def test_equal_priorities_share_proportionally_to_remaining_need() -> None:
    requests = [req("a", 1, 1000, 4000), req("b", 1, 0, 6000), req("c", 0, 0, 500)]
    a = allocate(requests, 5000)
    # After a's minimum, 4000 are left; needs are a: 3000, b: 6000 -> 1/3 and 2/3.
    assert tokens(a) == {"a": 1000 + 1333, "b": 2667, "c": 0}
    assert a.allocated == 5000
    assert a["b"].reason == (
        "got 2,667 of its optimal 6,000 tokens: the budget ran out and was shared with "
        "equal-priority agent a"
    )


def test_equal_priority_minimums_go_in_request_order() -> None:
    a = allocate([req("first", 0, 600, 600), req("second", 0, 600, 600)], 1000)
    assert tokens(a) == {"first": 600, "second": 0}
    assert a["second"].reason == (
        "got nothing: its minimum 600 tokens did not fit in the 400 left after "
        "equal-priority agent first listed earlier"
    )


def test_zero_budget() -> None:
    a = allocate([req("a", 0, 0, 100), req("b", 0, 10, 100), req("c")], 0)
    assert tokens(a) == {"a": 0, "b": 0, "c": 0}
    assert [g.status for g in a.grants.values()] == ["none", "none", "optimal"]


def test_validation() -> None:
    with pytest.raises(ValidationError, match=r"optimal_tokens \(10\) must be >= min_tokens"):
        BudgetRequest(name="x", min_tokens=20, optimal_tokens=10)
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        BudgetRequest(name="x", min_tokens=-1)
    with pytest.raises(ValidationError):
        BudgetRequest(name="")
    assert BudgetRequest(name="x", min_tokens=300).optimal_tokens == 300
    with pytest.raises(ValueError, match="duplicate budget request name 'a'"):
        allocate([req("a"), req("a")], 10)
    with pytest.raises(ValueError, match="budget must be >= 0"):
        allocate([], -1)
    assert allocate([], 100).remaining == 100


def test_allocation_serialises_and_explains() -> None:
    a = allocate([req("a", 0, 0, 10)], 5)
    dumped = a.model_dump()
    assert dumped["allocated"] == 5 and dumped["remaining"] == 0
    assert a.explain().splitlines()[0] == "5 of 5 tokens allocated"


# ---- properties ---------------------------------------------------------------------

request_lists = st.lists(
    st.tuples(
        st.integers(min_value=-3, max_value=3),
        st.integers(min_value=0, max_value=5000),
        st.integers(min_value=0, max_value=5000),
    ),
    max_size=8,
).map(
    lambda rows: [
        req(f"r{i}", priority, min(a, b), max(a, b)) for i, (priority, a, b) in enumerate(rows)
    ]
)


@settings(max_examples=400, deadline=None)
@given(request_lists, st.integers(min_value=0, max_value=20_000))
def test_allocation_properties(requests: list[BudgetRequest], total: int) -> None:
    a = allocate(requests, total)
    got = tokens(a)
    assert sum(got.values()) == a.allocated <= total
    assert a.remaining >= 0

    def admitted(r: BudgetRequest) -> bool:
        return got[r.name] >= r.min_tokens and (got[r.name] > 0 or r.min_tokens == 0)

    for r in requests:
        g = a[r.name]
        assert got[r.name] <= r.optimal_tokens
        assert got[r.name] >= r.min_tokens or got[r.name] == 0
        assert g.status in {"optimal", "partial", "minimum", "none"} and g.reason
        if not admitted(r):
            # Refused only if its minimum really did not fit after those before it.
            before = [
                o
                for o in requests
                if (o.priority > r.priority)
                or (o.priority == r.priority and requests.index(o) < requests.index(r))
            ]
            reserved = sum(o.min_tokens for o in before if admitted(o))
            assert r.min_tokens > total - reserved

    short = [r for r in requests if admitted(r) and got[r.name] < r.optimal_tokens]
    if short:
        assert a.remaining == 0  # nothing is held back while someone is short
    for hi in short:
        for lo in requests:
            if lo.priority < hi.priority:
                assert got[lo.name] <= lo.min_tokens
