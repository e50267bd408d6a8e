"""From a workflow manifest and the registry to an executable plan.

The plan fixes one version per agent (jointly, so requirements agree), adds steps for
required agents the workflow does not list, turns ``after``, ``requires`` and input
references into edges, and groups steps into topological levels with :mod:`graphlib`.
"""

from __future__ import annotations

import graphlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentrt.agents.diagnostics import ManifestError, Problem, YamlDocument, load_yaml
from agentrt.agents.manifest import parse_requirement
from agentrt.agents.registry import AgentNotFound, RegisteredAgent, Registry, ResolutionError
from agentrt.flows.resources import ResourceTotals, oversized, resource_totals
from agentrt.flows.schemas import input_fields
from agentrt.flows.workflow import WorkflowManifest

__all__ = ["InputRef", "Plan", "PlannedStep", "build_plan"]


@dataclass(frozen=True, slots=True)
class InputRef:
    """Where one input value comes from: a param, an upstream output (path), or a literal."""

    source: str  # "params", a step id, or "literal"
    path: tuple[str, ...] = ()
    value: Any = None

    def describe(self) -> str:
        if self.source == "literal":
            return repr(self.value)
        return ".".join((self.source, *self.path))


@dataclass(slots=True)
class PlannedStep:
    id: str
    agent: RegisteredAgent
    after: set[str] = field(default_factory=set)
    inputs: dict[str, list[InputRef]] = field(default_factory=dict)
    optional: bool = False
    fallbacks: list[RegisteredAgent] = field(default_factory=list)
    implicit: bool = False
    required_steps: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Plan:
    workflow: WorkflowManifest
    source: Path | None
    steps: dict[str, PlannedStep]
    levels: list[list[str]]
    #: Inputs mapped from an upstream field of another type (both schemas known): the
    #: receiving step would fail when the data is delivered. `workflows show` reports them.
    type_problems: list[Problem] = field(default_factory=list)
    #: What the run's agents may hold at once (memory, cores); the driver admits steps
    #: against it (None: no admission).
    resources: ResourceTotals | None = None

    def graph(self) -> dict[str, set[str]]:
        return {sid: set(step.after) for sid, step in self.steps.items()}

    def edges(self) -> list[tuple[str, str]]:
        return sorted((dep, sid) for sid, step in self.steps.items() for dep in step.after)


def _parse_ref(raw: Any, step_ids: set[str], where: str) -> list[InputRef]:
    if isinstance(raw, list):
        return [ref for item in raw for ref in _parse_ref(item, step_ids, where)]
    if isinstance(raw, dict):
        if set(raw) != {"value"}:
            raise ValueError(f"{where}: a literal is written {{value: ...}}")
        return [InputRef("literal", value=raw["value"])]
    if not isinstance(raw, str):
        return [InputRef("literal", value=raw)]
    head, *rest = raw.split(".")
    if head == "params":
        if len(rest) != 1:
            raise ValueError(f"{where}: {raw!r} should be params.NAME")
        return [InputRef("params", tuple(rest))]
    if head in step_ids:
        return [InputRef(head, tuple(rest))]
    known = ", ".join(sorted(step_ids))
    raise ValueError(
        f"{where}: {raw!r} refers to no param or step (steps: {known}); write params.NAME, "
        "STEP.FIELD, or {value: ...} for a literal string"
    )


# A problem before it is located: the key path in the workflow, the field, the message.
_Pending = tuple[tuple[str | int, ...], str, str]


def _located(
    workflow: WorkflowManifest, source: Path | None, pending: list[_Pending]
) -> ManifestError:
    """The problems with the line of each key path in the workflow's file, when it has one."""
    doc: YamlDocument | None = None
    if source is not None:
        try:  # read again: lines are only needed on this error path
            doc = load_yaml(source)
        except ManifestError:
            doc = None
    where = str(source) if source else workflow.name
    return ManifestError(
        [Problem(where, doc.line_of(loc) if doc else None, f, m) for loc, f, m in pending]
    )


def _resolution_problems(
    workflow: WorkflowManifest, registry: Registry, error: ResolutionError
) -> list[_Pending]:
    # Resolving each step alone tells which step a problem comes from; what only the steps
    # together cause (a version conflict between two of them) belongs to `steps`.
    step_of: dict[str, int] = {}
    for i, step in enumerate(workflow.steps):
        try:
            registry.resolve([step.agent])
        except ResolutionError as alone:
            for p in alone.problems:
                step_of.setdefault(p.message, i)
    pending: list[_Pending] = []
    for p in error.problems:
        i = step_of.get(p.message)
        if i is None:
            pending.append((("steps",), "steps", p.message))
        else:
            pending.append((("steps", i, "agent"), f"steps.{i}.agent", p.message))
    return pending


def _json_types(schema: Any) -> set[str] | None:
    """The JSON types a property schema allows (integer counts as number), or None."""
    if not isinstance(schema, dict):
        return None
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        return {"number" if k == "integer" else k for k in kinds}
    if "$ref" in schema:
        return {"object"}
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list):
        found: set[str] = set()
        for option in options:
            kinds = _json_types(option)
            if kinds is None:
                return None
            found |= kinds
        return found
    return None


def _property(agent: RegisteredAgent, which: str, name: str) -> set[str] | None:
    from agentrt.flows.schemas import schema_model

    try:
        schema = schema_model(agent, which)
    except Exception:  # import problems are reported elsewhere
        return None
    if isinstance(schema, type) and hasattr(schema, "model_json_schema"):
        schema = schema.model_json_schema()
    if not isinstance(schema, dict):
        return None
    return _json_types((schema.get("properties") or {}).get(name))


def _type_mismatch(
    steps: dict[str, PlannedStep], planned: PlannedStep, name: str, ref: InputRef
) -> str | None:
    """Why ``STEP.FIELD`` cannot fill input ``name``, when both schemas say so."""
    upstream = steps.get(ref.source)
    if upstream is None or len(ref.path) != 1:
        return None
    have = _property(upstream.agent, "output", ref.path[0])
    want = _property(planned.agent, "input", name)
    if not have or not want or have & want:
        return None
    return (
        f"{ref.describe()} is {'/'.join(sorted(have))} ({upstream.agent.key}'s output) but "
        f"{planned.agent.key}'s input {name} is {'/'.join(sorted(want))}; map a field of the "
        "same type, or change one of the schemas"
    )


def build_plan(workflow: WorkflowManifest, registry: Registry, source: Path | None = None) -> Plan:
    """Resolve agents, edges and levels; raise :class:`ManifestError` listing every problem."""
    problems: list[_Pending] = []
    mismatches: list[_Pending] = []  # reported by `workflows show`; a run fails at delivery

    def fail(loc: tuple[str | int, ...], message: str) -> None:
        problems.append((loc, ".".join(map(str, loc)), message))

    try:
        resolved = registry.resolve([s.agent for s in workflow.steps])
    except ResolutionError as exc:
        raise _located(workflow, source, _resolution_problems(workflow, registry, exc)) from None
    by_id = {a.id: a for a in resolved}
    index = {s.step_id: i for i, s in enumerate(workflow.steps)}

    steps: dict[str, PlannedStep] = {}
    for i, step in enumerate(workflow.steps):
        agent = by_id[parse_requirement(step.agent).name]
        optional = agent.manifest.optional if step.optional is None else step.optional
        steps[step.step_id] = PlannedStep(step.step_id, agent, set(step.after), optional=optional)
        for j, dep in enumerate(step.after):
            if dep not in index:
                problems.append(
                    (("steps", i, "after", j), f"steps.{i}.after", f"unknown step {dep!r}")
                )
    # Required agents the workflow does not list run as implicit steps of their own.
    step_of_agent = {s.agent.id: sid for sid, s in steps.items()}
    for agent in resolved:
        if agent.id not in step_of_agent:
            steps[agent.id] = PlannedStep(agent.id, agent, implicit=True)
            step_of_agent[agent.id] = agent.id
    step_ids = set(steps)
    for sid, planned in steps.items():
        for req in planned.agent.manifest.requirements():
            planned.after.add(step_of_agent[req.name])
            planned.required_steps.add(step_of_agent[req.name])
        for fb in planned.agent.manifest.fallback_requirements():
            try:
                planned.fallbacks.append(registry.get(fb.name, fb.specifier or None))
            except AgentNotFound as exc:
                # An implicit step (a required agent) has no line of its own: its requirer's.
                loc = ("steps", index[sid], "agent") if sid in index else ("steps",)
                problems.append((loc, f"steps.{sid}", f"fallback of {planned.agent.key}: {exc}"))
    for i, step in enumerate(workflow.steps):
        planned = steps[step.step_id]
        for name, raw in step.inputs.items():
            loc = ("steps", i, "inputs", name)
            try:
                refs = _parse_ref(raw, step_ids, f"inputs.{name}")
            except ValueError as exc:
                fail(loc, str(exc).split(": ", 1)[-1])
                continue
            for ref in refs:
                if ref.source == "params" and ref.path[0] not in workflow.params:
                    fail(loc, f"unknown param {ref.path[0]!r}")
                if ref.source not in ("params", "literal"):
                    if ref.source == step.step_id:
                        fail(loc, "a step cannot read its own output")
                    planned.after.add(ref.source)
            planned.inputs[name] = refs
            if len(refs) == 1 and (why := _type_mismatch(steps, planned, name, refs[0])):
                mismatches.append((loc, ".".join(map(str, loc)), why))
    # Unmapped input fields are filled from a param or an upstream step of the same name.
    for sid, planned in steps.items():
        try:
            fields = input_fields(planned.agent)
        except Exception:  # import problems are reported by `agents validate` and at run time
            fields = set()
        for name in fields - set(planned.inputs):
            if name in workflow.params:
                planned.inputs[name] = [InputRef("params", (name,))]
            elif name in steps and name != sid:
                planned.inputs[name] = [InputRef(name)]
                planned.after.add(name)
    # A declaration larger than the whole run's could never start.
    totals = resource_totals(workflow)
    for sid, planned in steps.items():
        loc = ("steps", index[sid], "agent") if sid in index else ("steps",)
        for agent in (planned.agent, *planned.fallbacks):
            for message in oversized(agent, totals):
                problems.append((loc, ".".join(map(str, loc)), message))
    if problems:
        raise _located(workflow, source, problems)
    sorter = graphlib.TopologicalSorter({sid: s.after for sid, s in steps.items()})
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = list(reversed(exc.args[1]))
        # At the first listed step of the cycle (implicit steps have no line).
        first = min((index[sid] for sid in cycle if sid in index), default=None)
        loc: tuple[str | int, ...] = ("steps",) if first is None else ("steps", first)
        message = f"step cycle {' → '.join(cycle)}; remove an edge"
        raise _located(workflow, source, [(loc, ".".join(map(str, loc)), message)]) from None
    levels = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        levels.append(ready)
        sorter.done(*ready)
    plan = Plan(workflow, source, steps, levels, resources=totals)
    if mismatches:
        plan.type_problems = _located(workflow, source, mismatches).problems
    return plan
