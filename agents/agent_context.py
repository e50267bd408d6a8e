"""What a running agent receives: its :class:`AgentContext`, and the :class:`TokenUsage` it
reports through it.

``TokenUsage`` is the one definition of the token figures of an attempt: the runtime's
attempt record (:class:`~agentrt.flows.results.AttemptRecord`) and the metrics record
(:class:`~agentrt.flows.metrics.AgentRunRecord`) derive from it, so the figures are flat
fields (and flat Parquet columns) everywhere.

This module imports neither Prefect nor the runtime (``agentrt.flows``): agents type their
``ctx`` with it at no cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, Field

__all__ = ["AgentContext", "TokenUsage"]


class TokenUsage(BaseModel):
    """The tokens one agent attempt used, as far as it (or its LLM provider) reported them,
    the model it called and what that cost."""

    tokens_delivered: int | None = Field(None, description="Context tokens delivered.")
    tokens_referenced: int | None = Field(
        None, description="Delivered tokens whose source the run's outputs cite (docs/metrics.md)."
    )
    prompt_tokens: int | None = Field(
        None,
        description="An LLM agent's whole prompt as sent (instructions, user message, output "
        "schema, framing), counted by the runtime as it counts the prompt against the grant.",
    )
    llm_input_tokens: int | None = Field(None, description="As reported by the LLM provider.")
    llm_output_tokens: int | None = Field(None, description="As reported by the LLM provider.")
    llm_model: str | None = Field(
        None,
        description="The model an LLM agent called (provider:model), as the LLM runner sets it.",
    )
    cost_usd: float | None = Field(
        None,
        description="What the LLM tokens cost in US dollars, from the model's price "
        "(agentrt.agents.prices; set by the runtime); null when the price is not known.",
    )


def _usage_field(name: str) -> property:
    """``ctx.<name>`` reads and writes ``ctx.usage.<name>``."""

    def get(self: AgentContext) -> int | float | str | None:
        return getattr(self.usage, name)

    def set_(self: AgentContext, value: int | float | str | None) -> None:
        setattr(self.usage, name, value)

    return property(get, set_, doc=TokenUsage.model_fields[name].description)


@dataclass
class AgentContext:
    """What a running agent may know about its run. Agents that take a ``ctx`` get one.

    An agent reports the tokens it used by setting ``ctx.tokens_delivered``,
    ``ctx.tokens_referenced``, ``ctx.llm_input_tokens`` and ``ctx.llm_output_tokens``
    (all held in ``ctx.usage``), and the model it called as ``ctx.llm_model``; the runtime
    puts them in the attempt's record, with their cost (``cost_usd``) when the model's
    price is known (:mod:`agentrt.agents.prices`).

    ``budget_tokens`` is the step's token grant (None: the agent asks for no context tokens,
    or runs outside a workflow). ``token_limit`` is the grant when the workflow sets a total
    budget: the runtime counts what the agent delivers and fails the attempt
    (:class:`~agentrt.context.budget.BudgetExceededError`) above it. Without a workflow
    budget the grant is the agent's optimal slice, a default its own input may raise.
    """

    agent_id: str
    version: str
    step: str
    workflow: str
    params: dict[str, Any]
    budget_tokens: int | None
    attempt: int
    flow_run_id: str | None = None
    token_limit: int | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)
    #: What an LLM agent sent its model (instructions, user message, output schema), set by
    #: the LLM runner: the runtime counts it against ``token_limit``.
    prompt_parts: list[str] | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    #: The validated outputs of the steps this one depends on (its ``after``, its agent's
    #: ``requires`` and the steps its inputs read), by step id; read-only. Each is an
    #: instance of the producing agent's pydantic output model, or the JSON data when its
    #: output schema is inline JSON Schema. Steps skipped or failed are absent; empty
    #: outside a workflow.
    upstream: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    _referenced: set[tuple[Any, ...]] = field(default_factory=set, repr=False, compare=False)

    tokens_delivered = _usage_field("tokens_delivered")
    tokens_referenced = _usage_field("tokens_referenced")
    prompt_tokens = _usage_field("prompt_tokens")
    llm_input_tokens = _usage_field("llm_input_tokens")
    llm_output_tokens = _usage_field("llm_output_tokens")
    llm_model = _usage_field("llm_model")
    cost_usd = _usage_field("cost_usd")

    def mark_referenced(self, used: int | Iterable[Any]) -> int:
        """Report delivered context this agent used; returns ``ctx.tokens_referenced``.

        ``used`` is a token count, or context items (dicts or objects with ``tokens``, such
        as :class:`~agentrt.context.items.SelectionItem`): their tokens are added, each item
        (by path and line range) once per attempt however often it is marked. A
        deterministic agent marks the items it read; an LLM agent's referenced tokens are
        counted by the runtime from its answer (:mod:`agentrt.agents.citations`).
        """
        from agentrt.agents.citations import item_tokens

        if isinstance(used, int):
            added = max(used, 0)
        else:
            added = 0
            for item in used:
                get = item.get if isinstance(item, dict) else lambda k, i=item: getattr(i, k, None)
                key = (get("path"), get("start_line"), get("end_line"), get("kind"))
                if key[0] is not None and key in self._referenced:
                    continue
                if key[0] is not None:
                    self._referenced.add(key)
                added += item_tokens(item)
        self.tokens_referenced = (self.tokens_referenced or 0) + added
        return self.tokens_referenced

    @property
    def logger(self) -> Any:
        try:
            from prefect.logging import get_run_logger

            return get_run_logger()
        except Exception:
            import logging

            return logging.getLogger(f"agentrt.{self.agent_id}")
