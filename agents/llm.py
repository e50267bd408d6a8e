"""LLM agents (``kind: llm``): a prompt, budgeted context and a model with typed output.

An LLM agent is a manifest, not code. The runtime validates the agent's input, then calls
:func:`run_llm_agent`, which

1. selects the context: when the input has ``repo`` (or the fields named in the manifest's
   ``context.sources``), the context manager (:func:`agentrt.context.select.select`) picks
   the most useful files and spans for the task (:func:`task_of`; paths listed in ``files``
   are added to the query, so those files are delivered themselves rather than outlined),
   inside the agent's token slice (``ctx.budget_tokens``) less what the rest of the prompt costs;
   when the manifest's ``context.change`` names an input holding a git revision and it is
   set, the context is the change's impact instead (:func:`agentrt.context.impact.select_impact`:
   the hunks, then callers, tests, importers, callees, co-changed files). Context and upstream
   outputs are fenced as untrusted data (:func:`agentrt.context.untrusted.fence_untrusted`);
2. renders the manifest's ``prompt`` with :func:`render_prompt`: ``{task}``, ``{context}``,
   ``{query}`` and the input's fields, by plain name only (nothing is evaluated). Whatever
   the template does not place (context, task, other inputs) goes into the user message;
3. runs a pydantic-ai agent whose ``output_type`` is the manifest's ``output`` model (or its
   inline JSON Schema), so the model answers through a typed tool call and invalid output is
   sent back to it with the validation errors (``AGENTRT_LLM_OUTPUT_RETRIES`` times);
4. passes the validated output through the agent's *output hook*, which may correct it or
   reject it with :class:`OutputRejected` (another round trip to the model, same budget);
5. records ``ctx.tokens_delivered`` (context tokens), ``ctx.prompt_tokens`` (the whole prompt,
   counted as the runtime counts it against the grant) and the provider-reported usage in
   ``ctx.llm_input_tokens`` / ``ctx.llm_output_tokens`` with the model in ``ctx.llm_model``
   (the runtime adds the cost: :mod:`agentrt.agents.prices`), also when the run fails, and
   ``ctx.tokens_referenced``: the delivered items the answer cites
   (:func:`referenced_context_tokens`).

**Models.** ``AGENTRT_MODEL`` overrides the manifest's ``model``; both are
``provider:model``:

* ``openai:gpt-4o-mini`` — Chat Completions through the OpenAI SDK; needs ``OPENAI_API_KEY``,
  or a base URL (``AGENTRT_LLM_BASE_URL``, else ``OPENAI_BASE_URL``) of an OpenAI-compatible
  server (vLLM, LM Studio, llama.cpp, a proxy) — then the key is optional;
* ``anthropic:claude-sonnet-4-5`` — needs ``ANTHROPIC_API_KEY`` (``ANTHROPIC_BASE_URL`` for
  a proxy);
* ``ollama:qwen2.5-coder`` — Ollama's OpenAI-compatible API at ``OLLAMA_BASE_URL``, else
  ``AGENTRT_LLM_BASE_URL``, else ``http://localhost:11434/v1``;
* ``test`` — pydantic-ai's offline ``TestModel`` (schema-valid filler output, no network);
* any other pydantic-ai model string (``openai-responses:…``, ``groq:…``, ``google:…``) is
  handed to pydantic-ai as is, with that provider's own environment variables.

**Not configured.** :func:`model_not_configured` says, without a call, when the model
cannot be called as configured (no model, or its provider's key unset); the runtime then
runs the step's fallback at once, with no attempt of the LLM agent, and the run says once
:func:`no_model_message` (``no model configured: llm_review was not run (set AGENTRT_MODEL
and a key)``), not as a failure.

**Failures.** Missing configuration, a provider that keeps failing once the SDK's own
retries (``AGENTRT_LLM_MAX_RETRIES``, default 2, for 408/409/429/5xx and connection errors,
honouring ``Retry-After``) are spent, and output that never validates all raise
:class:`LLMUnavailableError` (or a subclass), so the runtime moves on to the manifest's
``fallbacks``. Every message is passed through :func:`redact` first: API keys never reach
exceptions, reports or logs.

**Output hooks.** For ``kind: llm`` the manifest's ``entrypoint`` names the hook, a callable
``hook(output, inputs, call) -> output`` (``call`` is an :class:`LLMCall`); the generic
``agentrt.agents.llm:run_llm_agent`` means "no hook". The hook's module is also where the report
looks for ``render_markdown(output)``.

Nothing here imports pydantic-ai at module level: importing it costs ~2 s, which commands
that only read manifests must not pay.
"""

from __future__ import annotations

import json
import os
import string
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from agentrt.agents.manifest import UPSTREAM
from agentrt.agents.redact import redact
from agentrt.errors import AgentrtError

if TYPE_CHECKING:
    from pydantic_ai.models import Model

    from agentrt.agents.agent_context import AgentContext
    from agentrt.agents.manifest import AgentManifest
    from agentrt.agents.registry import RegisteredAgent

__all__ = [
    "GENERIC_ENTRYPOINT",
    "LLMCall",
    "LLMOutputError",
    "LLMTimeoutError",
    "LLMUnavailableError",
    "OutputRejected",
    "PromptFit",
    "PromptTemplateError",
    "build_prompt",
    "change_reserve",
    "fit_prompt",
    "focus_upstream",
    "model_not_configured",
    "no_model_message",
    "rank_findings",
    "referenced_context_tokens",
    "render_prompt",
    "render_upstream",
    "resolve_model",
    "run_llm_agent",
    "shrink",
    "task_of",
]

#: The entrypoint of an LLM agent without an output hook.
GENERIC_ENTRYPOINT = "agentrt.agents.llm:run_llm_agent"

ENV_MODEL = "AGENTRT_MODEL"
ENV_BASE_URL = "AGENTRT_LLM_BASE_URL"
ENV_MAX_RETRIES = "AGENTRT_LLM_MAX_RETRIES"
ENV_OUTPUT_RETRIES = "AGENTRT_LLM_OUTPUT_RETRIES"
DEFAULT_MAX_RETRIES = 2
DEFAULT_OUTPUT_RETRIES = 2
DEFAULT_OLLAMA_URL = "http://localhost:11434/v1"
#: Token slice used when the agent has no grant (it runs outside a workflow, or its manifest
#: asks for no context tokens) and its manifest states no optimal_tokens. A grant from a
#: workflow is never replaced by it.
DEFAULT_BUDGET = 8_000
#: The model's own deadline is this fraction of ``timeout_seconds``, so a slow provider ends
#: in a clean :class:`LLMTimeoutError` before the runtime's watchdog abandons the thread.
DEADLINE_FRACTION = 0.9
#: Tokens reserved for what the provider adds around messages and tool definitions.
FRAMING_TOKENS = 64
_MESSAGE_LIMIT = 600


# --------------------------------------------------------------------------------------------
# Errors


class LLMUnavailableError(AgentrtError, RuntimeError):
    """The LLM could not produce this agent's output: not configured, unreachable, failing.

    Never retried by the runtime (the provider SDK has already retried what is transient), so
    the manifest's fallback agent runs at once. The message is redacted and says what to fix.
    """

    retryable = False
    hint = "set AGENTRT_MODEL and the provider's key, or add a fallback agent to {agent}"


class LLMTimeoutError(LLMUnavailableError, TimeoutError):
    """The model did not answer before the agent's deadline (a TimeoutError: retryable)."""

    retryable = True
    hint = "raise timeout_seconds in {agent}'s manifest, or give it a smaller input"


class LLMOutputError(LLMUnavailableError):
    """The model's answers never passed output validation, retries included."""


class PromptTemplateError(AgentrtError, ValueError):
    """The manifest's prompt template uses a field that is not allowed or not known."""


class OutputRejected(AgentrtError):
    """Raised by an output hook to send the model back with ``message`` (uses a retry)."""


# --------------------------------------------------------------------------------------------
# Redaction is agentrt.agents.redact's (one place for the whole runtime).


def _short(text: str, limit: int = _MESSAGE_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------
# Prompt templates

_RESERVED = ("context", "task", "query", "upstream")


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(value, default=str, ensure_ascii=False)


def template_fields(template: str) -> list[str]:
    """The field names a prompt template uses, in order; PromptTemplateError if malformed."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise PromptTemplateError(
            f"prompt template is malformed ({exc}); write literal braces as {{{{ and }}}}"
        ) from None
    names = []
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise PromptTemplateError(
                f"prompt field {{{name}}} is not allowed: use plain names like {{task}} or "
                "{context} (no positions, attributes or indexing); write literal braces as "
                "{{ and }}"
            )
        if spec or conversion:
            raise PromptTemplateError(
                f"prompt field {{{name}}} has a format spec or conversion; use {{{name}}} alone"
            )
        names.append(name)
    return names


def render_prompt(template: str, fields: Mapping[str, Any]) -> str:
    """Fill ``template``'s ``{name}`` fields from ``fields``; nothing is ever evaluated.

    Only plain names are allowed (``{task}``, not ``{task.upper}`` or ``{0}``), without format
    specs; lists of scalars render as ``a, b``, other values as JSON. Raises
    :class:`PromptTemplateError` naming the field and what is available.
    """
    names = set(template_fields(template))
    unknown = sorted(names - set(fields))
    if unknown:
        raise PromptTemplateError(
            f"prompt field {{{unknown[0]}}} is neither an input field nor one of "
            f"{{context}}, {{task}}, {{query}}, {{upstream}}; available: "
            f"{', '.join(sorted(fields))}"
        )
    parts = []
    for literal, name, _spec, _conversion in string.Formatter().parse(template):
        parts.append(literal)
        if name is not None:
            parts.append(_as_text(fields[name]))
    return "".join(parts)


@dataclass(frozen=True)
class Prompt:
    """What the model is sent: instructions (system) and the user message."""

    instructions: str
    user: str


#: How the repository context and the upstream outputs are labelled in prompts.
CONTEXT_SOURCE = "code of the repository under review"
UPSTREAM_SOURCE = "outputs of earlier steps"


def build_prompt(
    template: str, inputs: Mapping[str, Any], task: str, context: str, upstream: str = ""
) -> Prompt:
    """The instructions from ``template``; what it does not place goes in the user message.

    The context and the upstream outputs are fenced as untrusted data
    (:func:`agentrt.context.untrusted.fence_untrusted`), wherever they are placed.

    The user message holds, in order: the task (unless the template has ``{task}``), the
    upstream outputs (unless it has ``{upstream}``), the context (unless it has
    ``{context}``) and the remaining input fields as JSON.
    """
    from agentrt.context.untrusted import fence_untrusted

    used = set(template_fields(template))
    # Repository content and what earlier steps made of it are data, not instructions.
    context = fence_untrusted(context, CONTEXT_SOURCE) if context else ""
    upstream = fence_untrusted(upstream, UPSTREAM_SOURCE) if upstream else ""
    fields = {**inputs, "task": task, "query": task, "context": context, "upstream": upstream}
    instructions = render_prompt(template, fields)
    sections = []
    if task and "task" not in used and "query" not in used:
        sections.append(f"## Task\n\n{task}")
    if upstream and "upstream" not in used:
        sections.append(f"## Upstream outputs\n\n{upstream}")
    if context and "context" not in used:
        sections.append(f"## Context\n\n{context}")
    rest = {
        k: v
        for k, v in inputs.items()
        if k not in used and k not in _RESERVED and v not in (None, "", [], {})
    }
    if rest:
        rest_json = json.dumps(rest, indent=2, default=str, ensure_ascii=False)
        sections.append(f"## Input\n\n```json\n{rest_json}\n```")
    if not sections:
        sections.append("Answer according to your instructions.")
    return Prompt(instructions, "\n\n".join(sections))


# --------------------------------------------------------------------------------------------
# Models


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _int_env(name: str, default: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise LLMUnavailableError(f"{name}={raw!r} is not a whole number >= 0; fix or unset it")
    return value


def model_spec(agent: RegisteredAgent) -> str:
    """The model this agent runs on: ``AGENTRT_MODEL``, else the manifest's ``model``."""
    spec = _env(ENV_MODEL) or agent.manifest.model
    if not spec:
        raise LLMUnavailableError(
            f"no model configured for LLM agent {agent.key}: set {ENV_MODEL} (e.g. "
            "openai:gpt-4o-mini, anthropic:claude-sonnet-4-5, ollama:qwen2.5-coder) or add "
            f"model: to its manifest ({agent.where()})"
        )
    return spec.strip()


def model_not_configured(agent: RegisteredAgent) -> str | None:
    """Why ``agent``'s model cannot be called as configured, or None when it can.

    "Not configured" is what needs no call to find out: no model at all (neither
    ``AGENTRT_MODEL`` nor the manifest's ``model``), or a provider whose key is unset —
    ``openai:`` without ``OPENAI_API_KEY`` and without a base URL (``AGENTRT_LLM_BASE_URL``,
    ``OPENAI_BASE_URL``), ``anthropic:`` without ``ANTHROPIC_API_KEY``. The same checks
    :func:`model_spec` and :func:`resolve_model` make, without importing pydantic-ai.
    ``test``, ``ollama:`` (a local server, default URL) and other providers count as
    configured: a wrong model string, a server that does not answer or a key pydantic-ai
    finds missing is a failure of the attempt, not a missing configuration.

    The driver runs a ``kind: llm`` step's fallback straight away when this says why
    (:func:`no_model_message`), without an attempt of the LLM agent.
    """
    spec = (_env(ENV_MODEL) or agent.manifest.model or "").strip()
    if not spec:
        return f"no model: neither {ENV_MODEL} nor the manifest's model is set"
    provider, _sep, _name = spec.partition(":")
    if provider == "openai" and not (
        _env("OPENAI_API_KEY") or _env(ENV_BASE_URL) or _env("OPENAI_BASE_URL")
    ):
        return f"model {spec} needs OPENAI_API_KEY (or {ENV_BASE_URL} for a compatible server)"
    if provider == "anthropic" and not _env("ANTHROPIC_API_KEY"):
        return f"model {spec} needs ANTHROPIC_API_KEY"
    return None


def no_model_message(agents: list[str]) -> str:
    """The one line a run says when LLM agents were not run for want of a model:
    ``no model configured: llm_review was not run (set AGENTRT_MODEL and a key)``
    (``agents`` are ids or ``id@version`` keys; the version is left out)."""
    ids = list(dict.fromkeys(a.partition("@")[0] for a in agents))
    verb = "was" if len(ids) == 1 else "were"
    return f"no model configured: {', '.join(ids)} {verb} not run (set {ENV_MODEL} and a key)"


def _missing_key(spec: str, variable: str, extra: str = "") -> LLMUnavailableError:
    return LLMUnavailableError(
        f"model {spec} needs an API key: set {variable} in the environment{extra}, or choose "
        f"another model with {ENV_MODEL}"
    )


def resolve_model(spec: str) -> Model:
    """A pydantic-ai model for ``provider:model``, configured from the environment.

    Raises :class:`LLMUnavailableError` when the provider's key or URL is missing or the
    string names no model pydantic-ai knows.
    """
    provider, sep, name = spec.partition(":")
    if spec == "test":
        from pydantic_ai.models.test import TestModel

        return TestModel()
    if not sep or not provider or not name:
        raise LLMUnavailableError(
            f"model {spec!r} is not 'provider:model'; write e.g. openai:gpt-4o-mini, "
            "anthropic:claude-sonnet-4-5 or ollama:qwen2.5-coder"
        )
    if provider == "openai":
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        base_url = _env(ENV_BASE_URL) or _env("OPENAI_BASE_URL")
        api_key = _env("OPENAI_API_KEY")
        if api_key is None and base_url is None:
            raise _missing_key(
                spec,
                "OPENAI_API_KEY",
                f" (or {ENV_BASE_URL} to use an OpenAI-compatible server such as vLLM)",
            )
        # Local OpenAI-compatible servers often need no key, but the SDK insists on one.
        openai_provider = OpenAIProvider(base_url=base_url, api_key=api_key or "not-needed")
        return OpenAIChatModel(name, provider=openai_provider)
    if provider == "anthropic":
        from pydantic_ai.models.anthropic import AnthropicModel
        from pydantic_ai.providers.anthropic import AnthropicProvider

        api_key = _env("ANTHROPIC_API_KEY")
        if api_key is None:
            raise _missing_key(spec, "ANTHROPIC_API_KEY")
        anthropic_provider = AnthropicProvider(api_key=api_key, base_url=_env("ANTHROPIC_BASE_URL"))
        return AnthropicModel(name, provider=anthropic_provider)
    if provider == "ollama":
        from pydantic_ai.models.ollama import OllamaModel
        from pydantic_ai.providers.ollama import OllamaProvider

        base_url = _env("OLLAMA_BASE_URL") or _env(ENV_BASE_URL) or DEFAULT_OLLAMA_URL
        return OllamaModel(name, provider=OllamaProvider(base_url=base_url))
    from pydantic_ai.exceptions import UserError
    from pydantic_ai.models import infer_model

    try:
        return infer_model(spec)
    except (UserError, ImportError, ValueError) as exc:
        message = redact(_short(str(exc)))
    raise LLMUnavailableError(f"model {spec} cannot be used: {message}")


# --------------------------------------------------------------------------------------------
# Running


@dataclass(frozen=True)
class LLMCall:
    """What an output hook may know about the call that produced the output."""

    agent: str
    model: str
    context_tokens: int
    context_paths: tuple[str, ...]
    #: The upstream outputs the prompt was given (``context.sources``), by step id, so a
    #: hook can check that the answer refers to what was really there.
    upstream: Mapping[str, Any] = field(default_factory=dict)


OutputHook = Callable[[Any, Any, LLMCall], Any]


def _load_schema(agent: RegisteredAgent, which: str) -> type[BaseModel] | dict | None:
    from agentrt.agents.imports import import_object

    ref = getattr(agent.manifest, which)
    if isinstance(ref, str):
        return import_object(ref, agent.policy, what="schema")
    return ref


def _output_hook(agent: RegisteredAgent) -> OutputHook | None:
    if agent.manifest.entrypoint == GENERIC_ENTRYPOINT:
        return None
    from agentrt.agents.imports import load_callable

    return load_callable(agent.manifest.entrypoint, agent.policy)


def _input_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return dict(value)
    return {"input": value}


@dataclass(frozen=True)
class _Context:
    markdown: str
    tokens: int
    paths: tuple[str, ...]
    budget: int
    items: tuple[Any, ...] = ()


def task_of(manifest: AgentManifest, inputs: Mapping[str, Any]) -> str:
    """What the agent is asked about: the input field named by the manifest's
    ``context.query`` (or that text itself, when it names no field), else ``query`` or
    ``task``."""
    named = manifest.context.query
    if named:
        value = inputs.get(named) if named in inputs else named
        return _as_text(value)
    return _as_text(inputs.get("query") or inputs.get("task") or "")


def _repo_of(
    manifest: AgentManifest, inputs: Mapping[str, Any], upstream: Mapping[str, Any] | None = None
) -> str | None:
    sources = manifest.context.sources
    names = [n for n in sources if n != UPSTREAM and n not in (upstream or {})]
    for name in names if sources else ["repo"]:
        if isinstance(inputs.get(name), str) and inputs[name]:
            return inputs[name]
    return None


def upstream_sources(
    manifest: AgentManifest, inputs: Mapping[str, Any], upstream: Mapping[str, Any]
) -> dict[str, Any]:
    """The upstream outputs the agent's ``context.sources`` ask for: every one for
    ``upstream``, else those of the steps it names; a step whose output already fills an
    input field of the same name is left out (it is in the prompt as that input)."""
    sources = manifest.context.sources
    wanted = list(upstream) if UPSTREAM in sources else [n for n in sources if n in upstream]
    return {sid: upstream[sid] for sid in wanted if inputs.get(sid) in (None, "", [], {})}


def focus_upstream(upstream: Mapping[str, Any], files: list[str]) -> dict[str, Any]:
    """What a reviewer of ``files`` is shown of the upstream outputs: of each output that
    has ``findings``, those on ``files`` (unset fields left out), and nothing else of it (its
    summary, counts and per-file tables describe the whole change); other outputs as they
    are."""
    wanted = set(files)
    out: dict[str, Any] = {}
    for sid, value in upstream.items():
        data = _jsonable(value)
        found = data.get("findings") if isinstance(data, dict) else None
        if isinstance(found, list):
            data = {
                "findings": [
                    {k: v for k, v in f.items() if v is not None}
                    for f in found
                    if isinstance(f, dict) and f.get("path") in wanted
                ]
            }
        out[sid] = data
    return out


def render_upstream(outputs: Mapping[str, Any]) -> str:
    """Upstream outputs, compactly: one ``### step`` heading and one line of JSON each."""
    return "\n\n".join(
        f"### {sid}\n\n{_compact(_jsonable(value))}" for sid, value in outputs.items()
    )


def _compact(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))


def _select_context(
    manifest: AgentManifest,
    inputs: Mapping[str, Any],
    task: str,
    budget: int,
    upstream: Mapping[str, Any] | None = None,
) -> _Context:
    """The context manager's selection for ``task`` from the input's repository."""
    repo = _repo_of(manifest, inputs, upstream)
    if repo is None or budget <= 0:
        return _Context("", 0, (), max(budget, 0))
    from agentrt.context.select import select

    files = inputs.get("files")
    files = [str(f) for f in files] if isinstance(files, list) and files else None
    change = manifest.context.change
    since = inputs.get(change) if change else None
    if isinstance(since, str) and since.strip():
        impact = _impact_context(repo, since.strip(), budget, files)
        if impact is not None:
            return impact
    # A path in the query makes the context manager deliver that file itself (within budget)
    # instead of only its outline: what a reviewer of those files needs.
    query = " ".join([task, *(files or [])]).strip()
    selection = select(repo, query, budget, include=files)
    if not selection.items and query:
        # Nothing matches the task's words: an overview of the repository beats no context.
        selection = select(repo, "", budget, include=files)
    paths = tuple(dict.fromkeys(item.path for item in selection.items))
    markdown = selection.to_markdown() if selection.items else ""
    return _Context(markdown, selection.tokens, paths, budget, tuple(selection.items))


def change_reserve(manifest: AgentManifest, inputs: Mapping[str, Any]) -> int:
    """The tokens a review of a change keeps for the change's hunks before the inputs and
    upstream outputs are fitted (:func:`fit_prompt`'s ``reserve``): for an agent whose
    ``context.change`` names an input holding a revision, about what the hunks of its
    ``files`` (all of the change without them) cost
    (:func:`agentrt.context.impact.change_sizes`); 0 otherwise or when the change cannot
    be read."""
    change = manifest.context.change
    since = inputs.get(change) if change else None
    repo = _repo_of(manifest, inputs)
    if not (isinstance(since, str) and since.strip() and repo):
        return 0
    from agentrt.context.impact import ChangeError, change_sizes

    files = inputs.get("files")
    paths = [str(f) for f in files] if isinstance(files, list) else None
    try:
        return sum(change_sizes(repo, since=since.strip(), paths=paths).values())
    except (ChangeError, OSError, ValueError):
        return 0


def _impact_context(
    repo: str, since: str, budget: int, files: list[str] | None = None
) -> _Context | None:
    """The change's impact since ``since`` (hunks first, then callers, tests, ...), or None
    when the change cannot be read or is empty (the query selection is used instead).
    ``files``: only these files of the change are reviewed, with their own impact (a chunk
    of a chunked review)."""
    from agentrt.context.impact import ChangeError, select_impact

    try:
        selection = select_impact(repo, budget, since=since, paths=files)
    except ChangeError:
        return None
    if not selection.items:
        return None
    paths = tuple(dict.fromkeys(item.path for item in selection.items))
    return _Context(
        selection.to_markdown(), selection.tokens, paths, budget, tuple(selection.items)
    )


def _schema_tokens(output_schema: type[BaseModel] | dict | None) -> int:
    from agentrt.context.tokens import count_tokens

    if output_schema is None:
        return 0
    schema = output_schema.model_json_schema() if isinstance(output_schema, type) else output_schema
    return count_tokens(json.dumps(schema, separators=(",", ":")))


def prompt_parts(prompt: Prompt, output_schema: type[BaseModel] | dict | None) -> list[str]:
    """What the model is sent, as texts to count: instructions, the user message and the
    output schema (as JSON); the provider's framing adds :data:`FRAMING_TOKENS`."""
    parts = [prompt.instructions, prompt.user]
    if output_schema is not None:
        schema = (
            output_schema.model_json_schema() if isinstance(output_schema, type) else output_schema
        )
        parts.append(json.dumps(schema, separators=(",", ":")))
    return parts


def _output_type(agent: RegisteredAgent, schema: type[BaseModel] | dict | None) -> Any:
    if schema is None:
        return str
    if isinstance(schema, dict):
        from pydantic_ai import StructuredDict

        return StructuredDict(schema, name=schema.get("title") or agent.id)
    return schema


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


#: Severities, most severe first: the order findings are kept in when a prompt is shrunk.
_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}


def _is_findings(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and "severity" in v for v in value)
    )


def rank_findings(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Findings without duplicates (same path, line and rule: the first is kept), most
    severe first (critical … info, then unknown severities; ties keep their order)."""
    seen: set[tuple[str, ...]] = set()
    kept = []
    for finding in findings:
        key = tuple(str(finding.get(k)) for k in ("path", "line", "rule"))
        if key not in seen:
            seen.add(key)
            kept.append(finding)
    return sorted(kept, key=lambda f: _SEVERITY_ORDER.get(str(f.get("severity")).lower(), 5))


#: How far inputs (then upstream outputs) are shrunk, one rung after the other until the
#: prompt fits: (most items per list, most tokens per string); None keeps all. From the
#: second rung on, findings lists are deduplicated and ranked by severity before the cut.
SHRINK_LADDER: tuple[tuple[int | None, int | None], ...] = (
    (None, None),
    (None, None),  # findings deduplicated and ranked only
    (50, None),
    (20, None),
    (10, None),
    (5, None),
    (5, 1000),
    (5, 400),
    (5, 150),
    (2, 60),
    (0, 20),
    (0, 0),
)


def shrink(value: Any, items: int | None, text: int | None, *, rank: bool = True) -> Any:
    """``value`` (JSON data) with every list cut to ``items`` (findings deduplicated and
    ranked by severity first when ``rank``; a last entry says how many were left out) and
    every string cut to ``text`` tokens (with ``…``; 0 empties it)."""
    from agentrt.context.tokens import count_tokens, truncate_to_tokens

    if isinstance(value, str):
        if text is not None and count_tokens(value) > text:
            return truncate_to_tokens(value, text) + "…" if text > 0 else ""
        return value
    if isinstance(value, list):
        if rank and _is_findings(value):
            value = rank_findings(value)
        kept = value if items is None else value[:items]
        out = [shrink(v, items, text, rank=rank) for v in kept]
        if len(kept) < len(value):
            out.append(f"… {len(value) - len(kept)} more left out (token budget)")
        return out
    if isinstance(value, dict):
        return {k: shrink(v, items, text, rank=rank) for k, v in value.items()}
    return value


def _rung(level: int) -> tuple[int | None, int | None, bool]:
    items, text = SHRINK_LADDER[level]
    return items, text, level > 0


def _describe(what: str, level: int) -> str:
    items, text = SHRINK_LADDER[level]
    cuts = ["findings deduplicated and ranked by severity"]
    if items is not None:
        cuts.append(f"lists cut to {items} items")
    if text is not None:
        cuts.append(f"texts cut to {text} tokens")
    return f"{what}: {', '.join(cuts)}"


@dataclass(frozen=True)
class PromptFit:
    """The prompt an LLM agent sends, fitted to its token target (see :func:`fit_prompt`)."""

    prompt: Prompt
    context: _Context
    #: The whole prompt, counted as the runtime counts it (allocation.counted_tokens).
    tokens: int
    #: The fewest tokens any prompt of this agent could take: instructions, output schema,
    #: framing and what the inputs and upstream outputs leave at their smallest.
    minimum: int
    #: What was shrunk to fit, in order.
    shrunk: tuple[str, ...] = ()


def _first_fit(levels: int, fits: Callable[[int], bool]) -> int | None:
    """The first level that fits (fitting is monotone in the level), or None."""
    if not fits(levels - 1):
        return None
    lo, hi = 0, levels - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def fit_prompt(
    manifest: AgentManifest,
    inputs: Mapping[str, Any],
    output_schema: type[BaseModel] | dict | None,
    target: int,
    upstream: Mapping[str, Any] | None = None,
    reserve: int = 0,
) -> PromptFit:
    """The prompt within ``target`` tokens, counted as the runtime counts it.

    Paid first and never shrunk: the instructions, the output schema and the provider's
    framing. Then the inputs, whole if they fit; if not, they are shrunk rung by rung
    (:data:`SHRINK_LADDER`: findings deduplicated and ranked by severity, then lists cut,
    then long texts cut with :func:`~agentrt.context.tokens.truncate_to_tokens`) until the
    prompt fits. Then the upstream outputs ``context.sources`` asks for, shrunk the same
    way only when the inputs are at their smallest, and left out as a last resort. The
    repository context gets what is left. ``reserve`` tokens (at most what the minimum
    leaves) are kept for the context before the inputs and upstream outputs are fitted: a
    review's change (its hunks) comes before the analysers' findings about it. ``tokens``
    above ``target`` means even the minimum does not fit.
    """
    from agentrt.context.tokens import count_tokens

    template = manifest.prompt or ""
    schema_tokens = _schema_tokens(output_schema)
    data = {k: _jsonable(v) for k, v in inputs.items()}
    ups = {k: _jsonable(v) for k, v in (upstream or {}).items()}

    def measure(ins: Mapping[str, Any], up: str, context: str = "") -> tuple[Prompt, int]:
        prompt = build_prompt(template, ins, task_of(manifest, ins), context, up)
        total = count_tokens(prompt.instructions) + count_tokens(prompt.user)
        return prompt, total + schema_tokens + FRAMING_TOKENS

    def shrunk_inputs(level: int) -> dict[str, Any]:
        items, text, rank = _rung(level)
        return {k: shrink(v, items, text, rank=rank) for k, v in data.items()}

    def shrunk_upstream(level: int | None) -> str:
        if level is None:
            return ""
        items, text, rank = _rung(level)
        return render_upstream({k: shrink(v, items, text, rank=rank) for k, v in ups.items()})

    levels = len(SHRINK_LADDER)
    notes: list[str] = []
    minimum = measure(shrunk_inputs(levels - 1), "")[1]
    fit_target = target - min(max(reserve, 0), max(target - minimum, 0))
    full_up = shrunk_upstream(0)
    in_level = _first_fit(levels, lambda lv: measure(shrunk_inputs(lv), full_up)[1] <= fit_target)
    up_level: int | None = 0
    if in_level is None:
        in_level = levels - 1
        floor = shrunk_inputs(in_level)
        up_level = (
            _first_fit(levels, lambda lv: measure(floor, shrunk_upstream(lv))[1] <= fit_target)
            if ups
            else 0
        )
    if in_level:
        notes.append(_describe("inputs", in_level))
    if ups and up_level is None:
        notes.append("upstream outputs: left out")
    elif ups and up_level:
        notes.append(_describe("upstream outputs", up_level))
    ins = shrunk_inputs(in_level)
    up = shrunk_upstream(up_level)
    prompt, tokens = measure(ins, up)
    context = _Context("", 0, (), 0)
    from agentrt.context.untrusted import fence_untrusted

    # The "## Context" heading and the untrusted-data fence that come with the context.
    room = target - tokens - 16 - count_tokens(fence_untrusted("", CONTEXT_SOURCE))
    task = task_of(manifest, inputs)  # the whole task steers the selection
    for _ in range(3):
        if room <= 0:
            break
        context = _select_context(manifest, inputs, task, room, upstream)
        if not context.markdown:
            break
        with_context, total = measure(ins, up, context.markdown)
        if total <= target:
            prompt, tokens = with_context, total
            break
        room -= total - target  # the pieces count a little apart from the whole
        context = _Context("", 0, (), max(room, 0))
    return PromptFit(prompt, context, tokens, minimum, tuple(notes))


def run_llm_agent(
    agent: RegisteredAgent,
    value: Any,
    ctx: AgentContext | None = None,
    *,
    model: Model | None = None,
) -> BaseModel | dict[str, Any]:
    """Run one LLM agent on its validated input; return its validated output.

    ``model`` replaces the configured model (tests pass pydantic-ai's ``TestModel`` or
    ``FunctionModel``). Raises :class:`LLMUnavailableError` (or a subclass) when no output
    can be had, with a redacted message that says what to configure or fix.
    """
    manifest = agent.manifest
    timeout = manifest.timeout_seconds
    deadline = time.monotonic() + timeout * DEADLINE_FRACTION if timeout else None
    spec = model_spec(agent) if model is None else model.model_name
    llm = model if model is not None else resolve_model(spec)
    max_retries = _int_env(ENV_MAX_RETRIES, DEFAULT_MAX_RETRIES)
    output_retries = _int_env(ENV_OUTPUT_RETRIES, DEFAULT_OUTPUT_RETRIES)
    output_schema = _load_schema(agent, "output")
    hook = _output_hook(agent)

    inputs = _input_dict(value)
    grant = ctx.budget_tokens if ctx is not None else None
    budget = grant if grant is not None else manifest.context.optimal_tokens or DEFAULT_BUDGET
    limit = ctx.token_limit if ctx is not None else None
    upstream = upstream_sources(manifest, inputs, ctx.upstream) if ctx is not None else {}
    files = inputs.get("files")
    if manifest.context.change and upstream and isinstance(files, list):
        # A review of these files (a chunk of a bigger change, or the whole change) is shown
        # the analysers' findings on them, and may triage only those.
        upstream = focus_upstream(upstream, [str(f) for f in files])
    reserve = change_reserve(manifest, inputs)
    fit = fit_prompt(manifest, inputs, output_schema, limit or budget, upstream, reserve)
    prompt, context = fit.prompt, fit.context
    parts = prompt_parts(prompt, output_schema)
    if ctx is not None:
        ctx.tokens_delivered = context.tokens
        ctx.prompt_tokens = fit.tokens  # the metrics record's prompt_tokens
        ctx.prompt_parts = parts
        ctx.notes.update(
            model=spec,
            context_budget=context.budget,
            prompt_budget=budget,
            prompt_tokens=fit.tokens,
            upstream=sorted(upstream),
        )
        if fit.shrunk:
            ctx.notes["prompt_shrunk"] = list(fit.shrunk)
    if limit is not None and fit.tokens > limit:
        # Checked before the model is paid; the runtime counts the same parts again.
        from agentrt.context.budget import BudgetExceededError

        raise BudgetExceededError(
            f"{manifest.key}'s prompt is {fit.tokens:,} tokens without the model called, more "
            f"than the {limit:,} it was granted, even with its inputs and upstream outputs "
            f"shrunk to the least (instructions and output schema: {fit.minimum:,} tokens); "
            "raise the workflow's budget.total_tokens or the agent's context.min_tokens, or "
            "shorten its prompt"
        )
    call = LLMCall(manifest.key, spec, context.tokens, context.paths, dict(upstream))

    from pydantic_ai import Agent, ModelRetry, RunUsage

    remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
    settings: dict[str, Any] = {"max_retries": max_retries}
    if remaining is not None:
        settings["timeout"] = remaining  # per HTTP attempt; `remaining` also bounds the run
    pydantic_agent: Agent[None, Any] = Agent(
        llm,
        output_type=_output_type(agent, output_schema),
        instructions=prompt.instructions,
        name=manifest.id,
        model_settings=settings,  # type: ignore[arg-type]
        retries={"output": output_retries},
    )
    answers: list[Any] = []  # the model's own answers, before the hook adds to them
    if hook is not None:

        @pydantic_agent.output_validator
        def _hooked(output: Any) -> Any:
            answers.append(
                output.model_copy(deep=True) if isinstance(output, BaseModel) else output
            )
            try:
                return hook(output, value, call)
            except OutputRejected as exc:
                raise ModelRetry(str(exc)) from None

    usage = RunUsage()  # filled in place, so failed runs report their usage too
    failure: LLMUnavailableError | None = None
    try:
        output = pydantic_agent.run_sync(prompt.user, usage=usage, timeout=remaining).output
    except Exception as exc:  # mapped to a redacted, actionable error below
        failure = _map_failure(exc, spec, llm, max_retries, output_retries, remaining)
    finally:
        if ctx is not None:
            ctx.llm_input_tokens = usage.input_tokens
            ctx.llm_output_tokens = usage.output_tokens
            ctx.llm_model = spec  # the runtime prices the tokens (agentrt.agents.prices)
    if failure is not None:
        # Raised outside the except block so the provider's exception, whose message or
        # request may carry a key, is not chained to ours.
        raise failure
    if ctx is not None and context.items:
        # What the model cited, not what a hook added (e.g. the list of delivered files).
        answer = answers[-1] if answers else output
        ctx.tokens_referenced = referenced_context_tokens(context.items, answer)
    if isinstance(output, str) and output_schema is None:
        return {"text": output}
    return output


def referenced_context_tokens(items: Any, output: Any) -> int:
    """Tokens of the delivered context ``items`` the model's answer cites: their path (with
    a line inside their range, when the citation has a line) in a field or in the text, or
    a name defined in them (:mod:`agentrt.agents.citations`, docs/metrics.md)."""
    from agentrt.agents.citations import referenced_tokens

    return referenced_tokens(items, output)


def _where(llm: Model) -> str:
    base_url = getattr(llm, "base_url", None)
    return f" at {redact(str(base_url))}" if base_url else ""


def _map_failure(
    exc: Exception,
    spec: str,
    llm: Model,
    max_retries: int,
    output_retries: int,
    timeout: float | None,
) -> LLMUnavailableError:
    """The redacted, actionable error for a failed model run."""
    from pydantic_ai.exceptions import (
        ModelAPIError,
        ModelAuthenticationError,
        ModelHTTPError,
        ModelRequestTimeout,
        ModelTimeoutError,
        RunTimedOut,
        UnexpectedModelBehavior,
        UserError,
    )

    detail = redact(_short(str(exc)))
    if isinstance(exc, RunTimedOut | ModelRequestTimeout | ModelTimeoutError | TimeoutError):
        limit = f"{timeout:.1f} s" if timeout else "its deadline"
        return LLMTimeoutError(
            f"{spec}{_where(llm)} did not answer within {limit} ({DEADLINE_FRACTION:.0%} of the "
            f"agent's timeout_seconds): {detail}; raise timeout_seconds or use a faster model"
        )
    if isinstance(exc, ModelAuthenticationError):
        return LLMUnavailableError(
            f"{spec}{_where(llm)} rejected the credentials: {detail}; check the API key "
            "variable for this provider (e.g. OPENAI_API_KEY, ANTHROPIC_API_KEY)"
        )
    if isinstance(exc, ModelHTTPError):
        return LLMUnavailableError(
            f"{spec}{_where(llm)} failed with HTTP {exc.status_code} after {max_retries} "
            f"retries ({ENV_MAX_RETRIES}): {detail}"
        )
    if isinstance(exc, ModelAPIError):
        return LLMUnavailableError(
            f"{spec}{_where(llm)} could not be reached after {max_retries} retries "
            f"({ENV_MAX_RETRIES}): {detail}; check the base URL and the network"
        )
    if isinstance(exc, UnexpectedModelBehavior):
        return LLMOutputError(
            f"{spec} did not return output matching the agent's output schema after "
            f"{output_retries} retries ({ENV_OUTPUT_RETRIES}): {detail}"
        )
    if isinstance(exc, UserError):
        return LLMUnavailableError(f"{spec} cannot be used: {detail}")
    return LLMUnavailableError(f"{spec} failed: {type(exc).__name__}: {detail}")
