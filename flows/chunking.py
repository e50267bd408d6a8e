"""Chunked (map/merge) processing: work bigger than a step's grant runs as one Prefect task
run per chunk, and the chunks' outputs are merged into the step's output.

An agent's manifest opts in with ``chunking:`` (:class:`~agentrt.agents.manifest.ChunkingSpec`):
the input field to split (a list, split between items; or a string, split at line
boundaries), the chunk size in tokens, and how each output field is merged. The driver
(:class:`~agentrt.flows.driver.Driver`) asks :func:`split_inputs` whether a step's inputs
need chunks; if so :func:`run_chunks` submits one attempt per chunk (each its own task run,
named ``agent@version[i/N]``, cached by its own inputs and retried alone by Prefect), and
:func:`merge_outputs` merges what they returned. Work that fits in one chunk runs exactly as
an agent without ``chunking:`` would.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agentrt.errors import AgentrtError

if TYPE_CHECKING:
    from agentrt.agents.manifest import ChunkingSpec
    from agentrt.agents.registry import RegisteredAgent

__all__ = ["MergeError", "chunk_limit", "merge_outputs", "run_chunks", "split_inputs"]

_log = logging.getLogger("agentrt.chunking")


class MergeError(AgentrtError, ValueError):
    """The chunks' outputs could not be merged (a merge rule that does not fit the values,
    or a merged output that no longer matches the output schema)."""

    retryable = False
    hint = "fix chunking.merge in {agent}'s manifest so each rule fits its output field"


def chunk_limit(spec: ChunkingSpec, token_limit: int | None) -> tuple[int, int]:
    """(threshold, size): work of more tokens than ``threshold`` is chunked, into chunks of
    at most ``size`` tokens. The threshold is ``chunking.share`` of the step's token limit
    (the grant when the workflow sets a budget; an LLM agent's prompt is fitted to its
    grant either way), else the manifest's chunk size; a chunk is never bigger than
    either."""
    if token_limit is not None:
        threshold = max(1, int(token_limit * spec.share))
    else:
        threshold = spec.chunk_tokens
    return threshold, max(1, min(spec.chunk_tokens, threshold))


def _token_counts(pieces: list[Any]) -> list[int]:
    """Each piece's tokens, counted in one batch (tiktoken's thread pool and the counter's
    cache) rather than one call per line or item."""
    from agentrt.context.tokens import count_batch

    return count_batch(
        [p if isinstance(p, str) else json.dumps(p, sort_keys=True, default=str) for p in pieces]
    )


def _pack(pieces: list[Any], sizes: list[int], size: int) -> list[list[Any]]:
    """Consecutive pieces grouped greedily into chunks of at most ``size`` tokens (a piece
    bigger than that is a chunk of its own)."""
    chunks: list[list[Any]] = []
    current: list[Any] = []
    used = 0
    for piece, n in zip(pieces, sizes, strict=True):
        if current and used + n > size:
            chunks.append(current)
            current, used = [], 0
        current.append(piece)
        used += n
    if current:
        chunks.append(current)
    return chunks


def split_inputs(
    spec: ChunkingSpec,
    inputs: dict[str, Any],
    token_limit: int | None,
    measure: Callable[[dict[str, Any], list[Any]], list[int]] | None = None,
) -> list[dict[str, Any]] | None:
    """The inputs of each chunk, or None when the work fits in one (run it unchanged).

    Each piece weighs its own tokens, or what ``measure(inputs, pieces)`` (the manifest's
    ``chunking.measure``) says it costs; a measure that fails or answers with anything but
    one count per piece leaves the work whole (the agent meets the same problem itself)."""
    value = inputs.get(spec.split)
    if isinstance(value, str):
        pieces: list[Any] = value.splitlines(keepends=True)
    elif isinstance(value, list):
        pieces = value
    else:
        return None
    if len(pieces) < 2:
        return None
    threshold, size = chunk_limit(spec, token_limit)
    if measure is None:
        sizes = _token_counts(pieces)
    else:
        try:
            sizes = [int(n) for n in measure(dict(inputs), list(pieces))]
        except Exception as exc:
            from agentrt.agents.redact import redact

            _log.warning("chunking.measure failed, the work runs whole: %s", redact(str(exc)))
            return None
        if len(sizes) != len(pieces):
            _log.warning("chunking.measure gave %d counts for %d pieces", len(sizes), len(pieces))
            return None
    if sum(sizes) <= threshold:
        return None
    groups = _pack(pieces, sizes, size)
    if len(groups) < 2:
        return None
    join: Callable[[list[Any]], Any] = "".join if isinstance(value, str) else list
    return [{**inputs, spec.split: join(group)} for group in groups]


# -- merging ------------------------------------------------------------------------------


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _concat(values: list[Any]) -> Any:
    if all(isinstance(v, list) for v in values):
        return [x for v in values for x in v]
    if all(isinstance(v, str) for v in values):
        out = ""
        for v in values:
            out += v if not out or out.endswith("\n") else "\n" + v
        return out
    raise TypeError("concat merges lists or strings")


def _union(values: list[Any]) -> list[Any]:
    if not all(isinstance(v, list) for v in values):
        raise TypeError("union merges lists")
    seen: set[str] = set()
    out = []
    for v in values:
        for x in v:
            k = _key(x)
            if k not in seen:
                seen.add(k)
                out.append(x)
    return out


_BUILTIN: dict[str, Callable[[list[Any]], Any]] = {
    "concat": _concat,
    "sum": sum,
    "max": max,
    "min": min,
    "union": _union,
    "first": lambda values: values[0],
}


def merge_outputs(agent: RegisteredAgent, outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """One output from the chunks' outputs, field by field (in the first output's field
    order): each field by its ``chunking.merge`` rule, ``first`` when it names none.
    Values that are None (a chunk that left the field unset) are left out of the merge."""
    from agentrt.agents.imports import load_callable

    spec = agent.manifest.chunking
    rules = spec.merge if spec is not None else {}
    names: list[str] = []
    for out in outputs:
        names += [k for k in out if k not in names]
    merged: dict[str, Any] = {}
    for name in names:
        values = [out[name] for out in outputs if out.get(name) is not None]
        rule = rules.get(name, "first")
        if not values:
            merged[name] = None
            continue
        try:
            fn = _BUILTIN.get(rule) or load_callable(rule, agent.policy)
            merged[name] = fn(values)
        except MergeError:
            raise
        except Exception as exc:
            raise MergeError(
                f"{agent.manifest.key}: merging output field {name!r} of {len(outputs)} "
                f"chunks with {rule!r} failed: {type(exc).__name__}: {exc}"
            ) from None
    return merged


# -- running ------------------------------------------------------------------------------


async def run_chunks(
    attempt: Callable[..., Any],
    agent: RegisteredAgent,
    chunks: list[dict[str, Any]],
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Any, Any, list[str | None]]:
    """Run every chunk (``attempt(inputs, (i, n))`` → (state, value, task_run_id), as the
    driver's ``_attempt``) at once, within the task runner's workers, and merge their
    outputs. Returns (state, value, task run ids): a Completed (or Cached, when every
    chunk was) state and the merged value as one attempt's, or the first failed chunk's
    state and exception."""
    from prefect.states import Completed, Failed

    from agentrt.flows.attempt import mark_failure
    from agentrt.flows.schemas import SchemaValidationError, validate_output

    n = len(chunks)
    done = 0

    async def one(i: int, inputs: dict[str, Any]) -> tuple[Any, Any, str | None]:
        nonlocal done
        outcome = await attempt(inputs, (i + 1, n))
        done += 1
        if progress is not None:
            progress(done, n)
        return outcome

    outcomes = await asyncio.gather(*(one(i, c) for i, c in enumerate(chunks)))
    ids = [task_run_id for _s, _v, task_run_id in outcomes]
    for state, value, _id in outcomes:
        if not (state.is_completed() and isinstance(value, dict)):
            return state, value, ids
    values = [value for _s, value, _id in outcomes]
    try:
        output = merge_outputs(agent, [v.get("output") or {} for v in values])
        try:
            output = validate_output(agent, output)
        except SchemaValidationError as exc:
            raise MergeError(
                f"{agent.manifest.key}: the merged output of {n} chunks does not match its "
                f"output schema: {exc}"
            ) from None
    except MergeError as exc:
        mark_failure(exc, "integrate", 1)
        return Failed(message=str(exc)), exc, ids
    phases: dict[str, float] = {}
    for v in values:
        for phase, seconds in (v.get("phases") or {}).items():
            phases[phase] = round(phases.get(phase, 0.0) + seconds, 6)
    delivered = [v.get("tokens_delivered") for v in values]
    merged = {
        "output": output,
        "agent": agent.manifest.key,
        "attempt": sum(int(v.get("attempt") or 1) for v in values),
        "phases": phases,
        "tokens_delivered": sum(d for d in delivered if d is not None)
        if any(d is not None for d in delivered)
        else None,
        "chunks": n,
    }
    cached = all(state.name == "Cached" for state, _v, _id in outcomes)
    return Completed(name="Cached" if cached else "Completed"), merged, ids
