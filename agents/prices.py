"""What an LLM call costs: model prices, and the cost of the tokens a provider reported.

The built-in table is ``agents/prices.toml`` (installed as ``agentrt/agents/prices.toml``):
US dollars per million input and output tokens for common OpenAI and Anthropic models, keyed
``provider:model`` as ``AGENTRT_MODEL`` and manifests name them::

    ["openai:gpt-4o-mini"]
    input = 0.15
    output = 0.60

``AGENTRT_PRICES`` names a TOML file in the same format whose entries are added to the
table and win over it (a price the table lacks, a negotiated price, a local model at 0).

Lookup (:func:`price_of`): the model as named, then with a date suffix left out
(``gpt-4o-mini-2024-07-18``, ``claude-sonnet-4-5-20250929``), then with ``openai-chat`` /
``openai-responses`` read as ``openai``. An ``openai:`` model called through an
OpenAI-compatible server (``AGENTRT_LLM_BASE_URL`` or ``OPENAI_BASE_URL`` set: vLLM, a proxy,
a test server) is not OpenAI's: only ``AGENTRT_PRICES`` prices it. A model without a price
costs None (unknown), never 0.

The runtime calls :func:`cost_usd` for every attempt that reports a model
(``ctx.llm_model``; the LLM runner sets it) and puts the result in the attempt's metrics
record (``cost_usd``). Cached-input discounts and batch prices are not applied: input
tokens at the input price, an upper bound.
"""

from __future__ import annotations

import functools
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agentrt.errors import AgentrtError

__all__ = [
    "BUILTIN_PRICES",
    "ENV_PRICES",
    "Price",
    "PricesError",
    "cost_usd",
    "load_prices",
    "price_of",
]

ENV_PRICES = "AGENTRT_PRICES"
#: The built-in table (TOML), next to this module.
BUILTIN_PRICES = Path(__file__).with_name("prices.toml")
_DATE = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2})$")
_OPENAI_ALIASES = ("openai-chat", "openai-responses")
_BASE_URLS = ("AGENTRT_LLM_BASE_URL", "OPENAI_BASE_URL")


class PricesError(AgentrtError, ValueError):
    """A prices file that cannot be read (``AGENTRT_PRICES``, or the built-in table)."""

    hint = (
        'fix the prices file (TOML: ["provider:model"] with input = and output =, US dollars '
        "per million tokens) or unset AGENTRT_PRICES"
    )


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """The cost of these tokens in US dollars."""
        return (input_tokens * self.input + output_tokens * self.output) / 1_000_000


def _number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _read(path: Path) -> dict[str, Price]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PricesError(f"prices file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PricesError(f"prices file {path} is not valid TOML: {exc}") from None
    prices: dict[str, Price] = {}
    for model, entry in data.items():
        if not isinstance(entry, dict) or not all(
            _number(entry.get(k)) for k in ("input", "output")
        ):
            raise PricesError(
                f'prices file {path}: ["{model}"] needs input = and output =, each a number '
                ">= 0 (US dollars per million tokens)"
            )
        if set(entry) - {"input", "output"}:
            extra = ", ".join(sorted(set(entry) - {"input", "output"}))
            raise PricesError(f'prices file {path}: ["{model}"] has unknown keys: {extra}')
        prices[model.strip()] = Price(float(entry["input"]), float(entry["output"]))
    return prices


@functools.lru_cache(maxsize=8)
def _cached(path: str, mtime_ns: int) -> dict[str, Price]:
    return _read(Path(path))


def _file(path: Path) -> dict[str, Price]:
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise PricesError(f"prices file {path}: {exc.strerror or exc}") from None
    return _cached(str(path), mtime)


def load_prices(path: str | os.PathLike[str] | None = None) -> tuple[dict[str, Price], set[str]]:
    """The prices in effect: the built-in table with the override's entries added (``path``,
    else ``AGENTRT_PRICES``), and the models the override names. Raises
    :class:`PricesError` for an override that cannot be read."""
    prices = dict(_file(BUILTIN_PRICES))
    override = path if path is not None else os.environ.get(ENV_PRICES) or None
    if override is None:
        return prices, set()
    extra = _file(Path(override).expanduser())
    prices.update(extra)
    return prices, set(extra)


def _candidates(model: str) -> list[str]:
    provider, sep, name = model.strip().partition(":")
    names = [name] if sep else [provider]
    undated = _DATE.sub("", names[0])
    if undated != names[0]:
        names.append(undated)
    providers = [provider] if sep else []
    if provider in _OPENAI_ALIASES:
        providers.append("openai")
    if not sep:
        return names
    return [f"{p}:{n}" for p in providers for n in names]


def _compatible_server(model: str) -> bool:
    provider = model.partition(":")[0]
    return (provider == "openai" or provider in _OPENAI_ALIASES) and any(
        os.environ.get(v) for v in _BASE_URLS
    )


def price_of(model: str, prices: Mapping[str, Price] | None = None) -> Price | None:
    """The price of ``model`` (``provider:model``), or None when it is not known (see the
    module: an ``openai:`` model behind a base URL is priced only by ``AGENTRT_PRICES``).
    ``prices`` replaces the table in effect (:func:`load_prices`)."""
    if prices is None:
        table, overridden = load_prices()
        if _compatible_server(model):
            table = {k: v for k, v in table.items() if k in overridden}
    else:
        table = dict(prices)
    return next((table[c] for c in _candidates(model) if c in table), None)


def cost_usd(
    model: str | None, input_tokens: int | None, output_tokens: int | None
) -> float | None:
    """What ``input_tokens`` and ``output_tokens`` of ``model`` cost in US dollars; None when
    there is no model, no token count or no known price (unknown, not free)."""
    if not model or (input_tokens is None and output_tokens is None):
        return None
    price = price_of(model)
    if price is None:
        return None
    return round(price.cost(input_tokens or 0, output_tokens or 0), 9)
