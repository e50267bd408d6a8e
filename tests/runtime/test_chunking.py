"""Chunked (map/merge) processing: manifests with ``chunking:`` split work bigger than the
grant into one task run per chunk, merged in the driver."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from agentrt.agents.diagnostics import ManifestError
from agentrt.agents.manifest import AgentManifest, ChunkingSpec, load_manifest
from agentrt.agents.registry import Registry
from agentrt.flows.chunking import chunk_limit, merge_outputs, split_inputs
from agentrt.flows.results import RunResult
from agentrt.flows.workflow import WorkflowManifest
from tests.runtime.helpers import write

CHUNK_AGENTS = Path(__file__).resolve().parent / "chunk_agents"
sys.path.insert(0, str(CHUNK_AGENTS))

#: 14 items of ~4 tokens, two pairs repeated (so union has something to drop).
ITEMS = [f"w{i % 12} alpha beta" for i in range(14)]
TEXT = "".join(f"line {i}: some words here\n" for i in range(20))


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover([CHUNK_AGENTS], builtin=False, entry_points=False)


def run(registry: Registry, workdir: Path, steps: list[dict[str, Any]], **extra: Any) -> RunResult:
    from agentrt.flows.run import run_workflow

    spec = {
        "name": "chunk-wf",
        "params": {"workdir": {"type": "path", "default": str(workdir)}},
        "steps": steps,
        **extra,
    }
    return run_workflow(WorkflowManifest.model_validate(spec), registry=registry)


def step(agent: str, **inputs: Any) -> dict[str, Any]:
    return {"agent": agent, "id": agent, "inputs": {k: {"value": v} for k, v in inputs.items()}}


def calls(workdir: Path) -> list[Any]:
    path = workdir / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def expected_chunks(registry: Registry, agent: str, field: str, value: Any) -> list[Any]:
    spec = registry.get(agent).manifest.chunking
    assert spec is not None
    chunks = split_inputs(spec, {field: value}, None)
    assert chunks is not None and len(chunks) >= 3
    return [c[field] for c in chunks]


# -- runs ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_list_bigger_than_a_chunk_runs_a_task_per_chunk_and_merges(
    registry: Registry, tmp_path: Path
) -> None:
    pieces = expected_chunks(registry, "chunk_items", "items", ITEMS)
    plain_dir, chunk_dir = tmp_path / "plain", tmp_path / "chunked"
    plain_dir.mkdir(), chunk_dir.mkdir()
    plain = run(registry, plain_dir, [step("plain_items", items=ITEMS)])
    result = run(registry, chunk_dir, [step("chunk_items", items=ITEMS)])
    assert result.state == "completed", result.errors
    chunked = result.steps["chunk_items"]
    assert len(chunked.task_run_ids) == len(pieces) == chunked.chunks
    assert len(set(chunked.task_run_ids)) == len(pieces)
    # Each chunk ran once, on its own items, in order.
    assert sorted(map(tuple, calls(chunk_dir))) == sorted(map(tuple, pieces))
    assert [x for p in pieces for x in p] == ITEMS
    # concat, sum, union, max: what one run over all items gives.
    assert chunked.output == plain.steps["plain_items"].output
    assert chunked.output["seen"] == [f"w{i}" for i in range(12)]


@pytest.mark.usefixtures("prefect_harness")
def test_text_is_split_at_line_boundaries(registry: Registry, tmp_path: Path) -> None:
    pieces = expected_chunks(registry, "chunk_text", "text", TEXT)
    plain_dir, chunk_dir = tmp_path / "plain", tmp_path / "chunked"
    plain_dir.mkdir(), chunk_dir.mkdir()
    plain = run(registry, plain_dir, [step("plain_text", text=TEXT)])
    result = run(registry, chunk_dir, [step("chunk_text", text=TEXT)])
    assert result.state == "completed", result.errors
    seen = calls(chunk_dir)
    assert len(seen) == len(pieces) == len(result.steps["chunk_text"].task_run_ids)
    assert all(piece.endswith("\n") for piece in seen)  # whole lines only
    assert "".join(pieces) == TEXT and sorted(seen) == sorted(pieces)
    assert result.steps["chunk_text"].output == plain.steps["plain_text"].output


@pytest.mark.usefixtures("prefect_harness")
def test_a_failing_chunk_is_retried_alone(registry: Registry, tmp_path: Path) -> None:
    pieces = expected_chunks(registry, "chunk_items", "items", ITEMS)
    bad = pieces[1][0]
    result = run(registry, tmp_path, [step("chunk_items", items=ITEMS, fail_on=bad)])
    assert result.state == "completed", result.errors
    seen = [tuple(c) for c in calls(tmp_path)]
    assert seen.count(tuple(pieces[1])) == 2  # failed once, retried
    for piece in pieces[:1] + pieces[2:]:
        assert seen.count(tuple(piece)) == 1  # the others were not run again
    out = result.steps["chunk_items"]
    assert out.attempts == len(pieces) + 1
    assert len(out.task_run_ids) == len(pieces)
    assert out.output["upper"] == [i.upper() for i in ITEMS]
    # One metrics record per chunk attempt, each naming its chunk.
    from agentrt.flows.metrics import load_records

    rows = load_records(result.report_paths["metrics"])
    n = len(pieces)
    executed = rows[rows["executed"]]
    assert sorted(executed["chunk"]) == sorted([f"{i}/{n}" for i in range(1, n + 1)] + [f"2/{n}"])
    failed = executed[executed["state"] == "failed"]
    assert list(failed["chunk"]) == [f"2/{n}"]


@pytest.mark.usefixtures("prefect_harness")
def test_work_that_fits_runs_unchunked(registry: Registry, tmp_path: Path) -> None:
    small = ITEMS[:2]
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    plain = run(registry, a, [step("plain_items", items=small)])
    result = run(registry, b, [step("chunk_items", items=small)])
    chunked = result.steps["chunk_items"]
    assert chunked.output == plain.steps["plain_items"].output
    assert len(chunked.task_run_ids) == 1 and chunked.chunks is None
    assert calls(b) == [small]


@pytest.mark.usefixtures("prefect_harness")
def test_custom_merge_function(registry: Registry, tmp_path: Path) -> None:
    result = run(registry, tmp_path, [step("chunk_custom", items=ITEMS)])
    out = result.steps["chunk_custom"].output
    assert out["upper"] == sorted((i.upper() for i in ITEMS), key=len, reverse=True)
    assert out["longest"] == min(len(i) for i in ITEMS)  # min over the chunks' max
    assert out["label"] == "items"  # unnamed fields: the first chunk's value


@pytest.mark.usefixtures("prefect_harness")
def test_a_chunk_that_keeps_failing_fails_the_step(registry: Registry, tmp_path: Path) -> None:
    pieces = expected_chunks(registry, "chunk_items", "items", ITEMS)
    bad = pieces[1][0]
    result = run(registry, tmp_path, [step("chunk_items", items=ITEMS, fail_always=bad)])
    assert result.state == "failed"
    out = result.steps["chunk_items"]
    assert out.state == "failed" and out.output is None
    seen = [tuple(c) for c in calls(tmp_path)]
    assert seen.count(tuple(pieces[1])) == 3  # its try and its 2 retries, then no more
    for piece in pieces[:1] + pieces[2:]:
        assert seen.count(tuple(piece)) == 1
    (error,) = result.errors
    assert (error.step, error.error_type) == ("chunk_items", "ConnectionError")
    assert f"permanent failure on {bad}" in error.message


@pytest.mark.usefixtures("prefect_harness")
def test_fallbacks_run_on_the_whole_input_when_a_chunk_fails(
    registry: Registry, tmp_path: Path
) -> None:
    pieces = expected_chunks(registry, "chunk_fallback", "items", ITEMS)
    bad = pieces[-1][0]
    result = run(registry, tmp_path, [step("chunk_fallback", items=ITEMS, fail_always=bad)])
    assert result.state == "completed", result.errors
    out = result.steps["chunk_fallback"]
    assert (out.state, out.used_agent) == ("fallback", "lenient_items@1.0.0")
    assert calls(tmp_path)[-1] == ITEMS  # the fallback: one call with every item
    assert out.output["upper"] == [i.upper() for i in ITEMS]
    assert out.output["total"] == sum(len(i) for i in ITEMS)


@pytest.mark.usefixtures("prefect_harness")
def test_a_merge_that_does_not_fit_is_a_merge_error(registry: Registry, tmp_path: Path) -> None:
    cases = {
        "chunk_badmerge": "merging output field 'label' of",  # sum over strings
        "chunk_badschema": "does not match its output schema",  # an int field gets "many"
    }
    for agent, message in cases.items():
        workdir = tmp_path / agent
        workdir.mkdir()
        pieces = expected_chunks(registry, agent, "items", ITEMS)
        result = run(registry, workdir, [step(agent, items=ITEMS)])
        assert result.state == "failed"
        assert result.steps[agent].state == "failed"
        (error,) = result.errors
        assert (error.error_type, error.phase) == ("MergeError", "integrate"), error
        assert message in error.message and f"{len(pieces)} chunks" in error.message
        assert len(calls(workdir)) == len(pieces)  # not retried: every chunk ran once


# -- splitting and merging ----------------------------------------------------------------


def test_chunk_limit_follows_the_grant_when_the_workflow_sets_a_budget() -> None:
    spec = ChunkingSpec(split="items", chunk_tokens=100)
    assert chunk_limit(spec, None) == (100, 100)
    assert chunk_limit(spec, 40) == (40, 40)  # never a chunk bigger than the grant
    assert chunk_limit(spec, 500) == (500, 100)  # fits the grant: one run
    items = [f"w{i} alpha beta" for i in range(40)]
    assert split_inputs(spec, {"items": items}, 10_000) is None
    chunks = split_inputs(spec, {"items": items, "other": 1}, 40)
    assert chunks is not None and all(c["other"] == 1 for c in chunks)
    assert [x for c in chunks for x in c["items"]] == items


def test_a_measure_and_a_share_of_the_grant_decide_the_chunks() -> None:
    """``measure``: what each piece costs (not its own text); ``share``: the part of the
    grant the pieces of one chunk may take."""
    spec = ChunkingSpec(split="items", chunk_tokens=1000, share=0.5)
    assert chunk_limit(spec, 400) == (200, 200)
    assert chunk_limit(spec, None) == (1000, 1000)  # no grant: chunk_tokens, as before
    items = ["a", "b", "c", "d", "e"]
    weights = {"a": 90, "b": 90, "c": 90, "d": 10, "e": 10}

    def measure(inputs: dict, pieces: list) -> list[int]:
        assert inputs["items"] == items
        return [weights[p] for p in pieces]

    chunks = split_inputs(spec, {"items": items}, 400, measure)
    assert [c["items"] for c in chunks or []] == [["a", "b"], ["c", "d", "e"]]
    assert split_inputs(spec, {"items": items}, 1000, measure) is None  # 290 fits 500
    # A measure that fails, or miscounts, leaves the work whole.
    assert split_inputs(spec, {"items": items}, 400, lambda i, p: [1]) is None
    assert split_inputs(spec, {"items": items}, 400, lambda i, p: 1 / 0) is None


def test_builtin_merges(registry: Registry) -> None:
    agent = registry.get("chunk_items")
    outs = [
        {"upper": ["A"], "total": 1, "seen": ["a", "b"], "longest": 3, "label": "x"},
        {"upper": ["B"], "total": 2, "seen": ["b", "c"], "longest": 5, "label": "y"},
    ]
    assert merge_outputs(agent, outs) == {
        "upper": ["A", "B"],
        "total": 3,
        "seen": ["a", "b", "c"],
        "longest": 5,
        "label": "x",
    }


# -- bad manifests ------------------------------------------------------------------------

BASE = """
id: bad
version: 1.0.0
entrypoint: ck_agents:items
input: ck_agents:ItemsIn
output: ck_agents:ItemsOut
"""


def test_unknown_merge_name_is_a_manifest_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bad.yaml",
        BASE + "chunking: {split: items, chunk_tokens: 10, merge: {total: average}}\n",
    )
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    text = str(info.value)
    assert "unknown merge 'average'" in text and "concat" in text and "module:function" in text
    ok = {"split": "items", "chunk_tokens": 10, "merge": {"total": "sum"}}
    AgentManifest.model_validate({**_base(), "chunking": ok})
    with pytest.raises(ValueError, match="chunk_tokens"):
        AgentManifest.model_validate({**_base(), "chunking": {**ok, "chunk_tokens": 0}})
    with pytest.raises(ValueError, match="share"):
        AgentManifest.model_validate({**_base(), "chunking": {**ok, "share": 1.5}})
    with pytest.raises(ValueError, match="not 'module:function'"):
        AgentManifest.model_validate({**_base(), "chunking": {**ok, "measure": "weigh"}})


def _base() -> dict[str, Any]:
    return {"id": "bad", "version": "1.0.0", "entrypoint": "ck_agents:items"}


def test_split_and_merge_fields_must_exist(tmp_path: Path) -> None:
    # A module of its own name: ck_agents is already imported from CHUNK_AGENTS.
    (tmp_path / "ck_bad.py").write_text((CHUNK_AGENTS / "ck_agents.py").read_text())
    write(
        tmp_path / "bad.yaml",
        BASE.replace("ck_agents", "ck_bad")
        + "chunking: {split: files, chunk_tokens: 10, merge: {totals: sum, "
        "upper: 'ck_bad:nowhere'}, measure: 'ck_bad:weigh'}\n",
    )
    registry = Registry.discover([tmp_path], builtin=False, entry_points=False)
    problems = [str(p) for p in registry.validate()]
    assert any("'files' is not a field of the input" in p for p in problems), problems
    assert any("'totals' is not a field of the output" in p for p in problems), problems
    assert any("merge function for 'upper'" in p for p in problems), problems
    assert any("measure function: " in p for p in problems), problems
    # Inline schemas are checked without imports too.
    write(
        tmp_path / "bad.yaml",
        "id: bad\nversion: 1.0.0\nentrypoint: ck_bad:items\n"
        "input: {type: object, properties: {items: {type: array}}}\n"
        "output: {type: object, properties: {n: {type: integer}}, additionalProperties: false}\n"
        "chunking: {split: text, chunk_tokens: 10, merge: {m: sum}}\n",
    )
    registry = Registry.discover([tmp_path], builtin=False, entry_points=False)
    problems = [str(p) for p in registry.validate(check_imports=False)]
    assert any("'text' is not a field of the input" in p for p in problems), problems
    assert any("'m' is not a field of the output" in p for p in problems), problems
