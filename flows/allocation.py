"""Each step's slice of the workflow's token budget (the context manager's allocator), and
the contract it sets: a step granted nothing does not run, and no attempt delivers more
tokens than its grant, counted by the runtime (:func:`counted_tokens`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agentrt.flows.plan import Plan
from agentrt.flows.schemas import lookup_field

if TYPE_CHECKING:
    from agentrt.agents.manifest import AgentManifest
    from agentrt.context.budget import Grant

__all__ = ["allocate_budget", "budget_problems", "check_budget", "counted_tokens", "token_limit"]

#: The reason of a step's grant when the workflow sets no total budget.
NO_WORKFLOW_BUDGET = "no workflow budget: got its optimal tokens"


def allocate_budget(plan: Plan) -> dict[str, Grant]:
    """Each step's token grant (tokens and the reason) from the workflow's total, for the
    steps whose agents ask for context tokens; steps that ask for none are absent."""
    requests = []
    for sid, step in plan.steps.items():
        ctx = step.agent.manifest.context
        if ctx.min_tokens or ctx.optimal_tokens:
            requests.append((sid, step.agent.manifest.priority, ctx))
    total = plan.workflow.budget.total_tokens
    if not requests:
        return {}
    from agentrt.context.budget import BudgetRequest, Grant, TokenBudgetManager

    if not total:
        return {
            sid: Grant(
                name=sid,
                tokens=max(c.optimal_tokens, c.min_tokens),
                status="optimal",
                reason=NO_WORKFLOW_BUDGET,
            )
            for sid, _p, c in requests
        }
    allocation = TokenBudgetManager().allocate(
        [
            BudgetRequest(
                name=sid,
                priority=priority,
                min_tokens=c.min_tokens,
                optimal_tokens=max(c.optimal_tokens, c.min_tokens),
            )
            for sid, priority, c in requests
        ],
        total,
    )
    return dict(allocation.grants)


def token_limit(plan: Plan, grant: Grant | None) -> int | None:
    """The most tokens an attempt of the step may deliver: its grant when the workflow sets
    a total budget. Without one the grant is the agent's optimal slice, a default that the
    agent's own input may raise, and nothing is enforced (None)."""
    if grant is None or not plan.workflow.budget.total_tokens:
        return None
    return grant.tokens


def budget_problems(plan: Plan, grants: dict[str, Grant] | None = None) -> list[str]:
    """Why the workflow cannot start: one line per required step granted no tokens (with its
    agent's min/optimal tokens and the grant's reason), then what to change; [] if none."""
    grants = allocate_budget(plan) if grants is None else grants
    starved = [
        sid for sid, grant in grants.items() if grant.tokens == 0 and not plan.steps[sid].optional
    ]
    if not starved:
        return []
    total = plan.workflow.budget.total_tokens or 0
    lines = [
        f"workflow {plan.workflow.name}: its token budget of {total:,} grants nothing to "
        f"{len(starved)} required agent{'s' if len(starved) > 1 else ''}, so it cannot start:"
    ]
    for sid in starved:
        step = plan.steps[sid]
        c = step.agent.manifest.context
        lines.append(
            f"  {sid} ({step.agent.key}, priority {step.agent.manifest.priority}): min "
            f"{c.min_tokens:,}, optimal {max(c.optimal_tokens, c.min_tokens):,} tokens; "
            f"{grants[sid].reason}"
        )
    need = _enough(plan)
    raise_to = f"raise budget.total_tokens to at least {need:,}" if need else "raise it"
    lines.append(
        f"  to run: {raise_to}, mark {'these steps' if len(starved) > 1 else 'the step'} "
        "optional: true, or lower the agents' context.min_tokens"
    )
    return lines


def check_budget(plan: Plan, grants: dict[str, Grant] | None = None) -> None:
    """Raise :class:`~agentrt.context.budget.BudgetTooSmallError` (before any agent runs)
    when the workflow's budget grants a required step no tokens."""
    problems = budget_problems(plan, grants)
    if problems:
        from agentrt.context.budget import BudgetTooSmallError

        raise BudgetTooSmallError(problems)


def _enough(plan: Plan) -> int | None:
    """The smallest of (every agent's minimum summed, every optimum summed) that grants
    every required step some tokens, if either does."""
    from agentrt.context.budget import BudgetRequest, allocate

    requests = [
        BudgetRequest(
            name=sid,
            priority=s.agent.manifest.priority,
            min_tokens=s.agent.manifest.context.min_tokens,
            optimal_tokens=max(
                s.agent.manifest.context.optimal_tokens, s.agent.manifest.context.min_tokens
            ),
        )
        for sid, s in plan.steps.items()
        if s.agent.manifest.context.min_tokens or s.agent.manifest.context.optimal_tokens
    ]
    required = {sid for sid, s in plan.steps.items() if not s.optional}
    for total in sorted(
        {sum(r.min_tokens for r in requests), sum(r.optimal_tokens for r in requests)}
    ):
        grants = allocate(requests, total).grants
        if all(g.tokens > 0 for sid, g in grants.items() if sid in required):
            return total
    return None


def counted_tokens(
    manifest: AgentManifest, output: Any, prompt_parts: list[str] | None = None
) -> tuple[int, str]:
    """The tokens an attempt delivered, counted by the runtime (never the agent's own
    figure), and what was counted.

    * an LLM agent: its whole prompt (instructions, user message with the rendered inputs
      and context, output schema) as the LLM runner sent it, plus the provider's framing;
    * another agent: the output field its manifest names in ``context.delivered`` —
      strings as they are, items (e.g. :class:`~agentrt.context.items.SelectionItem`) by
      their ``text``, anything else as JSON; without ``context.delivered``, the whole output
      as JSON.
    """
    from agentrt.context.tokens import count_tokens

    if manifest.kind == "llm":
        from agentrt.agents.llm import FRAMING_TOKENS

        parts = prompt_parts or []
        return sum(count_tokens(p) for p in parts) + FRAMING_TOKENS, "its prompt"
    field = manifest.context.delivered
    if not field:
        return count_tokens(_json(output)), "its whole output"
    return _text_tokens(lookup_field(output, field), count_tokens), f"output field {field}"


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))


def _text_tokens(value: Any, count: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return count(value)
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return count(value["text"])
    if isinstance(value, list | tuple):
        return sum(_text_tokens(v, count) for v in value)
    return count(_json(value))
