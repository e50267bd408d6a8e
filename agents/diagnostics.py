"""Problems found in manifests, and safe YAML loading that remembers line numbers.

Every user-facing manifest error is a :class:`Problem` printed as
``file:line: field: what is wrong and how to fix it``. YAML is parsed with PyYAML's safe
loader only, so a manifest can never construct Python objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

__all__ = ["ManifestError", "Problem", "YamlDocument", "load_yaml", "problems_from_validation"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a manifest, located as precisely as we can."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field or '(document)'}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message}


class ManifestError(ValueError):
    """A manifest (or a set of them) is invalid; ``problems`` says where and why."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(slots=True)
class YamlDocument:
    """A parsed YAML mapping plus the line of every key path (1-based)."""

    path: str
    data: dict[str, Any]
    lines: dict[tuple[str | int, ...], int]

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The line of the deepest known prefix of ``loc`` (pydantic error locations)."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), 1)


def _index_lines(node: yaml.Node, prefix: tuple[str | int, ...], out: dict) -> None:
    out.setdefault(prefix, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            out[(*prefix, key)] = key_node.start_mark.line + 1
            _index_lines(value_node, (*prefix, key), out)
            # Keep the key's own line for the path: errors on a key read best there.
            out[(*prefix, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*prefix, i), out)


def load_yaml(path: str | Path, text: str | None = None) -> YamlDocument:
    """Parse one YAML mapping safely; raise :class:`ManifestError` with the line on failure."""
    path = Path(path)
    shown = str(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestError(
                [Problem(shown, None, "", f"not UTF-8 text ({exc.reason}); save it as UTF-8")]
            ) from None
        except OSError as exc:
            raise ManifestError(
                [Problem(shown, None, "", f"cannot read: {exc.strerror}")]
            ) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = exc.problem or exc.context or "invalid YAML"
        hint = ""
        if "could not determine a constructor" in str(exc):
            hint = "; YAML tags that construct objects are not allowed in manifests, remove the tag"
        raise ManifestError(
            [Problem(shown, line, "", f"YAML syntax error: {what}{hint}")]
        ) from None
    except yaml.YAMLError as exc:
        raise ManifestError([Problem(shown, None, "", f"YAML error: {exc}")]) from None
    if node is None or data is None:
        raise ManifestError([Problem(shown, 1, "", "the file is empty; write a YAML mapping")])
    if not isinstance(data, dict):
        raise ManifestError(
            [
                Problem(
                    shown,
                    node.start_mark.line + 1,
                    "",
                    f"expected a YAML mapping (key: value), found a {type(data).__name__}",
                )
            ]
        )
    lines: dict[tuple[str | int, ...], int] = {}
    _index_lines(node, (), lines)
    return YamlDocument(path=shown, data=data, lines=lines)


_HINTS = {
    "extra_forbidden": "unknown field; remove it or check the spelling",
    "missing": "required field is missing; add it",
}


def problems_from_validation(doc: YamlDocument, error: ValidationError) -> list[Problem]:
    """Turn a pydantic error into located problems, one per error."""
    problems = []
    for err in error.errors(include_url=False):
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        field = ".".join(str(p) for p in loc)
        message = _HINTS.get(err["type"]) or err["msg"]
        if message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        problems.append(Problem(doc.path, doc.line_of(loc), field, message))
    return problems


def format_problems(problems: Iterable[Problem]) -> str:
    return "\n".join(str(p) for p in problems)
