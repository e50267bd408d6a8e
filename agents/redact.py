"""Keep secrets out of everything agentrt writes: errors, records, reports, artifacts.

Two nets: the *values* of environment variables whose names say they hold a secret
(``*_API_KEY``, ``*_TOKEN``, ``*SECRET*``, ``*PASSWORD*``…), and well-known key shapes
(OpenAI/Anthropic/Groq ``sk-…`` including the masked forms providers echo, Google ``AIza…``,
GitHub ``ghp_…``, AWS ``AKIA…``, Slack ``xox…``, bearer/basic credentials, ``api_key=…``
pairs, ``?key=`` query parameters, credentials in URLs).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["REDACTED", "redact", "redact_data"]

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.I)
MASK = REDACTED = "[REDACTED]"
#: Key-shaped text as (pattern, replacement).
_PATTERNS = [
    (re.compile(r"\b(?:sk|gsk)[-_][A-Za-z0-9_\-*.]{8,}"), MASK),
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{20,}"), MASK),
    (re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"), MASK),
    (re.compile(r"github_pat_[A-Za-z0-9_]{20,}"), MASK),
    (re.compile(r"AKIA[0-9A-Z]{16}"), MASK),
    (re.compile(r"xox[abposr]-[A-Za-z0-9\-]{10,}"), MASK),
    (re.compile(r"(?i)\b((?:bearer|basic)\s+)[A-Za-z0-9_\-.=+/*]{8,}"), rf"\1{MASK}"),
    (
        re.compile(
            r"(?i)((?:api[_-]?key|x-api-key|authorization|access[_-]?token|secret)"
            r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',}&]{4,}"
        ),
        rf"\1{MASK}",
    ),
    (re.compile(r"(?i)([?&](?:key|api_key|token)=)[^&\s\"']+"), rf"\1{MASK}"),
    (re.compile(r"(https?://)[^/\s:@]+:[^/\s@]+@"), rf"\1{MASK}@"),
]


def _env_secrets() -> list[str]:
    values = [
        value
        for name, value in os.environ.items()
        if _SECRET_NAME.search(name) and len(value) >= 8 and not value.isdigit()
    ]
    return sorted(set(values), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with secret values (``secrets`` and secret-named environment variables) and
    key-shaped strings replaced by ``[REDACTED]``."""
    if not text:
        return text
    extra = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)
    for value in [*extra, *_env_secrets()]:  # longest first: no partial leftovers
        if value in text:
            text = text.replace(value, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_data(data: Any) -> Any:
    """:func:`redact` applied to every string inside JSON-like data."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {k: redact_data(v) for k, v in data.items()}
    if isinstance(data, list):
        return [redact_data(v) for v in data]
    return data
