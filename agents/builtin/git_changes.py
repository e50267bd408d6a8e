"""The ``git_changes`` agent: which files changed since a git revision.

Review pipelines take its ``files`` to limit analysis to what changed (``--param since=REV``);
with no revision, ``files`` is None and the analysers cover the whole repository.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agentrt.agents.builtin.common import changed_files, resolve_repo

__all__ = ["Input", "Output", "render_markdown", "run"]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo: str
    since: str = Field("", description="Git revision; empty means the whole repository.")


class Output(BaseModel):
    summary: str
    since: str
    files: list[str] | None = Field(description="Changed files, or None for all of them.")


def run(inputs: Input) -> Output:
    if not inputs.since:
        return Output(summary="whole repository", since="", files=None)
    files = changed_files(resolve_repo(inputs.repo), inputs.since)
    return Output(
        summary=f"{len(files)} file{'s' if len(files) != 1 else ''} changed since {inputs.since}",
        since=inputs.since,
        files=files,
    )


def render_markdown(output: Output) -> str:
    if output.files is None:
        return "Reviewing the whole repository."
    listed = "\n".join(f"- `{f}`" for f in output.files[:200])
    more = f"\n- … and {len(output.files) - 200} more" if len(output.files) > 200 else ""
    return f"**{output.summary}**\n\n{listed}{more}"
