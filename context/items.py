"""One delivered piece of context: :class:`SelectionItem`.

A module of its own, without the selection machinery (:mod:`agentrt.context.select`
imports numpy and the ranking), so that agents can declare it in their output models
cheaply: ``context_gathering`` delivers a list of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["SelectionItem"]


@dataclass(slots=True)
class SelectionItem:
    """One delivered piece of context (see :meth:`Selection.to_json` for the fields).

    ``why`` says what puts it there when the rank alone does not: a twin of another item
    (the same code in an amalgamation), or where else its code is (see
    :mod:`agentrt.context.twins`); change and issue contexts give every item one.
    """

    path: str
    start_line: int
    end_line: int
    kind: str
    score: float
    tokens: int
    text: str
    why: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "kind": self.kind,
            "score": round(float(self.score), 4),
            "tokens": self.tokens,
            "text": self.text,
        }
        if self.why:
            out["why"] = self.why
        return out
