"""What a workflow run produces: per-step results, error reports, attempt records."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from agentrt.agents.agent_context import TokenUsage

__all__ = ["AttemptRecord", "ErrorReport", "RunEvents", "RunResult", "StepResult", "StepState"]

StepState = Literal["pending", "running", "completed", "cached", "fallback", "failed", "skipped"]


class ErrorReport(BaseModel):
    """A structured account of a failure: which agent, which phase, why, and what to do."""

    step: str
    agent: str
    phase: str
    error_type: str
    message: str
    attempts: int
    suggestion: str
    fallbacks_tried: list[str] = Field(default_factory=list)
    cause: Literal["agent", "infrastructure"] = Field(
        "agent",
        description="Whose failure it was: the agent's, or the infrastructure's (the Prefect "
        "server, result storage, the worker process), which no change to the agent fixes.",
    )

    def render(self) -> str:
        tried = (
            f"; fallbacks tried: {', '.join(self.fallbacks_tried)}" if self.fallbacks_tried else ""
        )
        if self.cause == "infrastructure":
            return (
                f"step {self.step} ({self.agent}) stopped by an infrastructure failure, not by "
                f"the agent: {self.error_type}: {self.message}{tried}\n  → {self.suggestion}"
            )
        return (
            f"{self.agent} failed in {self.phase} after {self.attempts} attempt(s): "
            f"{self.error_type}: {self.message}{tried}\n  → {self.suggestion}"
        )


class AttemptRecord(TokenUsage):
    """One execution attempt of one agent, written in its cleanup phase whatever happened.

    The token figures the agent reported are the :class:`~agentrt.agents.agent_context.TokenUsage`
    fields it derives (flat fields, as in the spool files and the metrics columns).
    """

    workflow: str
    flow_run_id: str | None
    task_run_id: str | None
    step: str
    agent_id: str
    agent_version: str
    attempt: int = Field(description="Prefect's run count of the task run (1 = first try).")
    state: Literal["completed", "failed"]
    error_type: str | None = None
    error_message: str | None = None
    phase: str | None = None
    phases: dict[str, float] = Field(default_factory=dict)
    started_at: datetime
    ended_at: datetime
    wall_seconds: float
    cpu_seconds: float
    peak_memory_mb: float | None = Field(
        None,
        description="The attempt's peak memory: the most its process's RSS rose above its "
        "value when the attempt started (sampled every 10 ms; on the thread runner it "
        "includes agents running beside it).",
    )
    tokens_allocated: int | None = Field(None, description="The budget slice granted.")
    budget_reason: str | None = None
    fallback_for: str | None = Field(None, description="The agent (id@version) it stood in for.")
    chunk: str | None = Field(
        None, description="``i/N``: the attempt ran chunk i of N of a chunked step (chunking)."
    )


class StepResult(BaseModel):
    step: str
    agent: str
    state: StepState
    output: Any = None
    attempts: int = 0
    duration_seconds: float = 0.0
    phases: dict[str, float] = Field(default_factory=dict)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    used_agent: str | None = Field(None, description="The fallback that produced the output.")
    reason: str | None = None
    error: ErrorReport | None = None
    tokens_allocated: int | None = None
    tokens_delivered: int | None = None
    budget_reason: str | None = None
    task_run_ids: list[str] = Field(default_factory=list)
    chunks: int | None = Field(None, description="Chunks the step's work ran in (chunking).")
    from_cache: bool = Field(
        False,
        description="The output was served from Prefect's result cache (the step's own "
        "agent's, or its fallback's).",
    )
    not_run: list[str] = Field(
        default_factory=list,
        description="LLM agents (id@version) of the step not run because no model is "
        "configured (agentrt.agents.llm.model_not_configured): the step went straight to "
        "their fallback, without an attempt.",
    )
    fallback_cause: Literal["failure", "no_model"] | None = Field(
        None,
        description="Why a fallback produced the output: an agent before it failed, or only "
        "that no model is configured (not_run); None when the step's own agent did.",
    )

    @property
    def no_model(self) -> bool:
        """The output came from a fallback only because no model is configured."""
        return self.state == "fallback" and self.fallback_cause == "no_model"

    @property
    def note(self) -> str:
        """The step's reason as tables show it: the no-model sentence is said once per run
        (:attr:`RunResult.no_model_line`), so its steps say only ``no model configured``."""
        return "no model configured" if self.no_model else self.reason or ""


class RunResult(BaseModel):
    workflow: str
    flow_run_id: str | None
    state: Literal["completed", "failed"]
    params: dict[str, Any]
    steps: dict[str, StepResult]
    levels: list[list[str]]
    started_at: datetime
    ended_at: datetime
    duration_seconds: float
    errors: list[ErrorReport] = Field(default_factory=list)
    report_paths: dict[str, str] = Field(default_factory=dict)
    interrupted: str | None = Field(
        None,
        description="Why the run stopped early through no agent's fault, in one line (the "
        "Prefect server stopped answering: where, what was kept, how to resume).",
    )

    @property
    def outputs(self) -> dict[str, Any]:
        return {sid: s.output for sid, s in self.steps.items() if s.output is not None}

    @property
    def fallbacks(self) -> int:
        """Steps whose output came from a fallback agent because their own agent failed
        (not those whose LLM agent was not run for want of a model: :attr:`no_model_line`)."""
        return sum(1 for s in self.steps.values() if s.state == "fallback" and not s.no_model)

    @property
    def not_run(self) -> list[str]:
        """LLM agents (id@version) not run because no model is configured, in step order."""
        return list(dict.fromkeys(a for s in self.steps.values() for a in s.not_run))

    @property
    def no_model_line(self) -> str | None:
        """``no model configured: llm_review was not run (set AGENTRT_MODEL and a key)``
        when a step's LLM agent was not run for want of a model, else None; the report and
        ``agentrt run`` say it once."""
        if not self.not_run:
            return None
        from agentrt.agents.llm import no_model_message

        return no_model_message(self.not_run)

    @property
    def outcome(self) -> str:
        """The state as summaries say it: ``completed with 2 fallbacks`` when steps got their
        output only through a fallback because their agent failed (``agentrt run --strict``
        fails such a run); a fallback for want of a model is not counted."""
        n = self.fallbacks
        if self.state == "completed" and n:
            return f"completed with {n} fallback{'s' if n != 1 else ''}"
        return self.state

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for step in self.steps.values():
            out[step.state] = out.get(step.state, 0) + 1
        return out

    def redacted_json(self) -> bytes:
        """The whole result as indented JSON, secrets redacted (report.json, runs/*.json).

        orjson, not the stdlib: with ``indent`` set, ``json.dumps`` encodes in pure Python
        (~25 ms for 200 agents, on every run's critical path).
        """
        import orjson

        from agentrt.agents.redact import redact_data

        data = redact_data(self.model_dump(mode="json"))
        return orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)


@dataclass
class RunEvents:
    """Callbacks for progress displays; called from the flow's event loop."""

    on_step: Callable[[str, str, StepResult | None], None] | None = None

    def emit(self, step: str, state: str, result: StepResult | None = None) -> None:
        if self.on_step:
            self.on_step(step, state, result)
