"""The agent manifest: what an agent is, what it needs, and how the runtime must treat it.

A manifest is YAML validated by :class:`AgentManifest`; ``agentrt schema`` exports its
JSON Schema. Unknown fields are errors, so a typo never silently changes behaviour.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agentrt.agents.diagnostics import ManifestError, load_yaml, problems_from_validation

__all__ = [
    "MERGE_RULES",
    "AgentManifest",
    "Backoff",
    "CacheSpec",
    "Check",
    "ChunkingSpec",
    "ContextSpec",
    "Resources",
    "RetryPolicy",
    "load_manifest",
    "parse_requirement",
    "split_specifier",
]

_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_ENTRYPOINT = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
_EXCEPTION_NAME = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def _external_ref(schema: Any, path: tuple[str, ...]) -> tuple[str, str] | None:
    """The first ``$ref``/``$dynamicRef`` not starting with ``#``, and where it is."""
    if isinstance(schema, dict):
        for key, item in schema.items():
            if key in ("$ref", "$dynamicRef") and isinstance(item, str):
                if not item.startswith("#"):
                    return ".".join(path), item
            elif found := _external_ref(item, (*path, str(key))):
                return found
    elif isinstance(schema, list):
        for i, item in enumerate(schema):
            if found := _external_ref(item, (*path, str(i))):
                return found
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@lru_cache(maxsize=4096)  # a workflow names the same agents in many steps
def parse_requirement(text: str) -> Requirement:
    """Parse ``agent_id`` or ``agent_id>=1,<2`` into a packaging ``Requirement``
    (shared: do not modify it)."""
    try:
        req = Requirement(text.strip())
    except InvalidRequirement as exc:
        # packaging appends a caret diagram on further lines; a problem is one line.
        reason = (str(exc).splitlines() or ["invalid"])[0]
        raise ValueError(
            f"{text!r} is not an agent requirement: {reason}; write it as 'agent_id' or "
            "'agent_id>=1,<2' (PEP 440 specifiers)"
        ) from None
    if req.extras or req.marker or req.url:
        raise ValueError(
            f"{text!r}: extras, markers and URLs are not allowed in agent requirements"
        )
    if not _ID.match(req.name):
        raise ValueError(f"{req.name!r} is not a valid agent id (lowercase letters, digits, _)")
    return req


_SPECIFIER_START = re.compile(r"^\s*(===|==|!=|~=|<=|>=|<|>)\s*[0-9*]")


def split_specifier(items: list[Any], i: int, field: str = "requires") -> str | None:
    """When ``items[i]`` is a bare version specifier (``<2``) after an agent requirement, YAML
    split one requirement at its comma (``[context_gathering>=1,<2]`` is a list of two
    items): the message that says so and how to write it; else None."""
    text = items[i]
    if not isinstance(text, str) or not _SPECIFIER_START.match(text):
        return None
    # Back over the items YAML split off, to the requirement they belong to.
    start = i
    while start > 0 and _SPECIFIER_START.match(str(items[start - 1])):
        start -= 1
    if start == 0:
        return (
            f"{text!r} is a version specifier without an agent id; write the requirement "
            "as 'agent_id>=1,<2' (quoted)"
        )
    start -= 1
    whole = ",".join(str(t).strip() for t in items[start : i + 1])
    return (
        f"{text!r} is not an agent: YAML split the requirement at its comma; quote it: "
        f"'{whole}' ({field}: ['{whole}'])"
    )


class Backoff(_Strict):
    """Exponential backoff between attempts: ``base * 2**n`` seconds, plus jitter."""

    base: Annotated[float, Field(ge=0, description="Delay before the first retry, in seconds.")] = (
        1.0
    )
    jitter: Annotated[
        float,
        Field(ge=0, le=10, description="Prefect's retry_jitter_factor: random extra delay factor."),
    ] = 0.0


class RetryPolicy(_Strict):
    max: Annotated[int, Field(ge=0, le=50, description="Retries after the first attempt.")] = 0
    backoff: Backoff = Backoff()
    retry_on: list[str] = Field(
        default_factory=lambda: ["TimeoutError", "ConnectionError"],
        description="Exception class names (or a base class name) worth retrying; "
        "everything else fails at once.",
    )

    @field_validator("retry_on")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _EXCEPTION_NAME.match(name):
                raise ValueError(f"{name!r} is not an exception class name (e.g. TimeoutError)")
        return value


#: The ``context.sources`` name that asks for the output of every step this one depends on.
UPSTREAM = "upstream"


class ContextSpec(_Strict):
    sources: list[str] = Field(
        default_factory=list,
        description=(
            "Where context comes from: input fields that hold a repository (e.g. repo); "
            "`upstream` (every upstream step's output) or step ids: those outputs reach the "
            "agent as ctx.upstream (and an LLM agent's prompt, within the grant)."
        ),
    )
    query: str | None = Field(None, description="What to look for; defaults to the workflow task.")
    change: str | None = Field(
        None,
        description=(
            "Input field holding a git revision (e.g. since): when that input is set, an LLM "
            "agent's repository context is the change's impact since that revision (its hunks, "
            "callers, tests, importers, callees, co-changed files: "
            "agentrt.context.impact.select_impact) instead of a selection for the query."
        ),
    )
    min_tokens: Annotated[int, Field(ge=0)] = 0
    optimal_tokens: Annotated[int, Field(ge=0)] = 0
    delivered: str | None = Field(
        None,
        description=(
            "Output field (dotted path) holding the context this agent delivers: the runtime "
            "counts its text against the agent's token grant (strings as they are, items by "
            "their `text`, anything else as JSON). Unset: the whole output counts. LLM agents "
            "need none: their whole prompt counts."
        ),
    )

    @model_validator(mode="after")
    def _order(self) -> ContextSpec:
        if self.optimal_tokens and self.optimal_tokens < self.min_tokens:
            raise ValueError(
                f"optimal_tokens ({self.optimal_tokens}) is below min_tokens ({self.min_tokens}); "
                "raise optimal_tokens or lower min_tokens"
            )
        return self


class Resources(_Strict):
    memory_mb: Annotated[int, Field(gt=0)] | None = Field(
        None,
        description="Memory the agent needs, in MB: admitted against the workflow's "
        "resources.memory_mb, and a hard limit on the process task runner.",
    )
    cpus: Annotated[float, Field(gt=0)] | None = Field(
        None,
        description="Cores the agent keeps busy: admitted against the workflow's resources.cpus.",
    )
    concurrency: str | None = Field(
        None,
        description="A concurrency tag shared by agents that must not all run at once "
        "(limits per tag are set in the workflow, or as Prefect tag limits across processes).",
    )


class Check(_Strict):
    """A declarative quality check on the output (no code from manifests is ever evaluated)."""

    field: str = Field(description="Dotted path into the output, e.g. findings or summary.")
    non_empty: bool = False
    min_items: Annotated[int, Field(ge=0)] | None = None
    max_items: Annotated[int, Field(ge=0)] | None = None


class CacheSpec(_Strict):
    enabled: bool = True
    include: list[str] | None = Field(
        None,
        description="Gitignore-style patterns of repository files whose content keys the cache "
        "(default: every file the scan sees).",
    )


#: The built-in ways to merge one output field over chunks (or ``module:function``).
MERGE_RULES = ("concat", "sum", "max", "min", "union", "first")


class ChunkingSpec(_Strict):
    """Map/merge: work bigger than the step's grant runs as one task run per chunk of one
    input field, and the chunks' outputs are merged field by field."""

    split: str = Field(
        description="The input field to split: a list (split between items) or a string "
        "(split at line boundaries)."
    )
    chunk_tokens: Annotated[
        int, Field(gt=0, description="The most tokens of the split field in one chunk.")
    ]
    merge: dict[str, str] = Field(
        default_factory=dict,
        description="Output field → how the chunks' values are merged: concat (lists, or "
        "strings joined by lines), sum, max, min, union (lists, duplicates dropped, order "
        "kept), first, or 'module:function' (called with the list of values). Fields not "
        "named here take the first chunk's value.",
    )
    measure: str | None = Field(
        default=None,
        description="'module:function' called as measure(inputs, pieces) -> one token count "
        "per piece of the split field: what each piece costs the agent's work (e.g. a changed "
        "file's hunks), when that is not the piece's own text. Default: the piece's tokens.",
    )
    share: Annotated[
        float,
        Field(
            gt=0,
            le=1,
            description="The share of the step's grant one chunk's pieces may take; the rest "
            "is left for what every chunk needs besides them (instructions, context around "
            "the pieces). Default 1.",
        ),
    ] = 1.0

    @field_validator("measure")
    @classmethod
    def _measure(cls, value: str | None) -> str | None:
        if value is not None and not _ENTRYPOINT.match(value):
            raise ValueError(f"measure {value!r} is not 'module:function'")
        return value

    @field_validator("split")
    @classmethod
    def _split(cls, value: str) -> str:
        if not value.isidentifier():
            raise ValueError(f"{value!r} is not an input field name; name a list or text input")
        return value

    @field_validator("merge")
    @classmethod
    def _merge(cls, value: dict[str, str]) -> dict[str, str]:
        for name, rule in value.items():
            if rule not in MERGE_RULES and not _ENTRYPOINT.match(rule):
                raise ValueError(
                    f"unknown merge {rule!r} for output field {name!r}; use one of "
                    f"{', '.join(MERGE_RULES)} or a function as 'module:function'"
                )
        return value


SchemaRef = Annotated[
    str | dict[str, Any] | None,
    Field(description="A pydantic model as 'module:Model', or an inline JSON Schema mapping."),
]


class AgentManifest(_Strict):
    """An agent: a versioned, typed unit of work that the runtime runs as a Prefect task."""

    id: str = Field(description="Unique agent id: lowercase letters, digits and _.")
    version: str = Field(description="PEP 440 version, e.g. 1.2.0.")
    description: str = ""
    kind: Literal["python", "llm"] = "python"
    entrypoint: str = Field(description="'module:callable', imported (never evaluated).")
    capabilities: list[str] = Field(default_factory=list)
    requires: list[str] = Field(
        default_factory=list, description="Other agents, e.g. 'context_gathering>=1,<2'."
    )
    input: SchemaRef = None
    output: SchemaRef = None
    context: ContextSpec = ContextSpec()
    priority: int = Field(0, description="Higher numbers get budget and scheduling first.")
    retries: RetryPolicy = RetryPolicy()
    timeout_seconds: Annotated[float, Field(gt=0)] | None = None
    fallbacks: list[str] = Field(default_factory=list, description="Agent ids tried in order.")
    optional: bool = False
    min_confidence: Annotated[float, Field(ge=0, le=1)] | None = None
    resources: Resources = Resources()
    checks: list[Check] = Field(default_factory=list)
    cache: CacheSpec = CacheSpec()
    chunking: ChunkingSpec | None = Field(
        None,
        description="Split work bigger than the grant into chunks of one input field, run "
        "each as its own task run and merge the outputs (see docs/runtime.md).",
    )
    # LLM agents (kind: llm).
    model: str | None = Field(
        None, description="LLM agents: provider:model, e.g. openai:gpt-4o-mini."
    )
    prompt: str | None = Field(None, description="LLM agents: the instructions template.")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError(
                f"{value!r} is not a valid agent id; use lowercase letters, digits and _ "
                "starting with a letter (e.g. code_review)"
            )
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: Any) -> str:
        try:
            return str(Version(str(value)))
        except InvalidVersion:
            raise ValueError(
                f"{value!r} is not a PEP 440 version; write e.g. 1.0.0 or 2.1rc1"
            ) from None

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint(cls, value: str) -> str:
        if not _ENTRYPOINT.match(value):
            raise ValueError(
                f"{value!r} is not 'module:callable' (e.g. agentrt.agents.builtin.code_review:run)"
            )
        return value

    @field_validator("requires", "fallbacks")
    @classmethod
    def _requirements(cls, value: list[str], info: ValidationInfo) -> list[str]:
        for i, text in enumerate(value):
            if split := split_specifier(value, i, info.field_name or "requires"):
                raise ValueError(split)
            parse_requirement(text)
        return value

    @field_validator("input", "output")
    @classmethod
    def _schema_ref(cls, value: Any) -> Any:
        if isinstance(value, str) and not _ENTRYPOINT.match(value):
            raise ValueError(f"{value!r} is not 'module:Model' nor an inline JSON Schema mapping")
        if isinstance(value, dict):
            from jsonschema.validators import validator_for

            try:
                validator_for(value).check_schema(value)
            except Exception as exc:  # jsonschema raises SchemaError with a long message
                raise ValueError(f"invalid JSON Schema: {str(exc).splitlines()[0]}") from None
            external = _external_ref(value, ())
            if external:
                where, ref = external
                raise ValueError(
                    f"$ref {ref!r} at {where or '(root)'} points outside the schema (a file or "
                    "URL would be read when the agent runs); only local references ('#/...') "
                    "are allowed: inline the referenced schema under $defs"
                )
        return value

    @model_validator(mode="after")
    def _consistency(self) -> AgentManifest:
        own = {parse_requirement(r).name for r in self.requires}
        if self.id in own:
            raise ValueError(f"agent {self.id!r} requires itself; remove it from requires")
        if self.id in {parse_requirement(f).name for f in self.fallbacks}:
            raise ValueError(f"agent {self.id!r} lists itself as a fallback; remove it")
        if self.kind == "llm" and not self.prompt:
            raise ValueError("an llm agent needs a prompt; add prompt: with its instructions")
        return self

    @property
    def key(self) -> str:
        """``id@version``: the task run name and the registry key."""
        return f"{self.id}@{self.version}"

    @property
    def parsed_version(self) -> Version:
        return Version(self.version)

    def requirements(self) -> list[Requirement]:
        return [parse_requirement(r) for r in self.requires]

    def fallback_requirements(self) -> list[Requirement]:
        return [parse_requirement(r) for r in self.fallbacks]


def load_manifest(path: str | Path) -> tuple[AgentManifest, int | None]:
    """Load one manifest file; return it with the line it starts on.

    Raises :class:`ManifestError` listing every problem found, each with its line.
    """
    doc = load_yaml(path)
    try:
        return AgentManifest.model_validate(doc.data), doc.lines.get((), 1)
    except ValidationError as exc:
        raise ManifestError(problems_from_validation(doc, exc)) from None
