"""Agent performance metrics: one record per agent execution, one Parquet file per flow run.

Every attempt of every agent leaves an :class:`~agentrt.flows.results.AttemptRecord` in a spool
folder while the flow runs (written by :mod:`agentrt.flows.lifecycle`, one JSON file per attempt, so
parallel agents never share a file). At the end of the run, :func:`finalize_run` turns the
spool and the :class:`~agentrt.flows.results.RunResult` into :class:`AgentRunRecord` rows: one per
attempt, plus one for each step that did not execute (served from Prefect's cache, or
skipped), so every step of every run is accounted for. The rows go to one Parquet file per
flow run::

    <metrics_dir>/runs/<YYYY-MM-DD>/<flow_run_id>.parquet

The date folders are plain names (not hive ``date=`` folders) so that
``pandas.read_parquet(<metrics_dir>/runs)`` returns exactly the record columns with their
own dtypes. Files are written to a hidden temporary name and renamed into place, so readers
and concurrent flows never see half a file. :func:`load_records` reads them back;
:func:`summarize`, :func:`cost_summary`, :func:`recommend` and :func:`export_records` are what
``agentrt metrics`` and ``notebooks/efficiency.ipynb`` show.

This module never imports Prefect (``agentrt metrics`` must start fast), except inside
:func:`publish_metrics_artifact`, which only runs inside a flow.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import math
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from agentrt.errors import AgentrtError
from agentrt.flows.results import AttemptRecord, RunResult, StepResult
from agentrt.flows.settings import metrics_dir

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from agentrt.agents.manifest import AgentManifest
    from agentrt.flows.plan import Plan

__all__ = [
    "LOW_EFFICIENCY",
    "AgentRunRecord",
    "EfficiencyWarning",
    "MetricsError",
    "MetricsWarning",
    "Recommendation",
    "Thresholds",
    "apublish_metrics_artifact",
    "artifact_rows",
    "build_records",
    "cited_paths",
    "cost_summary",
    "data_consumers",
    "export_records",
    "finalize_run",
    "finalize_run_records",
    "followers",
    "invocations",
    "load_records",
    "log_low_efficiency",
    "low_efficiency",
    "metrics_artifact_args",
    "parse_since",
    "prune",
    "publish_metrics_artifact",
    "recommend",
    "records_frame",
    "referenced_tokens",
    "retention_days",
    "run_file",
    "summarize",
]

log = logging.getLogger("agentrt.metrics")

RecordState = Literal["completed", "failed", "fallback", "cached", "skipped"]
SUCCESS_STATES = frozenset({"completed", "fallback", "cached"})
PHASES = ("initialise", "execute", "validate", "cleanup", "integrate")
DEFAULT_RETENTION_DAYS = 90
SCHEMA_VERSION = 1


class MetricsError(AgentrtError, ValueError):
    """Bad input to the metrics API (an unreadable ``since``, an unknown export format)."""


class MetricsWarning(UserWarning):
    """A metrics file was skipped (unreadable or corrupt); the others were loaded."""


# -- records -------------------------------------------------------------------------
_PHASE_COLUMNS = tuple(f"phase_{p}_s" for p in PHASES)


class AgentRunRecord(AttemptRecord):
    """One agent execution (success or failure), or one step that did not execute.

    An :class:`~agentrt.flows.results.AttemptRecord` (``attempt`` is 0 for a step that did
    not execute) plus what the run's end knows about it. As a row (``model_dump``, a
    Parquet file) a record has the :data:`COLUMNS`: the attempt's ``phase`` is the
    ``error_phase`` column and its ``phases`` the ``phase_<name>_s`` columns; a row
    validates back into a record.
    """

    record_id: str = Field(description="Stable id: run, step, agent, attempt (or state).")
    state: RecordState = Field(  # type: ignore[assignment]
        description="This record's outcome: completed, failed, fallback (a fallback agent "
        "succeeded), cached (served from the result cache) or skipped (never ran)."
    )
    step_state: str = Field(description="The step's final state in the run.")
    executed: bool = Field(description="Whether agent code ran for this record.")
    final: bool = Field(description="Whether this record decided the step's outcome.")
    wall_seconds: float | None = None  # type: ignore[assignment]
    cpu_seconds: float | None = None  # type: ignore[assignment]
    context_efficiency: float | None = Field(
        None, description="tokens_referenced / tokens_delivered; null if nothing was delivered."
    )
    cache_hit: bool = False
    fallback_used: bool = Field(False, description="This record is a fallback agent's.")
    run_started_at: datetime
    schema_version: int = SCHEMA_VERSION

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, data: Any) -> Any:
        """A row's ``error_phase`` and ``phase_<name>_s`` columns → ``phase``, ``phases``."""
        if not isinstance(data, Mapping) or not (
            "error_phase" in data or any(c in data for c in _PHASE_COLUMNS)
        ):
            return data
        data = dict(data)
        if "error_phase" in data:
            data.setdefault("phase", data.pop("error_phase"))
        phases = {p: data.pop(c) for p, c in zip(PHASES, _PHASE_COLUMNS, strict=True) if c in data}
        data.setdefault("phases", {p: v for p, v in phases.items() if v is not None})
        return data

    @model_serializer(mode="wrap")
    def _as_row(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The record as a row: the :data:`COLUMNS`, in file order."""
        data = handler(self)
        if "phase" in data:
            data["error_phase"] = data.pop("phase")
        if "phases" in data:
            phases = data.pop("phases") or {}
            data.update(zip(_PHASE_COLUMNS, map(phases.get, PHASES), strict=True))
        return {c: data[c] for c in COLUMNS if c in data}


COLUMNS: list[str] = [
    "record_id", "workflow", "flow_run_id", "task_run_id", "step", "agent_id",
    "agent_version", "attempt", "state", "step_state", "executed", "final", "error_type",
    "error_message", "error_phase", *_PHASE_COLUMNS, "wall_seconds", "cpu_seconds",
    "peak_memory_mb", "tokens_allocated", "tokens_delivered", "tokens_referenced",
    "context_efficiency", "prompt_tokens", "llm_input_tokens", "llm_output_tokens",
    "llm_model", "cost_usd", "cache_hit", "fallback_used", "fallback_for", "chunk",
    "budget_reason", "started_at", "ended_at", "run_started_at", "schema_version",
]  # fmt: skip
"""The record columns, in file order: :class:`AgentRunRecord`'s fields, with ``phase`` as
``error_phase`` and ``phases`` as one column per lifecycle phase."""

# Every field is a column (phase and phases under their row names), and nothing else is.
assert set(COLUMNS) == (
    set(AgentRunRecord.model_fields) - {"phase", "phases"} | {"error_phase", *_PHASE_COLUMNS}
), "COLUMNS and AgentRunRecord's fields disagree"


def _mentions(annotation: Any, kind: type) -> bool:
    if annotation is kind:
        return True
    if kind is str and getattr(annotation, "__origin__", None) is Literal:
        return True
    return any(a is kind for a in getattr(annotation, "__args__", ()))


@functools.cache
def arrow_schema() -> pa.Schema:
    """One Arrow type per record field: every file has the same schema whatever its nulls,
    so a folder of files reads as one table and pandas gets nullable dtypes back."""
    import pyarrow as pa

    types = {
        str: pa.string(),
        int: pa.int64(),
        float: pa.float64(),
        bool: pa.bool_(),
        datetime: pa.timestamp("us", tz="UTC"),
    }
    row_only = {"error_phase": str, **dict.fromkeys(_PHASE_COLUMNS, float)}
    fields = []
    for name in COLUMNS:
        info = AgentRunRecord.model_fields.get(name)
        annotation = info.annotation if info is not None else row_only[name]
        kind = next((t for t in types if _mentions(annotation, t)), str)
        fields.append(pa.field(name, types[kind], nullable=True))
    return pa.schema(fields, metadata={b"pandas": _pandas_metadata(fields)})


#: Arrow type → (pandas_type, numpy_type) as pandas writes them for the metrics dtypes.
_PANDAS_TYPES = {
    "string": ("unicode", "string"),
    "int64": ("int64", "Int64"),
    "bool": ("bool", "boolean"),
    "double": ("float64", "float64"),
    "timestamp[us, tz=UTC]": ("datetimetz", "datetime64[us]"),
}


def _pandas_metadata(fields: list[pa.Field]) -> bytes:
    """The ``pandas`` schema metadata pandas itself would write for a records frame, so
    ``pd.read_parquet`` gives back the nullable dtypes although the run's file is written
    without pandas (https://pandas.pydata.org/docs/development/developer.html)."""
    import pyarrow as pa

    columns = []
    for f in fields:
        pandas_type, numpy_type = _PANDAS_TYPES[str(f.type)]
        columns.append(
            {
                "name": f.name,
                "field_name": f.name,
                "pandas_type": pandas_type,
                "numpy_type": numpy_type,
                "metadata": {"timezone": "UTC"} if pandas_type == "datetimetz" else None,
            }
        )
    meta = {
        "index_columns": [],
        "column_indexes": [],
        "columns": columns,
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
    }
    return json.dumps(meta).encode()


def _types_mapper(arrow_type: pa.DataType) -> Any:
    """Nullable pandas dtypes for ints, bools and strings; floats stay numpy float64 (NaN
    for missing), friendlier for quantiles and plots."""
    import pandas as pd
    import pyarrow as pa

    if arrow_type == pa.int64():
        return pd.Int64Dtype()
    if arrow_type == pa.bool_():
        return pd.BooleanDtype()
    if arrow_type == pa.string():
        return pd.StringDtype()
    return None


def records_frame(records: Iterable[AgentRunRecord | Mapping[str, Any]]) -> pd.DataFrame:
    """Records as a DataFrame with the metrics dtypes (nullable ints, bools and strings)."""
    import pyarrow as pa

    rows = [r.model_dump() if isinstance(r, AgentRunRecord) else dict(r) for r in records]
    schema = arrow_schema()
    table = pa.Table.from_pylist(rows, schema=schema) if rows else schema.empty_table()
    return table.to_pandas(types_mapper=_types_mapper)


# -- context efficiency --------------------------------------------------------------
#: Below this context efficiency (referenced / delivered) the run report, the flow run's log,
#: ``agentrt metrics summary`` and ``agentrt metrics recommend`` warn (docs/metrics.md).
LOW_EFFICIENCY = 0.5


def cited_paths(output: Any) -> set[str]:
    """Every path an output cites in its fields: the values of ``path``/``paths``/``file``/
    ``files``/``filename`` keys at any depth (findings' ``path``, a ``files`` list, items'
    ``path``)."""
    from agentrt.agents.citations import citations

    return {c.path for c in citations(output, text=False)}


def referenced_tokens(delivered_items: Iterable[Any], output: Any, *, located: bool = False) -> int:
    """Tokens of the delivered context items that ``output`` cites in its fields.

    ``delivered_items`` are context items with ``path``, ``tokens`` and optionally
    ``start_line``/``end_line`` (dicts or objects, e.g. ``context_gathering``'s items);
    ``output`` is what the consuming agent(s) returned (any JSON-like value, or a list of
    outputs). A citation with a line counts the items of its file whose range holds the
    line; one without a line, every item of its file; with ``located``, only citations
    with a line count. Prose is not read (:mod:`agentrt.agents.citations` has the rule LLM
    agents use); see docs/metrics.md for what this does and does not measure.
    """
    from agentrt.agents.citations import referenced_tokens as count

    return count(delivered_items, output, text=False, identifiers=False, file_level=not located)


def _context_items(output: Any) -> list[Mapping[str, Any]]:
    items = output.get("items") if isinstance(output, Mapping) else None
    if not isinstance(items, list):
        return []
    return [i for i in items if isinstance(i, Mapping) and "path" in i and "tokens" in i]


# -- building a run's records --------------------------------------------------------
def _split_key(key: str) -> tuple[str, str]:
    agent_id, _, version = key.partition("@")
    return agent_id, version


def _from_attempt(result: RunResult, a: AttemptRecord) -> AgentRunRecord:
    if a.state == "completed":
        state: RecordState = "fallback" if a.fallback_for else "completed"
    else:
        state = "failed"
    return AgentRunRecord(
        **{**dict(a), "flow_run_id": a.flow_run_id or result.flow_run_id, "state": state},
        record_id=f"{result.flow_run_id or 'local'}:{a.step}:{a.agent_id}:{a.attempt}:"
        f"{a.task_run_id or a.started_at.isoformat()}",
        step_state="unknown",
        executed=True,
        final=False,
        cache_hit=False,
        fallback_used=a.fallback_for is not None,
        run_started_at=result.started_at,
    )


def _from_step(
    result: RunResult, step: StepResult, agent_key: str, state: RecordState, executed: bool
) -> AgentRunRecord:
    """A record for a step that left no attempt record: a cache hit, or a skipped step
    (or, if the spool was lost, a step that ran: then the step's own figures are used)."""
    agent_id, version = _split_key(agent_key)
    fell_back = agent_key != step.agent
    error = step.error
    return AgentRunRecord(
        record_id=f"{result.flow_run_id or 'local'}:{step.step}:{agent_id}:{state}",
        workflow=result.workflow,
        flow_run_id=result.flow_run_id,
        task_run_id=step.task_run_ids[-1] if step.task_run_ids else None,
        step=step.step,
        agent_id=agent_id,
        agent_version=version,
        attempt=max(step.attempts, 1) if executed else 0,
        state=state,
        step_state=step.state,
        executed=executed,
        final=True,
        error_type=error.error_type if error else None,
        error_message=error.message if error else None,
        phase=error.phase if error else None,
        phases=step.phases,
        wall_seconds=step.duration_seconds if step.started_at else None,
        tokens_allocated=step.tokens_allocated,
        tokens_delivered=step.tokens_delivered,
        cache_hit=state in ("cached", "fallback") and not executed,
        fallback_used=fell_back,
        fallback_for=step.agent if fell_back else None,
        budget_reason=step.budget_reason,
        started_at=step.started_at or result.started_at,
        ended_at=step.ended_at or step.started_at or result.ended_at,
        run_started_at=result.started_at,
    )


def _step_records(
    result: RunResult, step: StepResult, attempts: list[AttemptRecord]
) -> list[AgentRunRecord]:
    records = [_from_attempt(result, a) for a in attempts]
    succeeded = any(r.state in ("completed", "fallback") for r in records)
    if step.state in SUCCESS_STATES and not succeeded:
        producer = step.used_agent or step.agent
        if step.state == "completed":
            # Ran, but its attempt record is missing (spool not writable): keep the step.
            records.append(_from_step(result, step, producer, "completed", executed=True))
        else:
            # Prefect served the result from its cache: the agent did not execute.
            records.append(_from_step(result, step, producer, step.state, executed=False))
    elif not records:
        state: RecordState = "failed" if step.state == "failed" else "skipped"
        records.append(_from_step(result, step, step.agent, state, executed=False))
    for record in records:
        record.step_state = step.state
        record.final = False
    records[-1].final = True
    winner = next((r for r in reversed(records) if r.state in SUCCESS_STATES), None)
    if winner is not None and "integrate" in step.phases:
        winner.phases = {**winner.phases, "integrate": step.phases["integrate"]}
    return records


def data_consumers(plan: Plan) -> dict[str, set[str]]:
    """Step id → the steps that read its output through an input reference."""
    consumers: dict[str, set[str]] = {}
    for sid, step in plan.steps.items():
        for refs in step.inputs.values():
            for ref in refs:
                if ref.source not in ("params", "literal"):
                    consumers.setdefault(ref.source, set()).add(sid)
    return consumers


def followers(plan: Plan) -> dict[str, set[str]]:
    """Step id → the steps ordered after it (``after:``, ``requires``, input references)."""
    out: dict[str, set[str]] = {}
    for sid, step in plan.steps.items():
        for dep in step.after:
            out.setdefault(dep, set()).add(sid)
    return out


def _consumer_outputs(
    result: RunResult,
    step_id: str,
    consumers: Mapping[str, Iterable[str]] | None,
    after: Mapping[str, Iterable[str]] | None = None,
) -> tuple[list[Any], bool]:
    """Outputs of the steps that received ``step_id``'s output, and whether only their
    located citations (a path with a line) count.

    Its data consumers when the plan is known; when none reads it, the steps ordered after
    it (``after``), whose located citations only count: they waited for the context but read
    the repository themselves, so a finding inside a delivered span is evidence the span
    was relevant, a file named in passing is not. Without the plan, every step of a later
    level (the only ones that can have read it)."""

    def outputs(readers: set[str]) -> list[Any]:
        return [
            s.output for sid, s in result.steps.items() if sid in readers and s.output is not None
        ]

    if consumers is not None:
        found = outputs(set(consumers.get(step_id, ())))
        if found or after is None:
            return found, False
        return outputs(set(after.get(step_id, ()))), True
    level_of = {sid: n for n, level in enumerate(result.levels) for sid in level}
    mine = level_of.get(step_id)
    readers = {sid for sid, n in level_of.items() if n > mine} if mine is not None else set()
    return outputs(readers), False


def _add_efficiency(
    result: RunResult,
    records: list[AgentRunRecord],
    consumers: Mapping[str, Iterable[str]] | None,
    after: Mapping[str, Iterable[str]] | None = None,
) -> None:
    for record in records:
        if record.state not in SUCCESS_STATES:
            continue
        output = result.steps[record.step].output if record.step in result.steps else None
        items = _context_items(output)
        if record.tokens_delivered is None and items:
            record.tokens_delivered = sum(int(i.get("tokens") or 0) for i in items)
        if record.tokens_referenced is None and items:
            outputs, located = _consumer_outputs(result, record.step, consumers, after)
            if outputs:
                record.tokens_referenced = referenced_tokens(items, outputs, located=located)
        if record.tokens_delivered and record.tokens_referenced is not None:
            record.context_efficiency = round(record.tokens_referenced / record.tokens_delivered, 6)


def build_records(
    result: RunResult,
    attempts: Iterable[AttemptRecord],
    consumers: Mapping[str, Iterable[str]] | None = None,
    after: Mapping[str, Iterable[str]] | None = None,
) -> list[AgentRunRecord]:
    """The metrics records of one run: its attempts, classified, and the steps that did not
    execute; fallback attempts marked, final states set, context efficiency computed.

    ``consumers`` (step → steps reading its output, see :func:`data_consumers`) says whose
    citations count towards a context deliverer's referenced tokens; ``after`` (step →
    steps ordered after it, see :func:`followers`) are its audience when none reads it
    (located citations only); without ``consumers``, every step of a later level counts.
    """
    by_step: dict[str, list[AttemptRecord]] = {}
    for a in attempts:
        by_step.setdefault(a.step, []).append(a)
    records: list[AgentRunRecord] = []
    for sid, step in result.steps.items():
        mine = sorted(by_step.pop(sid, []), key=lambda a: (a.started_at, a.attempt))
        records.extend(_step_records(result, step, mine))
    # Attempts of steps the result does not know (should not happen): keep, not guess.
    for leftovers in by_step.values():
        for a in leftovers:
            record = _from_attempt(result, a)
            record.step_state = record.state
            records.append(record)
    _add_efficiency(result, records, consumers, after)
    return records


def read_spool(spool_dir: Path) -> list[AttemptRecord]:
    """The attempt records in a spool folder (unreadable files are logged and skipped)."""
    attempts: list[AttemptRecord] = []
    for path in sorted(spool_dir.glob("*.json")):
        try:
            attempts.append(AttemptRecord.model_validate_json(path.read_bytes()))
        except (OSError, ValidationError) as exc:
            log.warning("skipping unreadable attempt record %s: %s", path, exc)
    return attempts


# -- storage -------------------------------------------------------------------------
def run_file(result: RunResult, root: Path | None = None) -> Path:
    """Where the records of ``result`` live: ``runs/<YYYY-MM-DD>/<flow_run_id>.parquet``."""
    root = root or metrics_dir()
    started = result.started_at.astimezone(UTC)
    name = result.flow_run_id or f"local-{started:%Y%m%dT%H%M%S%f}"
    return root / "runs" / f"{started:%Y-%m-%d}" / f"{name}.parquet"


def _write_atomic(records: Sequence[AgentRunRecord], target: Path) -> None:
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    target.parent.mkdir(parents=True, exist_ok=True)
    # Hidden (dot) name: pyarrow's folder reader skips it, so readers never see a partial
    # file; pid + uuid keep concurrent writers apart.
    tmp = target.parent / f".{target.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        # Through Arrow's JSON reader: building arrays from Python objects makes pyarrow
        # import pandas, ~0.4 s of a cached run's ~3 s CPU (python -m bench.server_runs).
        lines = b"".join(r.model_dump_json().encode() + b"\n" for r in records)
        schema = arrow_schema()
        options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
        table = pj.read_json(io.BytesIO(lines), parse_options=options)
        pq.write_table(table.select(schema.names).replace_schema_metadata(schema.metadata), tmp)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def retention_days() -> int | None:
    """``AGENTRT_METRICS_RETENTION_DAYS`` (default 90); ``0`` keeps records forever."""
    raw = os.environ.get("AGENTRT_METRICS_RETENTION_DAYS", "").strip()
    if not raw:
        return DEFAULT_RETENTION_DAYS
    try:
        days = int(raw)
    except ValueError:
        log.warning(
            "AGENTRT_METRICS_RETENTION_DAYS=%r is not a whole number of days; using %d",
            raw,
            DEFAULT_RETENTION_DAYS,
        )
        return DEFAULT_RETENTION_DAYS
    return days if days > 0 else None


def prune(root: Path | None = None, days: int | None = None, *, today: date | None = None) -> int:
    """Delete record files in day folders older than ``days`` (default: the retention
    setting), and spools of runs that never finalized; return how many record files went.
    Safe to run from concurrent flows."""
    root = root or metrics_dir()
    days = retention_days() if days is None else days
    runs = root / "runs"
    if not days or not runs.is_dir():
        return 0
    cutoff = (today or datetime.now(UTC).date()) - timedelta(days=days)
    removed = 0
    # Spools of runs that died before finalizing: nothing will ever read them.
    for name in ("spool", "_spool"):
        for folder in (root / name).glob("*/"):
            with contextlib.suppress(OSError):  # gone already (a concurrent prune)
                if datetime.fromtimestamp(folder.stat().st_mtime, UTC).date() < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
    for folder in runs.iterdir():
        day = _folder_date(folder.name)
        if day is None or day >= cutoff or not folder.is_dir():
            continue
        for file in folder.glob("*.parquet"):
            with contextlib.suppress(FileNotFoundError):
                file.unlink()
                removed += 1
        with contextlib.suppress(OSError):  # not empty (a writer's temp file) or gone
            folder.rmdir()
    return removed


def _folder_date(name: str) -> date | None:
    try:
        return date.fromisoformat(name)
    except ValueError:
        return None


def finalize_run(
    result: RunResult,
    spool_dir: Path | str | None,
    plan: Plan | None = None,
    attempts: Iterable[AttemptRecord] = (),
) -> Path | None:
    """Write the run's metrics file from its spool and result; remove the spool.

    Call once at the end of every flow run. With the run's ``plan``, a context deliverer's
    referenced tokens count only the citations of the steps that read its output.
    ``attempts`` are the records the spool held in memory (``agentrt.flows.lifecycle.hold_spool``);
    they join those of the spool's files.
    Idempotent: if the run's file already exists it is returned as is (and a leftover spool
    removed). Never raises: metrics must not fail a run, so problems are logged and
    ``None`` is returned.
    """
    return finalize_run_records(result, spool_dir, plan, attempts)[0]


def finalize_run_records(
    result: RunResult,
    spool_dir: Path | str | None,
    plan: Plan | None = None,
    attempts: Iterable[AttemptRecord] = (),
) -> tuple[Path | None, list[AgentRunRecord] | None]:
    """:func:`finalize_run`, also returning the records it wrote (``None`` when it wrote
    none, or the file already existed): the metrics artifact and the efficiency warnings
    are built from them instead of reading the file back."""
    try:
        target = run_file(result)
        spool = Path(spool_dir) if spool_dir else None
        if target.exists():
            if spool is not None:
                shutil.rmtree(spool, ignore_errors=True)
            return target, None
        attempts = [*attempts, *(read_spool(spool) if spool is not None and spool.is_dir() else [])]
        consumers = data_consumers(plan) if plan is not None else None
        after = followers(plan) if plan is not None else None
        records = build_records(result, attempts, consumers, after)
        if not records:
            return None, None
        _write_atomic(records, target)
        if spool is not None:
            shutil.rmtree(spool, ignore_errors=True)
        prune(target.parents[2])
        return target, records
    except Exception:
        log.warning("metrics for flow run %s not written", result.flow_run_id, exc_info=True)
        return None, None


# -- loading -------------------------------------------------------------------------
_RELATIVE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(
    since: str | datetime | date | timedelta, *, now: datetime | None = None
) -> datetime:
    """``7d``, ``12h``, ``30m``, ``2w``, a date (``2026-11-01``) or an ISO datetime → UTC."""
    now = now or datetime.now(UTC)
    if isinstance(since, timedelta):
        return now - since
    if isinstance(since, datetime):
        return since if since.tzinfo else since.replace(tzinfo=UTC)
    if isinstance(since, date):
        return datetime(since.year, since.month, since.day, tzinfo=UTC)
    match = _RELATIVE.match(since)
    if match:
        return now - timedelta(**{_UNITS[match.group(2).lower()]: int(match.group(1))})
    try:
        return parse_since(datetime.fromisoformat(since.strip()))
    except ValueError:
        raise MetricsError(
            f"--since {since!r}: use a duration like 7d, 12h, 30m or 2w, or a date like "
            "2026-11-01 (or an ISO datetime)"
        ) from None


def record_files(path: Path | str | None = None) -> list[Path]:
    """The record files under a metrics folder (or its ``runs`` folder, or one file)."""
    root = Path(path) if path is not None else metrics_dir()
    if root.is_file():
        return [root]
    runs = root / "runs" if (root / "runs").is_dir() else root
    if not runs.is_dir():
        return []
    return sorted(
        p
        for p in runs.rglob("*.parquet")
        if not any(part.startswith((".", "_")) for part in p.relative_to(runs).parts)
    )


def _read_tables(files: list[Path]) -> pa.Table:
    import pyarrow as pa
    import pyarrow.dataset as pads

    try:
        return pads.dataset(
            [str(f) for f in files], schema=arrow_schema(), format="parquet"
        ).to_table()
    except (pa.ArrowException, OSError):
        pass
    # One bad file must not hide the others: read one by one, skipping what fails.
    tables = []
    for file in files:
        try:
            tables.append(
                pads.dataset(str(file), schema=arrow_schema(), format="parquet").to_table()
            )
        except (pa.ArrowException, OSError) as exc:
            warnings.warn(
                f"skipping unreadable metrics file {file}: {exc}", MetricsWarning, stacklevel=3
            )
    return pa.concat_tables(tables) if tables else arrow_schema().empty_table()


def load_records(
    path: Path | str | None = None,
    since: str | datetime | date | timedelta | None = None,
    workflow: str | None = None,
) -> pd.DataFrame:
    """All metrics records under ``path`` (default: ``metrics_dir()``), oldest first.

    ``since`` keeps records of runs started at or after it (see :func:`parse_since`);
    ``workflow`` keeps one workflow's. A missing or empty folder gives an empty frame with
    the record columns.
    """
    import pandas as pd

    cutoff = parse_since(since) if since is not None else None
    files = record_files(path)
    if cutoff is not None:
        # Day folders older than the cutoff's day cannot hold matching runs.
        files = [
            f for f in files if (day := _folder_date(f.parent.name)) is None or day >= cutoff.date()
        ]
    table = _read_tables(files) if files else arrow_schema().empty_table()
    frame = table.to_pandas(types_mapper=_types_mapper)
    if cutoff is not None:
        frame = frame[frame["run_started_at"] >= pd.Timestamp(cutoff)]
    if workflow is not None:
        frame = frame[frame["workflow"] == workflow]
    order = ["run_started_at", "started_at", "step", "attempt"]
    return frame.sort_values(order, kind="stable").reset_index(drop=True)


# -- summary -------------------------------------------------------------------------
def invocations(records: pd.DataFrame) -> pd.DataFrame:
    """One row per agent per step per run: its attempts rolled up.

    ``ran`` means the agent executed or was served from the cache (steps skipped before
    they started have ``ran`` false); ``succeeded`` that one of its records succeeded;
    ``fell_back`` that it failed and a fallback agent took over the step.
    """
    import pandas as pd

    columns = [
        "run", "workflow", "step", "agent_id", "agent_version", "attempts", "ran", "succeeded",
        "retried", "cache_hit", "fell_back", "is_fallback", "started_at",
    ]  # fmt: skip
    if records.empty:
        return pd.DataFrame(columns=columns)
    df = records.copy()
    df["run"] = (
        df["flow_run_id"]
        .astype("object")
        .where(df["flow_run_id"].notna(), df["run_started_at"].astype(str))
    )
    df["_success"] = df["state"].isin(list(SUCCESS_STATES))
    df["_executed"] = df["executed"].fillna(False).astype(bool)
    df["_cache"] = df["cache_hit"].fillna(False).astype(bool)
    df["_fallback"] = df["fallback_used"].fillna(False).astype(bool)
    df["_fell_back"] = (df["step_state"] == "fallback").fillna(False) & ~df["_fallback"]
    grouped = df.groupby(["run", "step", "agent_id"], sort=False, dropna=False)
    out = grouped.agg(
        workflow=("workflow", "first"),
        agent_version=("agent_version", "last"),
        attempts=("_executed", "sum"),
        succeeded=("_success", "any"),
        cache_hit=("_cache", "any"),
        fell_back=("_fell_back", "any"),
        is_fallback=("_fallback", "any"),
        started_at=("started_at", "min"),
    ).reset_index()
    out["ran"] = (out["attempts"] > 0) | out["cache_hit"]
    out["retried"] = out["attempts"] > 1
    return out[columns]


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _quantile(values: pd.Series, q: float) -> float | None:
    values = values.dropna()
    return round(float(values.quantile(q)), 4) if len(values) else None


def _sum_or_none(values: pd.Series) -> int | None:
    values = values.dropna()
    return int(values.sum()) if len(values) else None


def summarize(records: pd.DataFrame) -> pd.DataFrame:
    """Per agent: runs, success / retry / fallback / cache-hit rates, p50/p95 wall time,
    tokens and context efficiency (definitions in docs/metrics.md). Empty in, empty out."""
    import pandas as pd

    columns = [
        "agent_id", "versions", "workflows", "runs", "skipped", "attempts", "success_rate",
        "retry_rate", "fallback_rate", "cache_hit_rate", "p50_wall_s", "p95_wall_s",
        "p95_peak_memory_mb", "tokens_allocated_mean", "tokens_delivered_mean",
        "llm_input_tokens", "llm_output_tokens", "cost_usd", "context_efficiency",
    ]  # fmt: skip
    if records.empty:
        return pd.DataFrame(columns=columns)
    calls = invocations(records)
    rows = []
    for agent_id, mine in records.groupby("agent_id", sort=True):
        ran = calls[(calls["agent_id"] == agent_id) & calls["ran"]]
        executed = mine[mine["executed"].fillna(False).astype(bool)]
        as_primary = ran[~ran["is_fallback"]]
        useful = mine[(mine["tokens_delivered"].fillna(0) > 0) & mine["tokens_referenced"].notna()]
        rows.append(
            {
                "agent_id": agent_id,
                "versions": ", ".join(sorted(mine["agent_version"].dropna().unique())),
                "workflows": ", ".join(sorted(mine["workflow"].dropna().unique())),
                "runs": len(ran),
                "skipped": int((calls["agent_id"] == agent_id).sum()) - len(ran),
                "attempts": len(executed),
                "success_rate": _ratio(ran["succeeded"].sum(), len(ran)),
                "retry_rate": _ratio(ran["retried"].sum(), len(ran)),
                "fallback_rate": _ratio(as_primary["fell_back"].sum(), len(as_primary)),
                "cache_hit_rate": _ratio(ran["cache_hit"].sum(), len(ran)),
                "p50_wall_s": _quantile(executed["wall_seconds"], 0.5),
                "p95_wall_s": _quantile(executed["wall_seconds"], 0.95),
                "p95_peak_memory_mb": _quantile(executed["peak_memory_mb"], 0.95),
                "tokens_allocated_mean": _mean(mine["tokens_allocated"]),
                "tokens_delivered_mean": _mean(mine["tokens_delivered"]),
                "llm_input_tokens": _sum_or_none(mine["llm_input_tokens"]),
                "llm_output_tokens": _sum_or_none(mine["llm_output_tokens"]),
                "cost_usd": _cost_or_none(mine["cost_usd"]),
                "context_efficiency": _ratio(
                    float(useful["tokens_referenced"].sum()),
                    float(useful["tokens_delivered"].sum()),
                ),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def _cost_or_none(values: pd.Series) -> float | None:
    """The sum of the known costs; None when none is known (unknown, not free)."""
    values = values.dropna()
    return round(float(values.sum()), 9) if len(values) else None


def _llm_calls(records: pd.DataFrame) -> pd.Series:
    """Executed attempts that called a model (they name it, or report LLM tokens)."""
    executed = records["executed"].fillna(False).astype(bool)
    called = (
        records["llm_model"].notna()
        | records["llm_input_tokens"].notna()
        | records["llm_output_tokens"].notna()
    )
    return executed & called


def cost_summary(
    records: pd.DataFrame, by: Literal["workflow", "agent"] = "workflow"
) -> pd.DataFrame:
    """What LLM calls cost, per workflow (``by="workflow"``) or per agent: runs, LLM calls
    (executed attempts that called a model), their input and output tokens, ``cost_usd``
    (the sum of the priced calls; null when no call was priced) and ``cost_per_run``, and
    ``unpriced_calls``: calls whose model has no known price (their tokens count, their
    cost is not in ``cost_usd``). Rows for workflows or agents without LLM calls too (0
    calls, null cost). Empty in, empty out."""
    import pandas as pd

    key = "workflow" if by == "workflow" else "agent_id"
    columns = [
        key, "runs", "llm_calls", "llm_input_tokens", "llm_output_tokens", "cost_usd",
        "cost_per_run", "unpriced_calls", "models",
    ]  # fmt: skip
    if records.empty:
        return pd.DataFrame(columns=columns)
    llm = _llm_calls(records)
    rows = []
    for name, mine in records.groupby(key, sort=True):
        calls = mine[llm.loc[mine.index]]
        runs = int(mine["flow_run_id"].astype("object").fillna("").nunique())
        cost = _cost_or_none(calls["cost_usd"])
        rows.append(
            {
                key: name,
                "runs": runs,
                "llm_calls": len(calls),
                "llm_input_tokens": _sum_or_none(calls["llm_input_tokens"]),
                "llm_output_tokens": _sum_or_none(calls["llm_output_tokens"]),
                "cost_usd": cost,
                "cost_per_run": round(cost / runs, 9) if cost is not None and runs else None,
                "unpriced_calls": int(calls["cost_usd"].isna().sum()),
                "models": ", ".join(sorted(calls["llm_model"].dropna().unique())),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def _mean(values: pd.Series) -> float | None:
    values = values.dropna()
    return round(float(values.mean()), 1) if len(values) else None


def _below(value: float, threshold: float) -> str:
    """``15% < 50%``: a share under its threshold, with a decimal where whole percents
    would read as equal (``49.6% < 50%``, not ``50% < 50%``)."""
    shown = f"{value:.0%}"
    if round(value * 100) >= round(threshold * 100):
        shown = f"{math.floor(value * 1000) / 10:.1f}%"
    return f"{shown} < {threshold:.0%}"


class EfficiencyWarning(BaseModel):
    """Context efficiency below :data:`LOW_EFFICIENCY`: one step of a run, or one agent
    over the records."""

    agent_id: str
    step: str | None = None
    referenced: int
    delivered: int
    efficiency: float
    runs: int = 1

    def render(self) -> str:
        where = f"step {self.step} ({self.agent_id})" if self.step else self.agent_id
        over = f" over {self.runs} runs" if self.runs > 1 else ""
        return (
            f"low context efficiency: {where} had {self.referenced:,} of {self.delivered:,} "
            f"delivered context tokens referenced ({_below(self.efficiency, LOW_EFFICIENCY)})"
            f"{over}; lower its context.optimal_tokens or sharpen its "
            "query (`agentrt metrics recommend`)"
        )


def low_efficiency(
    records: pd.DataFrame | Iterable[AgentRunRecord | Mapping[str, Any]],
    *,
    by: Literal["step", "agent"] = "agent",
    threshold: float = LOW_EFFICIENCY,
) -> list[EfficiencyWarning]:
    """Steps (``by="step"``: one run's records) or agents whose context efficiency,
    Σ referenced / Σ delivered over the successful rows where both are known, is below
    ``threshold``. Null efficiency (use unknown) never warns."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in plain_rows(records):
        if (
            row["state"] in SUCCESS_STATES
            and (row["tokens_delivered"] or 0) > 0
            and row["tokens_referenced"] is not None
        ):
            key = (row["step"], row["agent_id"]) if by == "step" else (row["agent_id"],)
            groups.setdefault(tuple(map(str, key)), []).append(row)
    out = []
    for key, rows in sorted(groups.items()):
        referenced = int(sum(r["tokens_referenced"] for r in rows))
        delivered = int(sum(r["tokens_delivered"] for r in rows))
        efficiency = referenced / delivered
        if efficiency >= threshold:
            continue
        step, agent_id = key if by == "step" else (None, key[0])
        out.append(
            EfficiencyWarning(
                agent_id=agent_id,
                step=step,
                referenced=referenced,
                delivered=delivered,
                efficiency=round(efficiency, 6),
                runs=len({r["flow_run_id"] for r in rows}),
            )
        )
    return out


def plain_rows(
    records: pd.DataFrame | Iterable[AgentRunRecord | Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Records as rows of plain values (``None`` for missing); pandas only for a DataFrame."""
    if type(records).__name__ == "DataFrame":  # no pandas import to ask isinstance
        return jsonable(records)  # type: ignore[arg-type]
    rows = [r.model_dump() if isinstance(r, AgentRunRecord) else dict(r) for r in records]
    return [{c: row.get(c) for c in COLUMNS} for row in rows]


def log_low_efficiency(warnings_: Sequence[EfficiencyWarning], logger: Any = None) -> None:
    """One warning line per low-efficiency step on ``logger`` (the flow run's logger when
    called inside a flow run, else the ``agentrt.metrics`` logger)."""
    if not warnings_:
        return
    if logger is None:
        try:
            from prefect.logging import get_run_logger

            logger = get_run_logger()
        except Exception:
            logger = log
    for warning in warnings_:
        logger.warning(warning.render())


# -- recommendations -----------------------------------------------------------------
@dataclass(frozen=True)
class Thresholds:
    """When observed usage is strong enough evidence for a manifest change."""

    min_runs: int = 3
    """Successful runs with a budget before proposing ``optimal_tokens``."""
    underuse_ratio: float = 0.5
    """Propose less when even the p95 run used at most this share of its allocation."""
    ceiling_ratio: float = 0.95
    """A run "hit the ceiling" when it used at least this share of its allocation..."""
    ceiling_share: float = 0.5
    """...and the agent hits it in at least this share of its runs."""
    headroom: float = 1.25
    """Proposed ``optimal_tokens`` = p95 used x headroom, rounded up to ``round_to``."""
    raise_factor: float = 1.5
    round_to: int = 500
    min_retries: int = 3
    """Retried attempts seen before judging an agent's retries."""
    retry_failure_share: float = 0.5
    cache_min_runs: int = 5
    """Runs without a single cache hit before proposing to turn its cache off."""
    low_efficiency: float = LOW_EFFICIENCY
    """Propose less context when Σ referenced / Σ delivered is below this..."""
    efficiency_quantile: float = 0.9
    """...namely this quantile of the referenced tokens (over ``min_runs`` runs at least)."""


class Recommendation(BaseModel):
    """A proposed manifest change, with the observations behind it."""

    agent_id: str
    kind: Literal[
        "lower_optimal_tokens",
        "raise_optimal_tokens",
        "add_fallback",
        "disable_cache",
        "low_context_efficiency",
    ]
    field: str = Field(description="The manifest field to change.")
    current: str | None
    proposed: str
    evidence: str
    runs: int = Field(description="How many observations the evidence rests on.")


def _round_up(value: float, step: int) -> int:
    return max(step, math.ceil(value / step) * step)


def _succeeded(records: pd.DataFrame) -> pd.Series:
    """Executed attempts that produced the step's output (completed, or as its fallback)."""
    return records["executed"].fillna(False).astype(bool) & records["state"].isin(
        ["completed", "fallback"]
    )


def _budget_proposals(
    records: pd.DataFrame, manifests: Mapping[str, AgentManifest], t: Thresholds
) -> list[Recommendation]:
    ok = records[
        _succeeded(records)
        & (records["tokens_allocated"].fillna(0) > 0)
        & records["tokens_delivered"].notna()
    ]
    out = []
    for agent_id, mine in ok.groupby("agent_id", sort=True):
        if len(mine) < t.min_runs:
            continue
        allocated = mine["tokens_allocated"].astype(float)
        used = mine["tokens_delivered"].astype(float)
        usage = used / allocated
        manifest = manifests.get(agent_id)
        optimal = manifest.context.optimal_tokens if manifest else None
        current = optimal or int(allocated.median())
        hits = int((usage >= t.ceiling_ratio).sum())
        if hits / len(mine) >= t.ceiling_share:
            proposed = _round_up(current * t.raise_factor, t.round_to)
            out.append(
                Recommendation(
                    agent_id=agent_id,
                    kind="raise_optimal_tokens",
                    field="context.optimal_tokens",
                    current=str(optimal) if optimal is not None else None,
                    proposed=str(proposed),
                    evidence=(
                        f"used >= {t.ceiling_ratio:.0%} of its allocation in {hits} of "
                        f"{len(mine)} runs (median {int(used.median()):,} of "
                        f"{int(allocated.median()):,} tokens); if the workflow's "
                        "budget.total_tokens is what limits it, raise that instead"
                    ),
                    runs=len(mine),
                )
            )
            continue
        p95_used = float(used.quantile(0.95))
        p95_usage = float(usage.quantile(0.95))
        proposed = _round_up(p95_used * t.headroom, t.round_to)
        if p95_usage <= t.underuse_ratio and proposed < current:
            out.append(
                Recommendation(
                    agent_id=agent_id,
                    kind="lower_optimal_tokens",
                    field="context.optimal_tokens",
                    current=str(optimal) if optimal is not None else None,
                    proposed=str(proposed),
                    evidence=(
                        f"p95 used {int(p95_used):,} of a median {int(allocated.median()):,} "
                        f"allocated tokens ({p95_usage:.0%}) over {len(mine)} runs; the rest "
                        "of the budget could go to other agents"
                    ),
                    runs=len(mine),
                )
            )
    return out


def _efficiency_proposals(
    records: pd.DataFrame, manifests: Mapping[str, AgentManifest], t: Thresholds
) -> list[Recommendation]:
    """Lower ``optimal_tokens`` to the p90 of the referenced tokens when little of the
    delivered context is referenced (docs/metrics.md)."""
    known = records[
        _succeeded(records)
        & (records["tokens_delivered"].fillna(0) > 0)
        & records["tokens_referenced"].notna()
    ]
    out = []
    for agent_id, mine in known.groupby("agent_id", sort=True):
        if len(mine) < t.min_runs:
            continue
        referenced = mine["tokens_referenced"].astype(float)
        delivered = mine["tokens_delivered"].astype(float)
        efficiency = float(referenced.sum() / delivered.sum())
        if efficiency >= t.low_efficiency:
            continue
        manifest = manifests.get(agent_id)
        optimal = manifest.context.optimal_tokens if manifest else None
        current = optimal or int(mine["tokens_allocated"].dropna().median() or 0) or None
        p_ref = float(referenced.quantile(t.efficiency_quantile))
        proposed = _round_up(p_ref, t.round_to)
        if current is not None and proposed >= current:
            continue
        q = f"p{round(t.efficiency_quantile * 100)}"
        out.append(
            Recommendation(
                agent_id=str(agent_id),
                kind="low_context_efficiency",
                field="context.optimal_tokens",
                current=str(optimal) if optimal is not None else None,
                proposed=str(proposed),
                evidence=(
                    f"context efficiency {_below(efficiency, t.low_efficiency)}: "
                    f"{int(referenced.sum()):,} of {int(delivered.sum()):,} delivered tokens "
                    f"referenced; lower optimal_tokens to the {q} of referenced tokens: "
                    f"{int(p_ref):,} ({q} over {len(mine)} runs), rounded up to {t.round_to}"
                ),
                runs=len(mine),
            )
        )
    return out


def _retry_proposals(
    records: pd.DataFrame, manifests: Mapping[str, AgentManifest], t: Thresholds
) -> list[Recommendation]:
    executed = records[records["executed"].fillna(False).astype(bool)]
    out = []
    for agent_id, mine in executed.groupby("agent_id", sort=True):
        retries = mine[mine["attempt"].fillna(0) > 1]
        if len(retries) < t.min_retries:
            continue
        failed = retries[retries["state"] == "failed"]
        share = len(failed) / len(retries)
        if share < t.retry_failure_share:
            continue
        errors = failed["error_type"].dropna().value_counts()
        kinds = ", ".join(f"{name} x{count}" for name, count in errors.items()) or "unknown"
        won = mine.loc[mine["state"] != "failed", "attempt"].dropna()
        best = int(won.max()) if len(won) else None
        manifest = manifests.get(agent_id)
        has_fallbacks = bool(manifest and manifest.fallbacks)
        retry_max = manifest.retries.max if manifest else None
        suggested_max = max(0, best - 1) if best else 0
        evidence = f"{len(failed)} of {len(retries)} retries failed ({kinds}); " + (
            f"retries succeeded at most on attempt {best}"
            if best and best > 1
            else "no retry ever succeeded"
        )
        out.append(
            Recommendation(
                agent_id=agent_id,
                kind="add_fallback",
                field="retries.max" if has_fallbacks else "fallbacks",
                current=(str(retry_max) if has_fallbacks else ("[]" if manifest else None)),
                proposed=(
                    str(suggested_max)
                    if has_fallbacks
                    else f"add a fallback agent; retries.max: {suggested_max}"
                ),
                evidence=evidence,
                runs=len(retries),
            )
        )
    return out


def _cache_proposals(
    records: pd.DataFrame, manifests: Mapping[str, AgentManifest], t: Thresholds
) -> list[Recommendation]:
    import pandas as pd

    calls = invocations(records)
    # Only successes are cached, so only they say anything about a cache that never hits.
    calls = calls[calls["ran"] & calls["succeeded"]]
    out = []
    for agent_id, mine in calls.groupby("agent_id", sort=True):
        manifest = manifests.get(agent_id)
        if manifest is not None and not manifest.cache.enabled:
            continue
        if len(mine) < t.cache_min_runs or mine["cache_hit"].any():
            continue
        days = pd.to_datetime(mine["started_at"]).dt.date.nunique()
        out.append(
            Recommendation(
                agent_id=agent_id,
                kind="disable_cache",
                field="cache.enabled",
                current="true" if manifest is not None else None,
                proposed="false (or narrow cache.include to the files that matter)",
                evidence=(
                    f"0 cache hits in {len(mine)} runs over {days} day(s): its inputs never "
                    "repeat, so keying (hashing inputs) and persisting results buys nothing"
                ),
                runs=len(mine),
            )
        )
    return out


def recommend(
    records: pd.DataFrame,
    manifests: Mapping[str, AgentManifest] | None = None,
    thresholds: Thresholds | None = None,
) -> list[Recommendation]:
    """Manifest changes suggested by observed usage, each with its evidence.

    ``manifests`` (agent id → manifest) adds the current values and skips proposals that
    are already in place (e.g. a disabled cache); without it, proposals rest on the records
    alone (and assume the default: cache enabled, no fallbacks).
    """
    if records.empty:
        return []
    manifests = manifests or {}
    t = thresholds or Thresholds()
    efficiency = _efficiency_proposals(records, manifests, t)
    # Low efficiency decides an agent's optimal_tokens: its other budget proposal would
    # contradict (raise) or duplicate (lower on allocation alone) it.
    decided = {p.agent_id for p in efficiency}
    return [
        *efficiency,
        *(p for p in _budget_proposals(records, manifests, t) if p.agent_id not in decided),
        *_retry_proposals(records, manifests, t),
        *_cache_proposals(records, manifests, t),
    ]


# -- export and artifacts ------------------------------------------------------------
ExportFormat = Literal["csv", "parquet", "json"]


def _missing(value: Any) -> bool:
    import pandas as pd

    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float) and math.isnan(value))
    )


def jsonable(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain JSON values: ISO timestamps, ``None`` for every kind of missing."""
    import pandas as pd

    rows = []
    for row in frame.astype(object).to_dict(orient="records"):
        clean = {}
        for key, value in row.items():
            if _missing(value):
                clean[key] = None
            elif isinstance(value, pd.Timestamp | datetime):
                clean[key] = value.isoformat()
            elif hasattr(value, "item"):  # numpy scalars
                clean[key] = value.item()
            else:
                clean[key] = value
        rows.append(clean)
    return rows


def export_records(frame: pd.DataFrame, fmt: str, output: Path | None = None) -> str | None:
    """Write ``frame`` as csv, parquet or json to ``output``; without ``output``, return
    the text (csv, json). Parquet needs an ``output`` path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if fmt not in ("csv", "parquet", "json"):
        raise MetricsError(f"unknown export format {fmt!r}; use csv, parquet or json")
    if fmt == "parquet":
        if output is None:
            raise MetricsError("parquet is binary: pass --output PATH")
        output.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(frame, schema=arrow_schema(), preserve_index=False)
        pq.write_table(table, output)
        return None
    if fmt == "csv":
        text = frame.to_csv(index=False)
    else:
        text = json.dumps(jsonable(frame), indent=1) + "\n"
    if output is None:
        return text
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    return None


if TYPE_CHECKING:
    # Records as a DataFrame, a list of records (or dicts), or a metrics file or folder.
    RecordsLike = pd.DataFrame | Sequence[AgentRunRecord | Mapping[str, Any]] | Path | str

_ARTIFACT_COLUMNS = [
    "step", "agent_id", "agent_version", "attempt", "state", "step_state", "wall_seconds",
    "cpu_seconds", "peak_memory_mb", "tokens_allocated", "tokens_delivered",
    "tokens_referenced", "context_efficiency", "llm_input_tokens", "llm_output_tokens",
    "llm_model", "cost_usd", "cache_hit", "fallback_for", "error_type",
]  # fmt: skip


def artifact_rows(
    records: RecordsLike,
) -> list[dict[str, Any]]:
    """The rows of the agent-metrics table artifact (JSON values only)."""
    if isinstance(records, str | Path):
        records = load_records(records)
    rows = plain_rows(records)
    return [{c: _json_value(row.get(c)) for c in _ARTIFACT_COLUMNS} for row in rows]


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def metrics_artifact_args(
    records: RecordsLike,
    workflow: str,
) -> dict[str, Any]:
    """The keyword arguments of Prefect's ``create_table_artifact`` for a run's metrics
    (pandas work: build them off the event loop, then create the artifact)."""
    key = re.sub(r"[^a-z0-9-]+", "-", f"{workflow}-agent-metrics".lower()).strip("-")[:100]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    return {
        "table": artifact_rows(records),
        "key": key,
        "description": f"Agent metrics of {workflow} ({stamp} UTC): one row per attempt",
    }


def publish_metrics_artifact(
    records: RecordsLike,
    workflow: str,
) -> Any:
    """A Prefect table artifact of a run's agent metrics (call inside the flow run).

    ``records`` is a DataFrame, a list of records, or the Parquet file
    :func:`finalize_run` returned. Returns the artifact's id. In async code, await
    :func:`apublish_metrics_artifact` instead.
    """
    from prefect.artifacts import create_table_artifact

    # Inside an async flow Prefect's dispatcher would hand back an un-awaited coroutine
    # (and create nothing); this function is sync, so ask for the sync implementation.
    from agentrt.flows.prefect_compat import call_sync

    return call_sync(create_table_artifact, **metrics_artifact_args(records, workflow))


async def apublish_metrics_artifact(
    records: RecordsLike,
    workflow: str,
) -> Any:
    """:func:`publish_metrics_artifact` for async code (e.g. the async workflow flow)."""
    from prefect.artifacts import acreate_table_artifact

    return await acreate_table_artifact(**metrics_artifact_args(records, workflow))
