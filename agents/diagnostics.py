"""Problems found in manifests, and safe YAML loading that remembers line numbers.

Every user-facing manifest error is a :class:`Problem` printed as
``file:line: field: what is wrong and how to fix it``. YAML is parsed with PyYAML's safe
loader only, so a manifest can never construct Python objects.
"""

from __future__ import annotations

import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agentrt.errors import AgentrtError

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


class ManifestError(AgentrtError, ValueError):
    """A manifest (or a set of them) is invalid; ``problems`` says where and why."""

    retryable = False
    hint = "run `agentrt agents validate` and fix the problems it lists"

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


MAX_MANIFEST_BYTES = 1_000_000
"""Larger manifests are refused unread: PyYAML parses ~2 MB/s at ~100x the file in memory."""


class _AliasRefused(yaml.MarkedYAMLError):
    """A manifest uses a YAML alias (not a syntax error, so reported in its own words)."""


class _ManifestLoader(yaml.SafeLoader):
    """The safe loader without aliases: ``*name`` can expand to billions of nodes."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _AliasRefused(
                problem=f"YAML alias *{event.anchor} is not allowed in manifests (aliases can "
                "expand without bound); write the value out in full",
                problem_mark=event.start_mark,
            )
        return super().compose_node(parent, index)


def _index_lines(
    node: yaml.Node,
    prefix: tuple[str | int, ...],
    out: dict,
    duplicates: list[tuple[str, int, int]],
) -> None:
    """Record the line of every key path in ``out``; note repeated keys in ``duplicates``
    as (field, line, first line): the safe loader would silently keep the last one."""
    out.setdefault(prefix, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                duplicates.append((".".join(map(str, (*prefix, key))), line, seen[key]))
            seen.setdefault(key, line)
            out[(*prefix, key)] = line
            _index_lines(value_node, (*prefix, key), out, duplicates)
            # Keep the key's own line for the path: errors on a key read best there.
            out[(*prefix, key)] = line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*prefix, i), out, duplicates)


def _read_text(path: Path) -> str:
    """The file's text; refuse what is not a regular file, too big, or not UTF-8."""
    shown = str(path)
    try:
        info = path.stat()
        # Opening a FIFO or a device could block or never end: look before opening.
        if not stat.S_ISREG(info.st_mode):
            raise ManifestError([Problem(shown, None, "", "not a regular file")])
        if info.st_size > MAX_MANIFEST_BYTES:
            raise ManifestError([_too_big(shown, info.st_size)])
        with path.open("rb") as fh:
            raw = fh.read(MAX_MANIFEST_BYTES + 1)  # it may have grown since the stat
    except OSError as exc:
        raise ManifestError([Problem(shown, None, "", f"cannot read: {exc.strerror}")]) from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError([_too_big(shown, len(raw))])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ManifestError(
            [Problem(shown, line, "", f"not UTF-8 text ({exc.reason}); save it as UTF-8")]
        ) from None


def _too_big(shown: str, size: int) -> Problem:
    return Problem(
        shown,
        1,
        "",
        f"the file is {size / 1_000_000:.1f} MB; manifests are limited to "
        f"{MAX_MANIFEST_BYTES // 1_000_000} MB: move large data out of the manifest",
    )


def load_yaml(path: str | Path, text: str | None = None) -> YamlDocument:
    """Parse one YAML mapping safely; raise :class:`ManifestError` with the line on failure.

    Refused: files over :data:`MAX_MANIFEST_BYTES`, aliases, and repeated keys.
    """
    path = Path(path)
    shown = str(path)
    if text is None:
        text = _read_text(path)
    elif (size := len(text.encode("utf-8", "surrogatepass"))) > MAX_MANIFEST_BYTES:
        raise ManifestError([_too_big(shown, size)])
    loader = _ManifestLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ManifestError([Problem(shown, 1, "", "the file is empty; write a YAML mapping")])
        lines: dict[tuple[str | int, ...], int] = {}
        duplicates: list[tuple[str, int, int]] = []
        _index_lines(node, (), lines, duplicates)
        if duplicates:
            raise ManifestError(
                [
                    Problem(
                        shown,
                        line,
                        field,
                        f"duplicate key (first on line {first}); YAML would keep only the "
                        "last one: remove one of them",
                    )
                    for field, line, first in duplicates
                ]
            )
        data = loader.construct_document(node)
    except _AliasRefused as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ManifestError([Problem(shown, line, "", str(exc.problem))]) from None
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
    except RecursionError:  # PyYAML composes and constructs recursively
        raise ManifestError(
            [Problem(shown, loader.line + 1, "", "nested too deeply; flatten the structure")]
        ) from None
    finally:
        loader.dispose()
    if data is None:
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
