"""Keep secrets out of everything agentrt writes: errors, records, reports, artifacts.

Two nets: the *values* of environment variables whose names say they hold a secret
(``*_API_KEY``, ``*_TOKEN``, ``*SECRET*``, ``*PASSWORD*``…), and well-known key shapes
(OpenAI/Anthropic/Groq ``sk-…`` including the masked forms providers echo, Google ``AIza…``,
GitHub ``ghp_…``, AWS ``AKIA…``, Slack ``xox…``, bearer/basic credentials, ``api_key=…``
pairs, ``?key=`` query parameters, credentials in URLs).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from typing import Any

__all__ = [
    "REDACTED",
    "RedactingFilter",
    "install_log_redaction",
    "redact",
    "redact_data",
    "secret_name",
]

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


# One pass to tell whether any pattern can match: most strings in a result (ids, states,
# paths, code) match none, and ten ``sub`` calls each cost more than one ``search``.
_ANY_PATTERN = re.compile(
    "|".join(
        f"(?i:{p.pattern.removeprefix('(?i)')})" if p.pattern.startswith("(?i)") else p.pattern
        for p, _ in _PATTERNS
    )
)


def secret_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret (``*_API_KEY``, …)."""
    return _SECRET_NAME.search(name) is not None


def _env_secrets() -> list[str]:
    return [
        value
        for name, value in os.environ.items()
        if secret_name(name) and len(value) >= 8 and not value.isdigit()
    ]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with secret values (``secrets`` and secret-named environment variables) and
    key-shaped strings replaced by ``[REDACTED]``."""
    if not text:
        return text
    return _redact(text, _secret_values(secrets))


def redact_data(data: Any, secrets: Iterable[str] = ()) -> Any:
    """:func:`redact` applied to every string inside JSON-like data."""
    values = _secret_values(secrets)  # once per call: reading the environment is not free

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return _redact(item, values) if item else item
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        return item

    return walk(data)


def _secret_values(secrets: Iterable[str]) -> list[str]:
    # Longest first, so no partial leftovers of a longer secret that contains a shorter one.
    return sorted({s for s in secrets if len(s) >= 8} | set(_env_secrets()), key=len, reverse=True)


def _redact(text: str, values: list[str]) -> str:
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    if _ANY_PATTERN.search(text) is None:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter that redacts a record's message and traceback before any output.

    It renders the message (``msg % args``) and the exception text itself, redacts them,
    and leaves them on the record, where every formatter (console, Prefect's API handler,
    JSON) takes them from.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "agentrt_redacted", False):
            return True  # the same record reaches several handlers
        values = _secret_values(())
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging's own error path
            return True
        record.msg, record.args = _redact(message, values), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _redact(record.exc_text, values)
        if record.stack_info:
            record.stack_info = _redact(record.stack_info, values)
        record.agentrt_redacted = True
        return True


_FILTER = RedactingFilter()


def install_log_redaction(prefixes: tuple[str, ...] = ("prefect",)) -> None:
    """Put :class:`RedactingFilter` on the handlers of the root logger and of every logger
    under ``prefixes`` (Prefect's console and API handlers). Idempotent; call it after the
    logging configuration is set up (Prefect's is, on import)."""
    manager = logging.Logger.manager
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [
        logger
        for name, logger in list(manager.loggerDict.items())
        if isinstance(logger, logging.Logger) and name.startswith(prefixes)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
