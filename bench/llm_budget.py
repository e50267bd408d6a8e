"""LLM prompts within their grants: 500 prompts of 3 LLM agents, audited by recount.

    python -m bench.llm_budget [--prompts 500] [--repo .] [--groups 4] [--no-write]

Three ``kind: llm`` agents run through agentrt's own LLM path (``agentrt.agents.llm``:
prompt fitting, shrink ladder, context selection, pydantic-ai structured output) in real
Prefect workflow runs over a real codebase (this repository by default):

* ``triage`` — the findings of the built-in ``code_review`` (an upstream step, over 5, 40
  or all of the repository's Python files: ~12,000 tokens of findings for this one) and a
  design note (0 to 20,000 tokens of the repository's own docs) as inputs, plus repository
  context;
* ``explainer`` — the task, triage's output as an upstream output (``context.sources:
  [repo, upstream]``) and repository context;
* ``gatekeeper`` — the findings and the note as inputs, and every upstream output
  (``code_review``'s whole output and triage's) without repository context.

Each workflow has ``--groups`` such triples (each group its own task and note size) and a
``budget.total_tokens`` that gives small grants (about the agents' minimums), medium or
large ones (their optimum), so the inputs and upstream outputs are often far bigger than the
grant and the shrink ladder acts. The model is pydantic-ai's ``FunctionModel`` (plugged in
for the manifests' ``model: function:bench`` by replacing ``agentrt.agents.llm.resolve_model``
in this process; the thread runner runs the agents here): it records every request it
receives and answers with valid structured output that cites the context it was sent.

The audit recounts every prompt the model received with tiktoken (the encoding agentrt
counts every budget with, ``cl100k_base`` unless ``AGENTRT_ENCODING``; fresh
``encode_ordinary`` calls, not agentrt's count cache): the instructions and the user message
as received, the output schema as the runtime renders it, plus the runtime's framing
allowance. Each is compared with the attempt's grant (``tokens_allocated`` in the metrics
record, the step's enforced limit) and with the ``prompt_tokens`` the metrics record holds.
The output tool as the model received it (name, description and the parameter schema
pydantic-ai sends) is recounted too: everything the model received as text, without the
framing allowance, is checked against the grant as well, and the tool's name and
description (which the runtime does not count as text: they are part of what the framing
allowance is for) are compared with the schema as counted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL = "function:bench"

TRIAGE = {
    "type": "object",
    "title": "Triage",
    "properties": {
        "summary": {"type": "string"},
        "files": {"type": "array", "items": {"type": "string"}},
        "first": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "line": {"type": "integer"},
                    "why": {"type": "string"},
                },
                "required": ["path", "line", "why"],
            },
        },
    },
    "required": ["summary", "files", "first"],
}
EXPLAIN = {
    "type": "object",
    "title": "Explanation",
    "properties": {
        "summary": {"type": "string"},
        "files": {"type": "array", "items": {"type": "string"}},
        "symbols": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["summary", "files", "symbols"],
}
VERDICT = {
    "type": "object",
    "title": "Verdict",
    "properties": {
        "approved": {"type": "boolean"},
        "reason": {"type": "string"},
        "blocking": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "line": {"type": "integer"}},
                "required": ["path", "line"],
            },
        },
    },
    "required": ["approved", "reason", "blocking"],
}
FINDINGS_ARRAY = {"type": "array", "items": {"type": "object"}}

AGENTS: dict[str, dict[str, Any]] = {
    "triage": {
        "prompt": "You triage the findings of a code review. Say which files to fix first "
        "and why, most urgent first, citing path and line; use the repository context to "
        "judge how much each finding matters for the task.",
        "input": {
            "type": "object",
            "properties": {
                "repo": {"type": "string"},
                "task": {"type": "string"},
                "findings": FINDINGS_ARRAY,
                "notes": {"type": "string"},
            },
            "required": ["repo"],
        },
        "output": TRIAGE,
        "context": {"sources": ["repo"], "min_tokens": 1000, "optimal_tokens": 8000},
    },
    "explainer": {
        "prompt": "Explain to a new contributor how the code that matters for the task "
        "works: the files to read, in order, and the functions and classes to know.",
        "input": {
            "type": "object",
            "properties": {"repo": {"type": "string"}, "task": {"type": "string"}},
            "required": ["repo"],
        },
        "output": EXPLAIN,
        "context": {"sources": ["repo", "upstream"], "min_tokens": 800, "optimal_tokens": 6000},
    },
    "gatekeeper": {
        "prompt": "Decide whether the change may be merged, given the review's findings, the "
        "triage and the design notes. Name the findings that block it.",
        "input": {
            "type": "object",
            "properties": {
                "task": {"type": "string"},
                "findings": FINDINGS_ARRAY,
                "notes": {"type": "string"},
            },
        },
        "output": VERDICT,
        "context": {"sources": ["upstream"], "min_tokens": 600, "optimal_tokens": 4000},
    },
}
MINIMUM = sum(a["context"]["min_tokens"] for a in AGENTS.values())
OPTIMUM = sum(a["context"]["optimal_tokens"] for a in AGENTS.values())
#: Workflow budget per group of three agents: about the minimums, between, the optimum.
BUDGETS = {"small": MINIMUM + 300, "medium": (MINIMUM + OPTIMUM) // 2, "large": OPTIMUM}
#: How many of the repository's Python files code_review reviews (None: all).
REVIEWED = (5, 40, None)
#: Tokens of design notes given to triage and gatekeeper.
NOTE_TOKENS = (0, 300, 2_000, 8_000, 20_000)

TASKS = [
    "where are agent retries and backoff configured?",
    "how does the runtime enforce the token grant of an LLM agent?",
    "how are chunked inputs split and merged?",
    "what does the result cache key contain?",
    "how is memory admitted on the process runner?",
    "how does the context manager rank files for a query?",
    "how are upstream outputs passed to downstream agents?",
    "how are secrets redacted from errors and logs?",
    "how does the scheduler pick which ready agent starts first?",
    "how are metrics records written and read back?",
    "what happens when a required agent fails?",
    "how does agents validate report manifest problems?",
    "how are workflows compiled into Prefect flows?",
    "how does the Claude Code hook build a subagent's context?",
    "how is context efficiency computed?",
    "how are import cycles found in the architecture analysis?",
]

_HEADER = re.compile(r"^## (\S+?):(\d+)-(\d+) \(", re.M)
_FUNC = re.compile(r"^\s*(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w+)", re.M)


@dataclass
class Request:
    """One request the model received."""

    task_run_id: str | None
    agent: str
    instructions: str
    user: str
    tool_name: str
    tool_description: str
    tool_schema: dict[str, Any]


@dataclass
class Recorder:
    """The FunctionModel's body: records each request, answers with valid output."""

    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, messages: list[Any], info: Any) -> Any:
        from prefect.context import TaskRunContext
        from pydantic_ai.messages import ModelRequest, ModelResponse, ToolCallPart, UserPromptPart

        task = TaskRunContext.get()
        user = "\n".join(
            str(part.content)
            for message in messages
            if isinstance(message, ModelRequest)
            for part in message.parts
            if isinstance(part, UserPromptPart)
        )
        tool = info.output_tools[0]
        title = tool.parameters_json_schema.get("title", "")
        agent = {"Triage": "triage", "Explanation": "explainer", "Verdict": "gatekeeper"}[title]
        with self.lock:
            self.requests.append(
                Request(
                    task_run_id=str(task.task_run.id) if task else None,
                    agent=agent,
                    instructions=info.instructions or "",
                    user=user,
                    tool_name=tool.name,
                    tool_description=tool.description or "",
                    tool_schema=tool.parameters_json_schema,
                )
            )
        return ModelResponse(parts=[ToolCallPart(tool.name, json.dumps(_answer(agent, user)))])


def _answer(agent: str, user: str) -> dict[str, Any]:
    """A valid answer that cites what the prompt showed (context blocks, findings)."""
    cited = [(m.group(1), int(m.group(2))) for m in _HEADER.finditer(user)][:4]
    paths = list(dict.fromkeys(p for p, _ in cited))
    if agent == "triage":
        first = [{"path": p, "line": line, "why": "central to the task"} for p, line in cited]
        return {"summary": f"{len(paths)} files to look at", "files": paths, "first": first}
    if agent == "explainer":
        symbols = list(dict.fromkeys(_FUNC.findall(user)))[:5]
        return {"summary": "Read these files in order.", "files": paths, "symbols": symbols}
    blocking = [{"path": p, "line": line} for p, line in cited if '"critical"' in user]
    return {"approved": not blocking, "reason": "policy", "blocking": blocking}


def _write_agents(folder: Path) -> None:
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    for aid, spec in AGENTS.items():
        manifest = {
            "id": aid,
            "version": "1.0.0",
            "kind": "llm",
            "entrypoint": "agentrt.agents.llm:run_llm_agent",
            "model": MODEL,
            "cache": {"enabled": False},  # every prompt is a real one
            **spec,
        }
        (folder / f"{aid}.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


def _notes(repo: Path, tokens: int) -> str:
    """The first ``tokens`` tokens of the repository's markdown docs (real prose)."""
    from agentrt.context.tokens import truncate_to_tokens

    if tokens <= 0:
        return ""
    docs = sorted(p for p in repo.rglob("*.md") if ".venv" not in p.parts and ".git" not in p.parts)
    text = "\n\n".join(p.read_text(encoding="utf-8", errors="replace") for p in docs)
    while len(text) < tokens * 8:  # a small repository: repeat its docs
        text += "\n\n" + text if text else "notes "
    return truncate_to_tokens(text, tokens)


def _python_files(repo: Path) -> list[str]:
    from agentrt.context.sources import scan_repository

    files = [f.path for f in scan_repository(repo).files if f.path.endswith(".py")]
    random.Random(19).shuffle(files)
    return files


def _workflows(repo: Path, prompts: int, groups: int) -> list[tuple[str, dict[str, Any]]]:
    """(budget class, workflow spec) until ``prompts`` LLM steps are planned."""
    files = _python_files(repo)
    notes = {n: _notes(repo, n) for n in NOTE_TOKENS}
    out = []
    planned = 0
    i = 0
    while planned < prompts:
        size = list(BUDGETS)[i % len(BUDGETS)]
        reviewed = REVIEWED[(i // len(BUDGETS)) % len(REVIEWED)]
        review: dict[str, Any] = {"agent": "code_review"}
        if reviewed is not None:
            review["inputs"] = {"files": {"value": sorted(files[:reviewed])}}
        steps: list[dict[str, Any]] = [review]
        n_groups = 0
        for g in range(groups):
            task = TASKS[(i * groups + g) % len(TASKS)]
            note = notes[NOTE_TOKENS[(i + g) % len(NOTE_TOKENS)]]
            task_in = {"value": task}
            group = [
                {
                    "agent": "triage",
                    "id": f"triage_{g}",
                    "inputs": {
                        "findings": "code_review.findings",
                        "task": task_in,
                        "notes": {"value": note},
                    },
                },
                {
                    "agent": "explainer",
                    "id": f"explain_{g}",
                    "after": [f"triage_{g}"],
                    "inputs": {"task": task_in},
                },
                {
                    "agent": "gatekeeper",
                    "id": f"gate_{g}",
                    "after": [f"triage_{g}"],
                    "inputs": {
                        "findings": "code_review.findings",
                        "task": task_in,
                        "notes": {"value": note},
                    },
                },
            ]
            group = group[: prompts - planned]
            steps += group
            planned += len(group)
            n_groups += 1
            if planned >= prompts:
                break
        spec = {
            "name": f"llm-budget-{i:03d}",
            "params": {"repo": {"type": "path", "default": str(repo)}},
            "budget": {"total_tokens": BUDGETS[size] * n_groups},
            "concurrency": 4,
            "task_runner": "thread",
            "steps": steps,
        }
        out.append((size, spec))
        i += 1
    return out


_LEFT_OUT = re.compile(r"^… \d+ more left out \(token budget\)$")


def _was_cut(value: Any) -> bool:
    """Whether JSON data shows the shrink ladder's marks: a list's "… N more left out"
    entry or a string cut with "…"."""
    if isinstance(value, str):
        return value.endswith("…") or bool(_LEFT_OUT.match(value))
    if isinstance(value, list):
        return any(_was_cut(v) for v in value)
    if isinstance(value, dict):
        return any(_was_cut(v) for v in value.values())
    return False


def _shrunk(agent: str, user: str) -> tuple[bool, str]:
    """(inputs cut, upstream outputs: whole, cut, left out or -) from the user message: the
    input section is its last, as JSON; the upstream section comes before the context."""
    marker = "\n\n## Input\n\n```json\n"
    text = "\n\n" + user  # the input section may also be the only one
    at = text.rfind(marker)
    inputs = json.loads(text[at + len(marker) :].removesuffix("\n```")) if at >= 0 else {}
    at = max(at - 2, 0) if at >= 0 else -1  # a position in `user`
    if "upstream" not in AGENTS[agent]["context"]["sources"]:
        return _was_cut(inputs), "-"
    start = user.find("## Upstream outputs\n\n")
    if start < 0:
        return _was_cut(inputs), "left out"
    end = min(
        (i for i in (user.find("\n\n## Context\n\n", start), at) if i > start), default=len(user)
    )
    blocks = user[start:end].split("\n\n### ")[1:]
    cut = any(_was_cut(json.loads(b.split("\n\n", 1)[1])) for b in blocks)
    return _was_cut(inputs), "cut" if cut else "whole"


@dataclass
class Audit:
    prompts: int = 0
    over_grant: int = 0
    over_grant_received: int = 0
    headroom: list[int] = field(default_factory=list)
    recorded_equal: int = 0
    recorded_missing: int = 0
    tool_extra: list[int] = field(default_factory=list)
    inputs_cut: int = 0
    upstream: dict[str, int] = field(default_factory=dict)
    grants: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    by_size: dict[str, list[float]] = field(default_factory=dict)
    worst: tuple[float, str] = (0.0, "")


def _audit(requests: list[Request], records: Any, size_of: dict[str, str], audit: Audit) -> None:
    from agentrt.agents.llm import FRAMING_TOKENS
    from agentrt.context.tokens import default_encoding_name, get_encoding

    enc = get_encoding(default_encoding_name())

    def n(text: str) -> int:
        return len(enc.encode_ordinary(text))

    schemas = {aid: json.dumps(a["output"], separators=(",", ":")) for aid, a in AGENTS.items()}
    by_task = {str(r.task_run_id): r for r in records.itertuples() if r.executed}
    for req in requests:
        record = by_task.get(str(req.task_run_id))
        assert record is not None, f"no metrics record for task run {req.task_run_id}"
        grant = int(record.tokens_allocated)
        recount = n(req.instructions) + n(req.user) + n(schemas[req.agent]) + FRAMING_TOKENS
        tool = (
            n(req.tool_name)
            + n(req.tool_description)
            + n(json.dumps(req.tool_schema, separators=(",", ":")))
        )
        received = n(req.instructions) + n(req.user) + tool  # all text, no allowance
        audit.prompts += 1
        audit.grants.append(grant)
        audit.tokens.append(recount)
        ratio = recount / grant
        audit.ratios.append(ratio)
        audit.by_size.setdefault(size_of[str(record.flow_run_id)], []).append(ratio)
        if ratio > audit.worst[0]:
            audit.worst = (ratio, f"{record.step} ({req.agent}): {recount:,} / {grant:,}")
        audit.over_grant += recount > grant
        audit.over_grant_received += received > grant
        audit.headroom.append(grant - received)
        cut, upstream = _shrunk(req.agent, req.user)
        audit.inputs_cut += cut
        if upstream != "-":
            audit.upstream[upstream] = audit.upstream.get(upstream, 0) + 1
        audit.tool_extra.append(tool - n(schemas[req.agent]))
        recorded = record.prompt_tokens
        if recorded is None or recorded != recorded:  # None or NaN
            audit.recorded_missing += 1
        else:
            audit.recorded_equal += int(recorded) == recount


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=500)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--groups", type=int, default=4, help="agent triples per workflow")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    repo = args.repo.resolve()
    home = Path(tempfile.mkdtemp(prefix="agentrt-bench-llm-"))
    os.environ["AGENTRT_HOME"] = str(home)
    os.environ["PREFECT_HOME"] = str(home / "prefect")
    os.environ.pop("PREFECT_API_URL", None)
    # The embedded server can take long to start on a busy machine (default: 20 s).
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.pop("AGENTRT_MODEL", None)
    os.environ["AGENTRT_ARTIFACTS"] = "off"  # no background publishing racing the exit

    import pandas as pd
    from pydantic_ai.models.function import FunctionModel

    import agentrt.agents.llm as llm
    from agentrt.agents.llm import FRAMING_TOKENS
    from agentrt.agents.registry import Registry
    from agentrt.context.tokens import count_tokens
    from agentrt.flows.run import run_workflow
    from agentrt.flows.workflow import WorkflowManifest

    recorder = Recorder()
    model = FunctionModel(recorder)
    resolve = llm.resolve_model
    llm.resolve_model = lambda spec: model if spec == MODEL else resolve(spec)

    _write_agents(home / "agents")
    registry = Registry.discover([home / "agents"], env=False, entry_points=False)
    assert not registry.problems, registry.problems
    workflows = _workflows(repo, args.prompts, args.groups)
    audit = Audit()
    states: dict[str, int] = {}
    findings_tokens: list[int] = [0]
    t0 = time.perf_counter()
    for size, spec in workflows:
        start = len(recorder.requests)
        result = run_workflow(WorkflowManifest.model_validate(spec), registry=registry)
        for step in result.steps.values():
            states[step.state] = states.get(step.state, 0) + 1
        review = result.steps["code_review"].output or {}
        findings_tokens.append(count_tokens(json.dumps(review.get("findings", []))))
        records = pd.read_parquet(result.report_paths["metrics"])
        _audit(recorder.requests[start:], records, {str(result.flow_run_id): size}, audit)
        print(
            f"{time.perf_counter() - t0:6.1f}s {spec['name']} ({size}): {result.state}, "
            f"{len(recorder.requests) - start} prompts",
            flush=True,
        )
    wall = time.perf_counter() - t0

    def spread(values: list[float]) -> str:
        return f"{min(values):.2f}–{max(values):.2f}" if values else "—"

    def spread_int(values: list[int]) -> str:
        return f"{min(values):+,}…{max(values):+,}" if values else "—"

    ups = ", ".join(f"{k} {v}" for k, v in sorted(audit.upstream.items()))
    per_size = ", ".join(f"{k} {spread(v)}" for k, v in sorted(audit.by_size.items()))
    rows = [
        ("prompts audited", f"{audit.prompts}"),
        ("step states", ", ".join(f"{k} {v}" for k, v in sorted(states.items()))),
        ("grants (tokens)", f"{min(audit.grants):,}–{max(audit.grants):,}"),
        ("prompt tokens (recount)", f"{min(audit.tokens):,}–{max(audit.tokens):,}"),
        ("max prompt / grant", f"{max(audit.ratios):.3f} ({audit.worst[1]})"),
        ("prompt / grant by budget", per_size),
        ("prompts with inputs cut by the shrink ladder", f"{audit.inputs_cut}"),
        ("upstream outputs in the prompt (explainer, gatekeeper)", ups),
        ("**prompts over their grant**", f"**{audit.over_grant}**"),
        (
            "all text the model received (incl. the output tool's name and description, "
            "no framing allowance) over the grant",
            f"{audit.over_grant_received} (at least {min(audit.headroom):,} tokens under)",
        ),
        (
            "output tool as received − schema as counted",
            f"{spread_int(audit.tool_extra)} tokens (framing allowance {FRAMING_TOKENS})",
        ),
        (
            "metrics `prompt_tokens` = recount",
            f"{audit.recorded_equal} / {audit.prompts} (missing: {audit.recorded_missing})",
        ),
        ("wall time", f"{wall:.0f} s"),
    ]
    default = repo == Path(__file__).resolve().parents[1]
    where = "this repository" if default else f"`{repo}`"
    table = "\n".join(["| measure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])
    body = textwrap.dedent(
        f"""\
        3 LLM agents (`triage`, `explainer`, `gatekeeper`) on pydantic-ai's `FunctionModel`,
        through agentrt's LLM path, over {where}: {len(workflows)} workflow runs of
        up to {args.groups} agent triples after a `code_review` step, with budgets for small,
        medium and large grants, `code_review` findings over 5, 40 or all Python files
        (up to {max(findings_tokens):,} tokens) and design notes of 0–20,000 tokens as
        inputs, upstream outputs for `explainer` and `gatekeeper`. Every prompt the model
        received is recounted with tiktoken (`{_encoding()}`): instructions + user message
        as received + output schema as rendered + the runtime's framing allowance; the
        grant is the attempt's `tokens_allocated` (its enforced limit).
        """
    )
    body += "\n" + table + "\n"
    print(body)
    assert audit.prompts == args.prompts, (audit.prompts, args.prompts)
    assert audit.over_grant == 0 and audit.over_grant_received == 0
    if not args.no_write:
        from bench.report import write_section

        path = write_section("llm_budget", "LLM prompts within their grants (recount)", body)
        print(f"wrote {path}")


def _encoding() -> str:
    from agentrt.context.tokens import default_encoding_name

    return default_encoding_name()


if __name__ == "__main__":
    main()
