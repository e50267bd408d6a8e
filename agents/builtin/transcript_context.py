"""The ``transcript_context`` agent: a subagent's budgeted context from a Claude Code session.

The same condensing as the ``agentrt hook`` PreToolUse hook, run offline on a transcript file
as a workflow step (``agentrt run transcript-context -p transcript=… -p task=…``), so its
token use and efficiency land in the metrics like any agent's.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from agentrt.agents.agent_context import AgentContext

__all__ = ["Input", "Output", "render_markdown", "run"]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transcript: str = Field(description="Path to the session's JSONL transcript.")
    task: str = Field("", description="The subagent's task (prompt); empty: the session's gist.")
    subagent_type: str = "general-purpose"
    total_tokens: int = Field(
        18_000, ge=200, description="Capped at the grant when the workflow sets a total budget."
    )
    chunk_tokens: int = Field(18_000, ge=100)
    output: str | None = Field(None, description="Folder for the chunk files (none: not written).")


class Output(BaseModel):
    summary: str
    transcript: str
    chunks: int
    tokens: int
    chunk_tokens: list[int]
    prompts_total: int
    prompts_verbatim: int
    edited_files: list[str]
    kept: dict[str, int]
    omitted: dict[str, int]
    files: list[str] = Field(description="Chunk files written, if an output folder was given.")
    text: list[str] = Field(
        default_factory=list, description="The chunks: the delivered context (context.delivered)."
    )


def run(inputs: Input, ctx: AgentContext | None = None) -> Output:
    from agentrt.claude.condense import Budget, SubagentTask, condense
    from agentrt.claude.transcripts import parse_transcript

    path = Path(inputs.transcript)
    if not path.is_file():
        raise FileNotFoundError(f"transcript {inputs.transcript!r} not found")
    transcript = parse_transcript(path)
    task = SubagentTask(prompt=inputs.task, subagent_type=inputs.subagent_type)
    limit = ctx.token_limit if ctx is not None else None
    total = inputs.total_tokens if limit is None else min(inputs.total_tokens, limit)
    budget = Budget(total_tokens=total, chunk_tokens=inputs.chunk_tokens)
    condensed = condense(transcript, task, budget, upto_line=transcript.n_lines)
    written: list[str] = []
    if inputs.output:
        folder = Path(inputs.output)
        folder.mkdir(parents=True, exist_ok=True)
        for i, chunk in enumerate(condensed.chunks, start=1):
            target = folder / f"current_transcript_{i:03d}.txt"
            target.write_text(chunk)
            written.append(str(target))
    if ctx is not None:
        ctx.tokens_delivered = condensed.total_tokens
    return Output(
        summary=(
            f"{condensed.total_tokens:,} tokens in {len(condensed.chunks)} chunk(s); "
            f"{condensed.prompts_verbatim}/{condensed.prompts_total} prompts verbatim, "
            f"{len(condensed.edited_files)} edited files"
        ),
        transcript=str(path),
        chunks=len(condensed.chunks),
        tokens=condensed.total_tokens,
        chunk_tokens=list(condensed.chunk_tokens),
        prompts_total=condensed.prompts_total,
        prompts_verbatim=condensed.prompts_verbatim,
        edited_files=list(condensed.edited_files),
        kept=dict(condensed.kept),
        omitted=dict(condensed.omitted),
        files=written,
        text=list(condensed.chunks),
    )


def render_markdown(output: Output) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in sorted(output.omitted.items()))
    edited = ", ".join(f"`{f}`" for f in output.edited_files[:50]) or "none"
    return (
        f"**{output.summary}**\n\nTranscript: `{output.transcript}`\n\nEdited files: {edited}\n\n"
        f"| omitted | count |\n|---|---:|\n{rows}"
    )
