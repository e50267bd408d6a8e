"""The ``context_gathering`` agent: the context relevant to the workflow's task, in budget.

It asks the context manager (:func:`agentrt.context.select.select`) for the most useful files,
spans and skeletons of the repository for the task, inside the token slice the runtime
allocated to this agent; with no task, it delivers a repository overview. Downstream agents
(and LLM agents in particular) receive the items; the report shows what was delivered.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agentrt.agents.agent_context import AgentContext
from agentrt.context.items import SelectionItem

__all__ = ["Input", "Output", "budget_of", "render_markdown", "run"]

#: The budget when the agent has no grant at all (called outside a workflow) and its input
#: names none. A grant from a workflow is never replaced by it.
DEFAULT_BUDGET = 8_000


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo: str = Field(description="Path to the repository root.")
    task: str = Field("", description="What the workflow is about (an issue, a question).")
    budget: int | None = Field(
        None,
        gt=0,
        description=(
            "Token budget; default: the slice the runtime granted. Capped at the grant when "
            "the workflow sets a total budget."
        ),
    )
    include: list[str] | None = Field(None, description="Gitignore-style patterns to consider.")


class Output(BaseModel):
    summary: str
    task: str
    budget: int
    tokens: int
    encoding: str
    files: list[str] = Field(description="Distinct paths delivered, most relevant first.")
    items: list[SelectionItem] = Field(description="The delivered context, as selected.")


def run(inputs: Input, ctx: AgentContext | None = None) -> Output:
    from agentrt.context.select import select

    budget = budget_of(inputs.budget, ctx)
    selection = select(inputs.repo, inputs.task, budget, include=inputs.include)
    items = [SelectionItem(**item.to_json()) for item in selection.items]  # scores rounded
    files = list(dict.fromkeys(item.path for item in items))
    if ctx is not None:
        ctx.tokens_delivered = selection.tokens
    what = f"for the task ({len(inputs.task.split())} words)" if inputs.task else "overview"
    return Output(
        summary=(
            f"{len(items)} items from {len(files)} files, {selection.tokens:,} of "
            f"{budget:,} tokens ({what})"
        ),
        task=inputs.task,
        budget=budget,
        tokens=selection.tokens,
        encoding=selection.encoding,
        files=files,
        items=items,
    )


def budget_of(asked: int | None, ctx: AgentContext | None) -> int:
    """The tokens to deliver: what the input asks for, else the runtime's grant, else (no
    grant: outside a workflow) :data:`DEFAULT_BUDGET`; never above the workflow's limit."""
    grant = ctx.budget_tokens if ctx is not None else None
    budget = asked if asked is not None else grant if grant is not None else DEFAULT_BUDGET
    limit = ctx.token_limit if ctx is not None else None
    return budget if limit is None else min(budget, limit)


def render_markdown(output: Output) -> str:
    lines = [f"**{output.summary}**", "", "| item | kind | score | tokens |", "|---|---|---:|---:|"]
    for item in output.items:
        lines.append(
            f"| `{item.path}:{item.start_line}-{item.end_line}` | {item.kind} | "
            f"{item.score:.2f} | {item.tokens:,} |"
        )
    return "\n".join(lines)
