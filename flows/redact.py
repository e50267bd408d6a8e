"""Keep secrets out of everything agentrt writes: errors, records, reports, artifacts.

Two nets: the *values* of environment variables whose names say they hold a secret
(``*_API_KEY``, ``*_TOKEN``, ``*SECRET*``, ``*PASSWORD*``…), and well-known key shapes
(OpenAI/Anthropic ``sk-…``, GitHub ``ghp_…``, AWS ``AKIA…``, Slack ``xox…``, bearer tokens).
"""

from __future__ import annotations

import os
import re
from typing import Any

__all__ = ["redact", "redact_data"]

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.I)
_PATTERNS = [
    re.compile(r"sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}"),
    re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"github_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"AKIA[0-9A-Z]{16}"),
    re.compile(r"xox[abposr]-[A-Za-z0-9\-]{10,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{16,}"),
]
MASK = "[REDACTED]"


def _env_secrets() -> list[str]:
    values = [
        value
        for name, value in os.environ.items()
        if _SECRET_NAME.search(name) and len(value) >= 8 and not value.isdigit()
    ]
    return sorted(set(values), key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with secret values and key-shaped strings replaced by ``[REDACTED]``."""
    if not text:
        return text
    for value in _env_secrets():
        if value in text:
            text = text.replace(value, MASK)
    for pattern in _PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
        else:
            text = pattern.sub(MASK, text)
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
