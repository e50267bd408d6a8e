"""Each step's slice of the workflow's token budget (the context manager's allocator)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentrt.flows.plan import Plan

if TYPE_CHECKING:
    from agentrt.context.budget import Grant

__all__ = ["allocate_budget"]

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
