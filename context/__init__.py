"""The context manager: the most useful code of a repository inside a hard token budget.

Public API::

    from agentrt.context import select
    selection = select("path/to/repo", "where are retries configured?", budget=4000)
    print(selection.to_markdown())

    # The context of a change: its hunks, then callers, tests, importers and callees.
    from agentrt.context import select_impact
    impact = select_impact("path/to/repo", 4000, since="HEAD~1")

    # The context of an issue: ranked files and units, their callers, tests and importers.
    from agentrt.context import select_issue
    context = select_issue("path/to/repo", "KeyError in rate() for an unknown region", 8000)

Token counting (``count_tokens``, ``TokenCounter``), budgets shared by priority
(``TokenBudgetManager``, ``BudgetRequest``, ``Grant``) and the compressed store
(``ContextStore``) are the building blocks. Names are loaded on first use, so importing this
package is cheap.
"""

from __future__ import annotations

from agentrt.lazy import lazy_exports

_EXPORTS = {
    "BudgetExceededError": "agentrt.context.budget",
    "BudgetTooSmallError": "agentrt.context.budget",
    "BudgetRequest": "agentrt.context.budget",
    "Grant": "agentrt.context.budget",
    "TokenBudgetManager": "agentrt.context.budget",
    "ContextStore": "agentrt.context.store",
    "StoreError": "agentrt.context.store",
    "CoChanges": "agentrt.context.history",
    "read_history": "agentrt.context.history",
    "ChangeError": "agentrt.context.impact",
    "FileChange": "agentrt.context.impact",
    "ImpactItem": "agentrt.context.impact",
    "ImpactSelection": "agentrt.context.impact",
    "select_impact": "agentrt.context.impact",
    "IssueCandidates": "agentrt.context.issue",
    "IssuePicks": "agentrt.context.issue",
    "IssueSelection": "agentrt.context.issue",
    "issue_candidates": "agentrt.context.issue",
    "select_issue": "agentrt.context.issue",
    "Selection": "agentrt.context.select",
    "SelectionItem": "agentrt.context.select",
    "select": "agentrt.context.select",
    "select_texts": "agentrt.context.select",
    "SourceError": "agentrt.context.sources",
    "TokenCounter": "agentrt.context.tokens",
    "count_tokens": "agentrt.context.tokens",
    "truncate_to_tokens": "agentrt.context.tokens",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
