"""Agents' input and output schemas: pydantic models or inline JSON Schema.

Data passed between agents is validated on delivery, so a mismatch fails the receiving
step with a message naming the field, instead of surfacing deep inside the agent.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ValidationError

from agentrt.agents.imports import EntrypointError, import_object
from agentrt.agents.registry import RegisteredAgent
from agentrt.errors import AgentrtError

__all__ = [
    "SchemaValidationError",
    "input_fields",
    "lookup_field",
    "to_jsonable",
    "upstream_view",
    "validate_input",
    "validate_output",
]


class SchemaValidationError(AgentrtError, ValueError):
    """Data does not match an agent's input or output schema."""

    def __init__(self, message: str, fields: list[str]) -> None:
        super().__init__(message)
        self.fields = fields


@lru_cache(maxsize=256)
def _model(ref: str, policy_key: tuple) -> type[BaseModel]:
    from agentrt.agents.imports import ImportPolicy

    policy = ImportPolicy.from_dict({"base_dir": policy_key[0], "packages": policy_key[1]})
    model = import_object(ref, policy, what="schema")
    if not (inspect.isclass(model) and issubclass(model, BaseModel)):
        raise EntrypointError(f"schema {ref!r} is not a pydantic model class")
    return model


def schema_model(agent: RegisteredAgent, which: str) -> type[BaseModel] | dict | None:
    ref = getattr(agent.manifest, which)
    if isinstance(ref, str):
        policy = agent.policy
        return _model(ref, (str(policy.base_dir) if policy.base_dir else None, policy.packages))
    return ref


def input_fields(agent: RegisteredAgent) -> set[str]:
    schema = schema_model(agent, "input")
    if schema is None:
        return set()
    if isinstance(schema, dict):
        return set(schema.get("properties", {}))
    return set(schema.model_fields)


def required_input_fields(agent: RegisteredAgent) -> set[str]:
    schema = schema_model(agent, "input")
    if schema is None:
        return set()
    if isinstance(schema, dict):
        return set(schema.get("required", []))
    return {name for name, f in schema.model_fields.items() if f.is_required()}


def _pydantic_message(exc: ValidationError) -> tuple[str, list[str]]:
    parts, fields = [], []
    for err in exc.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        fields.append(loc)
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts), fields


def _refuse_retrieval(uri: str) -> Any:
    # A schema from a manifest must never make the runtime read a file or fetch a URL.
    raise LookupError(uri)


def _jsonschema_check(schema: dict, data: Any) -> None:
    from jsonschema.validators import validator_for
    from referencing import Registry
    from referencing.exceptions import Unresolvable

    validator = validator_for(schema)(schema, registry=Registry(retrieve=_refuse_retrieval))
    try:
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    except Unresolvable as exc:
        message = f"(schema): $ref {exc.ref!r} cannot be resolved (files and URLs are never read)"
        raise SchemaValidationError(message, ["(schema)"]) from None
    if errors:
        fields = [".".join(str(p) for p in e.absolute_path) or "(root)" for e in errors[:5]]
        message = "; ".join(f"{f}: {e.message}" for f, e in zip(fields, errors[:5], strict=False))
        raise SchemaValidationError(message, fields)


def validate_input(agent: RegisteredAgent, data: dict[str, Any]) -> Any:
    """The value handed to the agent: a model instance, or the validated mapping."""
    schema = schema_model(agent, "input")
    if schema is None:
        return data
    if isinstance(schema, dict):
        _jsonschema_check(schema, data)
        return data
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        message, fields = _pydantic_message(exc)
        raise SchemaValidationError(message, fields) from None


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict | list | str | int | float | bool) or value is None:
        return value
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value)


def validate_output(agent: RegisteredAgent, value: Any) -> Any:
    """Check an agent's return value against its output schema; return it as JSON data."""
    schema = schema_model(agent, "output")
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        try:
            value = schema.model_validate(
                value.model_dump() if isinstance(value, BaseModel) else value
            )
        except ValidationError as exc:
            message, fields = _pydantic_message(exc)
            raise SchemaValidationError(message, fields) from None
    data = to_jsonable(value)
    if isinstance(schema, dict):
        _jsonschema_check(schema, data)
    return data


def upstream_view(upstream: Mapping[str, Any]) -> Mapping[str, Any]:
    """``ctx.upstream``: each upstream step's output by step id, read-only, typed by the
    producing agent's output model (a fresh instance) when it has one, else a copy of the
    JSON data (inline JSON Schema). ``upstream`` maps step ids to
    :class:`~agentrt.flows.attempt.UpstreamOutput`. Output that its model no longer accepts
    (it was validated by it when produced) is given as data rather than failing the step."""
    view: dict[str, Any] = {}
    for sid, entry in upstream.items():
        data = copy.deepcopy(entry.output)
        if entry.schema and isinstance(data, dict):
            try:
                model = _model(entry.schema, entry.policy)
                fields = {k: v for k, v in data.items() if k not in model.model_computed_fields}
                data = model.model_validate(fields)
            except (EntrypointError, ImportError, ValidationError):
                pass
        view[sid] = data
    return MappingProxyType(view)


def lookup_field(data: Any, dotted: str) -> Any:
    """The value at ``dotted`` (``items.0.path``) in JSON-like ``data``; None when absent."""
    for part in dotted.split("."):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data
