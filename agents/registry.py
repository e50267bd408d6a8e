"""The agent registry: discovery, versions, capabilities and dependency resolution.

Agents come from manifest folders (agentrt's own ``agents/manifests/``, folders named in
``AGENTRT_AGENT_PATH`` (``os.pathsep``-separated) or passed in) and from installed
packages' entry points in the group ``agentrt.agents``. An entry point names either a
package (its ``manifests/`` folder is read), a list of manifest mappings, or a function
returning one.
"""

from __future__ import annotations

import difflib
import graphlib
import importlib.metadata
import inspect
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from pydantic import ValidationError

from agentrt.agents.diagnostics import ManifestError, Problem, load_yaml
from agentrt.agents.imports import (
    GENERIC_LLM_ENTRYPOINT,
    EntrypointError,
    ImportPolicy,
    import_object,
    load_callable,
)
from agentrt.agents.manifest import AgentManifest, load_manifest, parse_requirement
from agentrt.errors import AgentrtError

__all__ = [
    "BUILTIN_MANIFESTS",
    "ENTRY_POINT_GROUP",
    "AgentNotFound",
    "RegisteredAgent",
    "Registry",
    "ResolutionError",
]

ENTRY_POINT_GROUP = "agentrt.agents"
BUILTIN_MANIFESTS = Path(__file__).resolve().parent / "manifests"
_MANIFEST_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class RegisteredAgent:
    """A manifest plus where it came from (for messages and import roots)."""

    manifest: AgentManifest
    source: str
    line: int | None = None
    policy: ImportPolicy = field(default_factory=ImportPolicy, compare=False)

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def version(self) -> Version:
        return self.manifest.parsed_version

    @property
    def key(self) -> str:
        return self.manifest.key

    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source


class AgentNotFound(AgentrtError, LookupError):
    """No registered agent matches an id (and version specifier)."""


class ResolutionError(AgentrtError, ValueError):
    """Requirements cannot be satisfied: missing agents, version conflicts or cycles."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class Registry:
    """Every known agent, several versions side by side."""

    def __init__(self) -> None:
        self._agents: dict[str, dict[Version, RegisteredAgent]] = {}
        self.problems: list[Problem] = []

    # -- discovery -----------------------------------------------------------------
    @classmethod
    def discover(
        cls,
        paths: Iterable[str | Path] = (),
        *,
        builtin: bool = True,
        env: bool = True,
        entry_points: bool = True,
    ) -> Registry:
        """Build a registry from the built-in manifests, extra paths, env and entry points.

        Problems (bad manifests, duplicates) are collected in :attr:`problems`, never raised,
        so one broken third-party manifest does not take the others down.
        """
        registry = cls()
        if builtin and BUILTIN_MANIFESTS.is_dir():
            registry.load_path(BUILTIN_MANIFESTS)
        extra = list(paths)
        if env:
            extra += [p for p in os.environ.get("AGENTRT_AGENT_PATH", "").split(os.pathsep) if p]
        for path in extra:
            registry.load_path(path)
        if entry_points:
            registry.load_entry_points()
        return registry

    def load_path(self, path: str | Path, packages: tuple[str, ...] = ()) -> None:
        path = Path(path)
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.suffix in _MANIFEST_SUFFIXES and p.is_file()
            )
        elif path.is_file():
            files = [path]
        else:
            self.problems.append(
                Problem(str(path), None, "", "no such file or folder; fix the agent path")
            )
            return
        for file in files:
            try:
                manifest, line = load_manifest(file)
            except ManifestError as exc:
                self.problems.extend(exc.problems)
                continue
            policy = ImportPolicy(file.parent, packages)
            self.add(RegisteredAgent(manifest, str(file), line, policy))

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        for ep in importlib.metadata.entry_points(group=group):
            source = f"entry point {ep.name} = {ep.value}"
            package = ep.value.split(":")[0].split(".")[0]
            try:
                obj = ep.load()
            except Exception as exc:
                self.problems.append(
                    Problem(source, None, "", f"cannot load: {type(exc).__name__}: {exc}")
                )
                continue
            if isinstance(obj, ModuleType):
                folder = Path(obj.__file__ or "").parent / "manifests"
                self.load_path(folder, packages=(package,))
                continue
            if callable(obj):
                try:
                    obj = obj()
                except Exception as exc:
                    self.problems.append(
                        Problem(source, None, "", f"raised {type(exc).__name__}: {exc}")
                    )
                    continue
            items = obj if isinstance(obj, list | tuple) else [obj]
            for i, item in enumerate(items):
                try:
                    if isinstance(item, str | Path):
                        self.load_path(item, packages=(package,))
                        continue
                    manifest = (
                        item
                        if isinstance(item, AgentManifest)
                        else AgentManifest.model_validate(item)
                    )
                except ValidationError as exc:
                    for err in exc.errors(include_url=False):
                        loc = ".".join(str(p) for p in err["loc"])
                        self.problems.append(Problem(f"{source}[{i}]", None, loc, err["msg"]))
                    continue
                self.add(RegisteredAgent(manifest, source, None, ImportPolicy(None, (package,))))

    def add(self, agent: RegisteredAgent) -> None:
        versions = self._agents.setdefault(agent.id, {})
        existing = versions.get(agent.version)
        if existing is not None and _same_file(existing.source, agent.source):
            return  # the same manifest reached twice (a named path inside a searched folder)
        if existing is not None:
            self.problems.append(
                Problem(
                    agent.source,
                    agent.line,
                    "version",
                    f"duplicate agent {agent.key}: already defined at {existing.where()}; "
                    "bump the version or remove one of them",
                )
            )
            return
        versions[agent.version] = agent

    # -- lookup --------------------------------------------------------------------
    def __iter__(self) -> Iterator[RegisteredAgent]:
        for versions in self._agents.values():
            yield from sorted(versions.values(), key=lambda a: a.version)

    def __len__(self) -> int:
        return sum(len(v) for v in self._agents.values())

    def ids(self) -> list[str]:
        return sorted(self._agents)

    def versions(self, agent_id: str) -> list[RegisteredAgent]:
        return sorted(self._agents.get(agent_id, {}).values(), key=lambda a: a.version)

    def get(self, agent_id: str, spec: str | SpecifierSet | None = None) -> RegisteredAgent:
        """The highest version of ``agent_id`` satisfying ``spec`` (pre-releases only if asked)."""
        if isinstance(spec, str):
            spec = SpecifierSet(spec)
        versions = self._agents.get(agent_id)
        if not versions:
            close = difflib.get_close_matches(agent_id, self.ids(), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise AgentNotFound(f"no agent {agent_id!r} is registered{hint}")
        # PEP 440 semantics: pre-releases only when the specifier names one or nothing else fits.
        candidates = list((spec or SpecifierSet()).filter(versions))
        if not candidates:
            have = ", ".join(str(v) for v in sorted(versions))
            raise AgentNotFound(f"no version of {agent_id!r} satisfies {spec} (available: {have})")
        return versions[max(candidates)]

    def get_requirement(self, text: str | Requirement) -> RegisteredAgent:
        req = parse_requirement(text) if isinstance(text, str) else text
        return self.get(req.name, req.specifier or None)

    def find(self, capability: str | None = None) -> list[RegisteredAgent]:
        """The latest version of every agent (with ``capability``, if given)."""
        latest = [self.get(agent_id) for agent_id in self.ids()]
        if capability is None:
            return latest
        return [a for a in latest if capability in a.manifest.capabilities]

    def capabilities(self) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for agent in self.find():
            for cap in agent.manifest.capabilities:
                index.setdefault(cap, []).append(agent.id)
        return index

    # -- resolution ----------------------------------------------------------------
    def resolve(self, roots: Iterable[str | Requirement]) -> list[RegisteredAgent]:
        """Pick one version per agent for ``roots`` and everything they require, transitively.

        Each agent gets the highest version satisfying every specifier that names it. Returns
        the agents in dependency order (requirements first); raises :class:`ResolutionError`
        listing missing agents, version conflicts and cycles.
        """
        constraints: dict[str, list[tuple[SpecifierSet, str]]] = {}
        chosen: dict[str, RegisteredAgent] = {}
        problems: list[Problem] = []
        queue: list[tuple[Requirement, str]] = [
            (parse_requirement(r) if isinstance(r, str) else r, "the workflow") for r in roots
        ]
        while queue:
            req, who = queue.pop(0)
            asks = constraints.setdefault(req.name, [])
            if (req.specifier, who) in asks:
                # Seen: a workflow of many steps of one agent must not cost O(steps²).
                continue
            asks.append((req.specifier, who))
            combined = SpecifierSet(",".join(str(s) for s, _ in constraints[req.name] if str(s)))
            current = chosen.get(req.name)
            if current is not None and combined.contains(current.version, prereleases=True):
                continue
            try:
                agent = self.get(req.name, combined or None)
            except AgentNotFound as exc:
                if req.name in self._agents and len(constraints[req.name]) > 1:
                    asks = "; ".join(f"{w} wants {s or 'any'}" for s, w in constraints[req.name])
                    have = ", ".join(str(a.version) for a in self.versions(req.name))
                    message = (
                        f"version conflict for {req.name}: {asks}; no version satisfies all "
                        f"(available: {have}); relax one of the specifiers"
                    )
                else:
                    message = f"{exc} (required by {who})"
                problems.append(Problem(who, None, "requires", message))
                continue
            chosen[req.name] = agent
            for sub in agent.manifest.requirements():
                queue.append((sub, agent.where()))
        if problems:
            raise ResolutionError(_dedupe(problems))
        order = graphlib.TopologicalSorter(
            {a.id: [r.name for r in a.manifest.requirements()] for a in chosen.values()}
        )
        try:
            ids = list(order.static_order())
        except graphlib.CycleError as exc:
            cycle = list(reversed(exc.args[1]))
            agent = chosen[cycle[0]]
            raise ResolutionError(
                [
                    Problem(
                        agent.source,
                        agent.line,
                        "requires",
                        f"dependency cycle {' → '.join(cycle)}; remove one of these requirements",
                    )
                ]
            ) from None
        return [chosen[i] for i in ids]

    # -- validation ----------------------------------------------------------------
    def validate(self, *, check_imports: bool = True) -> list[Problem]:
        """Every problem: load errors, duplicates, unresolvable requires/fallbacks, imports."""
        problems = list(self.problems)
        for agent in self:
            m = agent.manifest
            try:
                self.resolve([f"{m.id}=={m.version}"])
            except ResolutionError as exc:
                problems.extend(
                    Problem(agent.source, agent.line, p.field, p.message)
                    if p.file == "the workflow"
                    else p
                    for p in exc.problems
                )
            for fb in m.fallback_requirements():
                try:
                    self.get(fb.name, fb.specifier or None)
                except AgentNotFound as exc:
                    problems.append(Problem(agent.source, agent.line, "fallbacks", str(exc)))
            if isinstance(m.output, dict):
                problems.extend(check_confidence(agent, m.output))
                problems.extend(check_delivered(agent, m.output))
            if m.chunking is not None:
                inline = [ref if isinstance(ref, dict) else None for ref in (m.input, m.output)]
                problems.extend(check_chunking(agent, *inline))
            if check_imports:
                problems.extend(check_agent_imports(agent))
        return _dedupe(problems)


def check_agent_imports(agent: RegisteredAgent) -> list[Problem]:
    """Import the entrypoint and schema models of one agent; report what fails."""
    problems = []
    m = agent.manifest
    generic = m.entrypoint == GENERIC_LLM_ENTRYPOINT
    if m.kind == "python" and generic:
        problems.append(
            Problem(
                agent.source,
                _field_line(agent, "entrypoint"),
                "entrypoint",
                f"{GENERIC_LLM_ENTRYPOINT} runs LLM agents; add `kind: llm` (with model and "
                "prompt), or point entrypoint at your own function (module:function)",
            )
        )
    # An llm agent's entrypoint is its output hook, unless it names the generic runner.
    refs: list[tuple[str, str]] = [] if generic else [("entrypoint", m.entrypoint)]
    refs += [(name, ref) for name, ref in (("input", m.input), ("output", m.output))]
    output_model = input_model = None
    for field_name, ref in refs:
        if not isinstance(ref, str):
            continue
        line = _field_line(agent, field_name)
        try:
            if field_name == "entrypoint":
                fn = load_callable(ref, agent.policy)
                if m.kind == "llm" and (why := _hook_signature_problem(fn)):
                    raise EntrypointError(
                        f"output hook {ref!r} {why}; an llm agent's entrypoint is either "
                        f"{GENERIC_LLM_ENTRYPOINT} (no hook) or a function "
                        "hook(output, inputs, call) returning the output"
                    )
            else:
                model = import_object(ref, agent.policy, what=field_name)
                if not (inspect.isclass(model) and hasattr(model, "model_validate")):
                    raise EntrypointError(f"{field_name} {ref!r} is not a pydantic model class")
                if field_name == "output":
                    output_model = model
                else:
                    input_model = model
        except EntrypointError as exc:
            problems.append(Problem(agent.source, line, field_name, str(exc)))
    if output_model is not None:
        problems.extend(check_confidence(agent, output_model))
        problems.extend(check_delivered(agent, output_model))
    if m.chunking is not None:
        problems.extend(check_chunking(agent, input_model, output_model))
        functions = [(f"merge function for {n!r}", r) for n, r in m.chunking.merge.items()]
        if m.chunking.measure is not None:
            functions.append(("measure function", m.chunking.measure))
        for what, rule in functions:
            if ":" not in rule:
                continue
            try:
                load_callable(rule, agent.policy)
            except EntrypointError as exc:
                problems.append(
                    Problem(
                        agent.source,
                        _field_line(agent, "chunking"),
                        "chunking",
                        f"{what}: {exc}",
                    )
                )
    return problems


def check_chunking(
    agent: RegisteredAgent, input_schema: object, output_schema: object
) -> list[Problem]:
    """``chunking`` must split a field of the input and merge fields of the output (a
    schema that is None or open is not checked)."""
    spec = agent.manifest.chunking
    if spec is None:
        return []
    problems = []
    line = _field_line(agent, "chunking")
    inputs = _schema_fields(input_schema) if input_schema is not None else None
    if inputs is not None and spec.split not in inputs:
        problems.append(
            Problem(
                agent.source,
                line,
                "chunking.split",
                f"{spec.split!r} is not a field of the input ({', '.join(sorted(inputs))}); "
                "split a list or text field of the input",
            )
        )
    outputs = _schema_fields(output_schema) if output_schema is not None else None
    for name in spec.merge:
        if outputs is not None and name not in outputs:
            problems.append(
                Problem(
                    agent.source,
                    line,
                    "chunking.merge",
                    f"{name!r} is not a field of the output ({', '.join(sorted(outputs))}); "
                    "merge output fields only, or remove it",
                )
            )
    return problems


def _hook_signature_problem(fn: object) -> str | None:
    """Why ``fn`` cannot be called as ``hook(output, inputs, call)``, or None."""
    try:
        inspect.signature(fn).bind(None, None, None)  # type: ignore[arg-type]
    except TypeError:
        return "cannot be called with (output, inputs, call)"
    except ValueError:  # no signature (a builtin): let the run decide
        return None
    return None


def _schema_fields(schema: object) -> set[str] | None:
    """The top-level field names of an output schema (a pydantic model or a JSON Schema
    mapping), or None when they cannot be known."""
    if isinstance(schema, dict):
        props = schema.get("properties")
        if schema.get("additionalProperties", True) is not False and not props:
            return None
        return set(props or {})
    fields = getattr(schema, "model_fields", None)
    return set(fields) if isinstance(fields, dict) else None


def check_confidence(agent: RegisteredAgent, output_schema: object) -> list[Problem]:
    """``min_confidence`` needs an output with a ``confidence`` field: without one every run
    of the agent fails its quality check (and falls back)."""
    m = agent.manifest
    if m.min_confidence is None:
        return []
    fields = _schema_fields(output_schema)
    if fields is None or "confidence" in fields:
        return []
    what = m.output if isinstance(m.output, str) else "the inline output schema"
    return [
        Problem(
            agent.source,
            _field_line(agent, "min_confidence"),
            "min_confidence",
            f"the output ({what}) has no confidence field, so every run would fail this "
            "check and fall back; add `confidence: float` to the output, or remove "
            "min_confidence",
        )
    ]


def check_delivered(agent: RegisteredAgent, output_schema: object) -> list[Problem]:
    """``context.delivered`` must name a field of the output (a dotted path, list items by
    index, as ``agentrt.flows.schemas.lookup_field`` reads it): the runtime counts that
    field against the grant, and a path that finds nothing counts 0 tokens, so the token
    contract would check nothing. Parts of the output whose fields cannot be known (open
    schemas, ``Any``, ``$ref``) are not checked."""
    dotted = agent.manifest.context.delivered
    if not dotted:
        return []
    schema: object = output_schema
    walked: list[str] = []
    why = None
    for part in dotted.split("."):
        if schema is None:
            return []
        where = f"field {'.'.join(walked)!r}" if walked else "the output"
        if _is_list(schema):
            if not part.isdigit():
                why = f"{where} is a list: name an item by its index ({'.'.join(walked)}.0)"
                break
            schema = _item_schema(schema)
        else:
            fields = _schema_fields(schema)
            if fields is None:
                return []
            if part not in fields:
                why = (
                    f"{part!r} is not a field of {where} "
                    f"({', '.join(sorted(fields)) or 'it has none'})"
                )
                break
            schema = _field_schema(schema, part)
        walked.append(part)
    if why is None:
        return []
    return [
        Problem(
            agent.source,
            _field_line(agent, "context", "delivered"),
            "context.delivered",
            f"{dotted!r}: {why}; name the output field that holds the context the agent "
            "delivers (the runtime counts it against the grant), or remove context.delivered",
        )
    ]


def _is_list(schema: object) -> bool:
    return (isinstance(schema, tuple) and schema[:1] == ("list",)) or (
        isinstance(schema, dict) and schema.get("type") == "array"
    )


def _field_schema(schema: object, name: str) -> object:
    """The schema of field ``name`` (a pydantic model, a JSON Schema mapping, a list's item
    schema), or None when it cannot be known."""
    if isinstance(schema, dict):
        return (schema.get("properties") or {}).get(name)
    fields = getattr(schema, "model_fields", None)
    info = fields.get(name) if isinstance(fields, dict) else None
    return _annotation_schema(info.annotation) if info is not None else None


def _annotation_schema(annotation: object) -> object:
    """A field's annotation as a schema: the model class, ``list[X]`` as a list of X,
    ``X | None`` as X; None for anything else."""
    import typing

    if inspect.isclass(annotation) and hasattr(annotation, "model_fields"):
        return annotation
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (list, tuple, set, frozenset) and args:
        return ("list", _annotation_schema(args[0]))
    if len(args) == 1:  # Optional[X]
        return _annotation_schema(args[0])
    return None


def _item_schema(schema: object) -> object:
    """The item schema of a list schema (``("list", X)`` or a JSON Schema array)."""
    if isinstance(schema, tuple):
        return schema[1]
    return schema.get("items") if isinstance(schema, dict) else None


def _field_line(agent: RegisteredAgent, *path: str) -> int | None:
    """The manifest line of ``path`` (``"chunking"``, or ``"context", "delivered"``)."""
    if not agent.source.endswith(_MANIFEST_SUFFIXES):
        return agent.line
    try:
        lines = load_yaml(agent.source).lines
    except ManifestError:
        return agent.line
    return lines.get(path, lines.get(path[:1], agent.line))


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[str] = set()
    out = []
    for p in problems:
        if str(p) not in seen:
            seen.add(str(p))
            out.append(p)
    return out


def _same_file(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve() and Path(a).is_file()
    except OSError:
        return False
