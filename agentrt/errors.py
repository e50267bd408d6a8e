"""The root of agentrt's errors.

Every error agentrt raises on purpose derives from :class:`AgentrtError`. Each class says
whether a failed attempt that raised it is worth retrying (``retryable``) and what to do
about it (``hint``); the runtime reads these attributes instead of matching class names.
This module imports nothing from agentrt, so every layer can use it.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["AgentrtError"]


class AgentrtError(Exception):
    """Base class of agentrt's errors.

    ``retryable``: whether retrying the same attempt can succeed. ``hint``: one sentence on
    how to fix it, shown in error reports (may name ``{agent}``).
    """

    retryable: ClassVar[bool] = True
    hint: ClassVar[str] = ""
