"""Workflow manifests: which agents run, in what order, with which data and budget.

A workflow is YAML validated by :class:`WorkflowManifest`. Built-in workflows live in
``flows/workflows/``; more are found in folders named by ``AGENTRT_WORKFLOW_PATH``
(``os.pathsep``-separated) and in ``./workflows`` of the working directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agentrt.agents.diagnostics import ManifestError, Problem, load_yaml, problems_from_validation
from agentrt.agents.manifest import parse_requirement

__all__ = [
    "BUILTIN_WORKFLOWS",
    "Budget",
    "Concurrency",
    "Param",
    "Resources",
    "Step",
    "TaskRunnerSpec",
    "WorkflowManifest",
    "discover_workflows",
    "find_workflow",
    "load_workflow",
]

BUILTIN_WORKFLOWS = Path(__file__).resolve().parent / "workflows"
_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")
_STEP_ID = re.compile(r"^[a-z][a-z0-9_]*$")
#: ``text`` is a string too; on the command line (``agentrt run -p NAME=FILE|-``) its value
#: names a file, or ``-`` for standard input, whose text becomes the value.
ParamType = Literal["str", "int", "float", "bool", "path", "list", "text"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _convert(kind: str, raw: Any) -> Any:
    """``raw`` as a value of the parameter type ``kind``; ValueError if it is not one."""
    if raw is None:
        return None
    try:
        match kind:
            case "int":
                return int(raw)
            case "float":
                return float(raw)
            case "bool":
                if isinstance(raw, bool):
                    return raw
                text = str(raw).strip().lower()
                if text in {"1", "true", "yes", "on"}:
                    return True
                if text in {"0", "false", "no", "off"}:
                    return False
                raise ValueError(raw)
            case "list":
                if isinstance(raw, list):
                    return raw
                return [p.strip() for p in str(raw).split(",") if p.strip()]
            case _:
                return str(raw)
    except (TypeError, ValueError):
        raise ValueError(f"expects {kind}, got {raw!r}") from None


class Param(_Strict):
    type: ParamType = "str"
    default: Any = None
    description: str = ""
    required: bool = False
    minimum: float | None = Field(
        None, description="The smallest value an int or float parameter accepts."
    )

    @field_validator("default")
    @classmethod
    def _default(cls, value: Any, info: ValidationInfo) -> Any:
        # Found here, a wrong default is reported at its line, not when the workflow runs.
        if "type" in info.data:  # else the type itself is wrong, and reported
            try:
                _convert(info.data["type"], value)
            except ValueError as exc:
                raise ValueError(f"{exc}; change the default or the type") from None
        return value

    @model_validator(mode="after")
    def _minimum(self) -> Param:
        if self.minimum is not None and self.type not in ("int", "float"):
            raise ValueError(f"minimum applies to int and float parameters, not {self.type}")
        return self

    def convert(self, name: str, raw: Any) -> Any:
        """Convert a command-line or API value to this parameter's type, and check it: at
        least ``minimum``; a required ``text`` not blank."""
        try:
            value = _convert(self.type, raw)
        except ValueError as exc:
            raise ValueError(f"parameter {name!r} {exc}") from None
        if self.minimum is not None and isinstance(value, int | float) and value < self.minimum:
            least = int(self.minimum) if self.minimum.is_integer() else self.minimum
            raise ValueError(f"parameter {name!r} must be at least {least}, got {raw!r}")
        if self.type == "text" and self.required and raw is not None and not value.strip():
            raise ValueError(f"parameter {name!r} is empty; give the text it needs")
        return value


class Budget(_Strict):
    total_tokens: Annotated[int, Field(ge=0)] = 0


class Concurrency(_Strict):
    max_workers: Annotated[int, Field(ge=1, le=512)] = 8
    tags: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict,
        description="At most N agents with this resources.concurrency tag run at once.",
    )


class Resources(_Strict):
    """What the agents of one run may hold at once (None: the machine's available memory,
    its cores, when the run is planned). See :mod:`agentrt.flows.resources`."""

    memory_mb: Annotated[int, Field(gt=0)] | None = None
    cpus: Annotated[float, Field(gt=0)] | None = None


class TaskRunnerSpec(_Strict):
    type: Literal["thread", "process", "dask", "ray"] = "thread"
    address: str | None = Field(None, description="dask scheduler or ray cluster address.")
    workers: Annotated[int, Field(ge=1)] | None = None


class Step(_Strict):
    agent: str = Field(description="Agent id with an optional version specifier.")
    id: str | None = Field(None, description="Step id (default: the agent id).")
    after: list[str] = Field(default_factory=list)
    inputs: dict[str, Any] = Field(
        default_factory=dict,
        description="Input field → 'params.NAME', 'STEP.FIELD', a list of those, "
        "or {value: literal}.",
    )
    optional: bool | None = Field(None, description="Override the agent's own optional flag.")

    @field_validator("agent")
    @classmethod
    def _agent(cls, value: str) -> str:
        parse_requirement(value)
        return value

    @field_validator("id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        if value is not None and not _STEP_ID.match(value):
            raise ValueError(f"{value!r} is not a valid step id (lowercase letters, digits, _)")
        return value

    @property
    def step_id(self) -> str:
        return self.id or parse_requirement(self.agent).name


class WorkflowManifest(_Strict):
    name: str
    description: str = ""
    params: dict[str, Param] = Field(default_factory=dict)
    budget: Budget = Budget()
    concurrency: Concurrency = Concurrency()
    task_runner: TaskRunnerSpec = TaskRunnerSpec()
    resources: Resources = Resources()
    steps: list[Step] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r} is not a valid workflow name (lowercase, digits, - _)")
        return value

    @field_validator("params", mode="before")
    @classmethod
    def _params_shorthand(cls, value: Any) -> Any:
        # `repo: .` is shorthand for `repo: {default: .}` with the type inferred.
        if not isinstance(value, dict):
            return value
        out = {}
        for key, spec in value.items():
            if isinstance(spec, dict):
                out[key] = spec
            else:
                kind = {bool: "bool", int: "int", float: "float", list: "list"}.get(
                    type(spec), "str"
                )
                out[key] = {"type": kind, "default": spec}
        return out

    @field_validator("concurrency", mode="before")
    @classmethod
    def _concurrency_shorthand(cls, value: Any) -> Any:
        return {"max_workers": value} if isinstance(value, int) else value

    @field_validator("task_runner", mode="before")
    @classmethod
    def _runner_shorthand(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _steps_unique(self) -> WorkflowManifest:
        seen: set[str] = set()
        for step in self.steps:
            if step.step_id in seen:
                raise ValueError(
                    f"two steps have the id {step.step_id!r}; give one of them an explicit id:"
                )
            seen.add(step.step_id)
        for step in self.steps:
            for dep in step.after:
                if dep == step.step_id:
                    raise ValueError(f"step {dep!r} lists itself in after; remove it")
        return self

    def resolve_params(self, given: dict[str, Any], *, strict: bool = True) -> dict[str, Any]:
        """Defaults overlaid with ``given``, converted to the declared types.

        ``strict=False`` leaves missing required parameters as None (for inspection).
        """
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            known = ", ".join(sorted(self.params)) or "none"
            raise ValueError(
                f"unknown parameter(s) {', '.join(unknown)} for workflow {self.name!r} "
                f"(known: {known})"
            )
        values = {}
        for name, spec in self.params.items():
            if name in given:
                values[name] = spec.convert(name, given[name])
            elif strict and spec.required and spec.default is None:
                raise ValueError(f"workflow {self.name!r} needs --param {name}=…")
            else:
                values[name] = spec.convert(name, spec.default)
        return values


def load_workflow(path: str | Path) -> WorkflowManifest:
    doc = load_yaml(path)
    try:
        return WorkflowManifest.model_validate(doc.data)
    except ValidationError as exc:
        raise ManifestError(problems_from_validation(doc, exc)) from None


def workflow_dirs(extra: list[str | Path] | None = None) -> list[Path]:
    dirs = [BUILTIN_WORKFLOWS]
    env = os.environ.get("AGENTRT_WORKFLOW_PATH", "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs += [Path(p) for p in extra or []]
    local = Path.cwd() / "workflows"
    if local.is_dir() and local.resolve() != BUILTIN_WORKFLOWS:
        dirs.append(local)
    return dirs


def discover_workflows(
    extra: list[str | Path] | None = None,
) -> tuple[dict[str, tuple[Path, WorkflowManifest]], list[Problem]]:
    """All workflows by name (later folders override earlier ones) and the problems found."""
    found: dict[str, tuple[Path, WorkflowManifest]] = {}
    problems: list[Problem] = []
    for folder in workflow_dirs(extra):
        if not folder.is_dir():
            continue
        for file in sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml")):
            try:
                wf = load_workflow(file)
            except ManifestError as exc:
                problems.extend(exc.problems)
                continue
            found[wf.name] = (file, wf)
    return found, problems


def find_workflow(name_or_path: str) -> tuple[Path, WorkflowManifest]:
    """A workflow by name, or by path to its YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        if not candidate.is_file():
            raise ManifestError([Problem(name_or_path, None, "", "no such workflow file")])
        return candidate, load_workflow(candidate)
    found, _problems = discover_workflows()
    if name_or_path not in found:
        import difflib

        close = difflib.get_close_matches(name_or_path, list(found), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        known = ", ".join(sorted(found)) or "none"
        raise ManifestError(
            [
                Problem(
                    name_or_path,
                    None,
                    "",
                    f"no workflow named {name_or_path!r}{hint} (known: {known}); "
                    "pass a path to a workflow YAML file or run `agentrt workflows list`",
                )
            ]
        )
    return found[name_or_path]
