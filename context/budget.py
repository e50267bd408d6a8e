"""Sharing a token budget between agents by priority.

Each agent asks for a :class:`BudgetRequest`: the ``min_tokens`` below which its context
is useless, the ``optimal_tokens`` it would like, and a ``priority`` (higher wins).
:meth:`TokenBudgetManager.allocate` then

1. guarantees minimums in priority order while the budget lasts: a request whose minimum
   does not fit gets nothing, and lower-priority requests whose minimums still fit get
   theirs;
2. tops the admitted requests up toward their optimum, in priority order; requests of
   equal priority that cannot all be satisfied share what is left in proportion to
   what they still need (whole tokens, largest remainders first).

Every :class:`Grant` carries a sentence explaining it, for logs and ``--explain`` output.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from agentrt.errors import AgentrtError

__all__ = [
    "BudgetAllocation",
    "BudgetExceededError",
    "BudgetRequest",
    "BudgetTooSmallError",
    "Grant",
    "GrantStatus",
    "TokenBudgetManager",
    "allocate",
]

GrantStatus = Literal["optimal", "partial", "minimum", "none"]


class BudgetExceededError(AgentrtError, ValueError):
    """An agent delivered more tokens than its grant (counted by the runtime, never retried:
    the same input delivers the same context again)."""

    retryable = False
    hint = (
        "make {agent} deliver no more than the tokens it is granted (ctx.budget_tokens), or "
        "raise the workflow's budget.total_tokens"
    )


class BudgetTooSmallError(AgentrtError):
    """The workflow's token budget grants a required agent nothing, so the run cannot start.

    ``problems``: one line per agent left without tokens, then one line on what to change.
    """

    retryable = False
    hint = "raise the workflow's budget.total_tokens, or mark the agents' steps optional"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class BudgetRequest(BaseModel):
    """What one agent asks for. ``optimal_tokens`` defaults to ``min_tokens``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    priority: int = 0
    min_tokens: int = Field(default=0, ge=0)
    optimal_tokens: int = Field(default=0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _optimal_defaults_to_min(cls, data: Any) -> Any:
        if isinstance(data, dict) and "optimal_tokens" not in data and "min_tokens" in data:
            return {**data, "optimal_tokens": data["min_tokens"]}
        return data

    @model_validator(mode="after")
    def _optimal_at_least_min(self) -> BudgetRequest:
        if self.optimal_tokens < self.min_tokens:
            raise ValueError(
                f"budget request {self.name!r}: optimal_tokens ({self.optimal_tokens:,}) "
                f"must be >= min_tokens ({self.min_tokens:,})"
            )
        return self


class Grant(BaseModel):
    """The tokens one request received, and why."""

    model_config = ConfigDict(frozen=True)

    name: str
    tokens: int
    status: GrantStatus
    reason: str


class BudgetAllocation(BaseModel):
    """The outcome of :meth:`TokenBudgetManager.allocate`; grants in request order."""

    model_config = ConfigDict(frozen=True)

    total: int
    grants: dict[str, Grant]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def allocated(self) -> int:
        return sum(g.tokens for g in self.grants.values())

    @computed_field  # type: ignore[prop-decorator]
    @property
    def remaining(self) -> int:
        return self.total - self.allocated

    def __getitem__(self, name: str) -> Grant:
        return self.grants[name]

    def explain(self) -> str:
        """One line per grant, e.g. for ``--explain`` output."""
        lines = [f"{self.allocated:,} of {self.total:,} tokens allocated"]
        lines += [f"- {g.name}: {g.reason}" for g in self.grants.values()]
        return "\n".join(lines)


class TokenBudgetManager:
    """Allocates a total token budget over prioritised requests (stateless)."""

    def allocate(self, requests: Sequence[BudgetRequest], total: int) -> BudgetAllocation:
        """Share ``total`` tokens between ``requests``; never grants more than ``total``.

        Raises:
            ValueError: ``total`` is negative or two requests share a name.
        """
        if total < 0:
            raise ValueError(f"the token budget must be >= 0, got {total:,}")
        seen: set[str] = set()
        for r in requests:
            if r.name in seen:
                raise ValueError(f"duplicate budget request name {r.name!r}; names must be unique")
            seen.add(r.name)

        # Priority order, highest first; equal priorities keep request order (stable).
        order = sorted(range(len(requests)), key=lambda i: -requests[i].priority)
        tokens = [0] * len(requests)
        admitted = [False] * len(requests)
        left_at_refusal: dict[int, int] = {}

        remaining = total
        for i in order:
            need = requests[i].min_tokens
            if need <= remaining:
                admitted[i] = True
                tokens[i] = need
                remaining -= need
            else:
                left_at_refusal[i] = remaining

        # Top up toward optimal, one priority level at a time.
        shortfall_priority: int | None = None
        for priority, level in groupby(
            (i for i in order if admitted[i]), key=lambda i: requests[i].priority
        ):
            members = list(level)
            needs = {i: requests[i].optimal_tokens - tokens[i] for i in members}
            wanted = sum(needs.values())
            if wanted <= remaining:
                for i in members:
                    tokens[i] += needs[i]
                remaining -= wanted
                continue
            for i, extra in _proportional_shares(remaining, needs).items():
                tokens[i] += extra
            remaining = 0
            shortfall_priority = priority
            break

        explainer = _Explainer(requests, order, tokens, admitted, total)
        grants = {
            r.name: Grant(
                name=r.name,
                tokens=tokens[i],
                status=_status(r, tokens[i]),
                reason=explainer.reason(i, left_at_refusal.get(i), shortfall_priority),
            )
            for i, r in enumerate(requests)
        }
        return BudgetAllocation(total=total, grants=grants)


def allocate(requests: Sequence[BudgetRequest], total: int) -> BudgetAllocation:
    """Shortcut for ``TokenBudgetManager().allocate(requests, total)``."""
    return TokenBudgetManager().allocate(requests, total)


def _proportional_shares(amount: int, needs: dict[int, int]) -> dict[int, int]:
    """Split ``amount`` (< sum of needs) in proportion to ``needs``, in whole tokens.

    Largest-remainder method: floors first, then one more token to the largest
    fractional parts (earlier requests first on ties). No share exceeds its need.
    """
    wanted = sum(needs.values())
    shares = {i: amount * need // wanted for i, need in needs.items()}
    leftover = amount - sum(shares.values())
    by_remainder = sorted(needs, key=lambda i: (-(amount * needs[i] % wanted), i))
    for i in by_remainder[:leftover]:
        shares[i] += 1
    return shares


def _status(r: BudgetRequest, tokens: int) -> GrantStatus:
    if tokens == r.optimal_tokens:
        return "optimal"
    if tokens == 0:
        return "none"
    if tokens == r.min_tokens:
        return "minimum"
    return "partial"


class _Explainer:
    """Builds the human sentence for each grant."""

    def __init__(
        self,
        requests: Sequence[BudgetRequest],
        order: list[int],
        tokens: list[int],
        admitted: list[bool],
        total: int,
    ) -> None:
        self.requests = requests
        self.order = order
        self.tokens = tokens
        self.admitted = admitted
        self.total = total

    def reason(self, i: int, left_at_refusal: int | None, shortfall_priority: int | None) -> str:
        r, got = self.requests[i], self.tokens[i]
        if left_at_refusal is not None:
            before = [j for j in self.order[: self.order.index(i)] if self.tokens[j]]
            where = (
                f"the {left_at_refusal:,} left after {self._who(before, r.priority)}"
                if before
                else f"the total budget of {self.total:,}"
            )
            return f"got nothing: its minimum {r.min_tokens:,} tokens did not fit in {where}"
        if got == r.optimal_tokens:
            return f"got its optimal {got:,} tokens" if got else "asked for no tokens and got none"
        why = self._why_short(i, shortfall_priority)
        if got == 0:
            return f"got nothing of its optimal {r.optimal_tokens:,} tokens: {why}"
        if got == r.min_tokens:
            return f"got only its minimum {got:,} tokens (optimal {r.optimal_tokens:,}): {why}"
        return f"got {got:,} of its optimal {r.optimal_tokens:,} tokens: {why}"

    def _why_short(self, i: int, shortfall_priority: int | None) -> str:
        priority = self.requests[i].priority
        higher = [j for j in self.order if self.requests[j].priority > priority and self.tokens[j]]
        if shortfall_priority is not None and priority == shortfall_priority:
            peers = [
                j
                for j in self.order
                if j != i and self.requests[j].priority == priority and self.tokens[j]
            ]
            if peers:
                shared = f"shared with equal-priority {_agents(self._names(peers))}"
                if higher:
                    return f"the budget ran out after {self._who(higher, priority)}, {shared}"
                return f"the budget ran out and was {shared}"
        if higher:
            return f"the budget ran out after {self._who(higher, priority)}"
        lower = [
            j
            for j in self.order
            if self.requests[j].priority < priority
            and self.requests[j].min_tokens
            and self.tokens[j]
        ]
        if lower:
            return (
                f"the budget of {self.total:,} ran out after reserving the minimums of "
                f"lower-priority {_agents(self._names(lower))}"
            )
        return f"the budget of {self.total:,} ran out"

    def _who(self, indices: list[int], priority: int) -> str:
        higher = [j for j in indices if self.requests[j].priority > priority]
        equal = [j for j in indices if self.requests[j].priority == priority]
        parts = []
        if higher:
            parts.append(f"higher-priority {_agents(self._names(higher))}")
        if equal:
            parts.append(f"equal-priority {_agents(self._names(equal))} listed earlier")
        return " and ".join(parts)

    def _names(self, indices: list[int]) -> list[str]:
        return [self.requests[j].name for j in indices]


def _agents(names: list[str]) -> str:
    return ("agent " if len(names) == 1 else "agents ") + ", ".join(names)
