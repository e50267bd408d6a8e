"""The built-in agents. Each module has ``Input``, ``Output``, ``run`` and ``render_markdown``."""

from __future__ import annotations

import ast
import sys
import threading

if sys.version_info < (3, 12) and not getattr(ast.parse, "_agentrt_serialised", False):
    # CPython 3.11 can corrupt its AST recursion counter when several threads call
    # ast.parse at once ("SystemError: AST constructor recursion depth mismatch",
    # python/cpython#106905). Agents run in parallel threads and parse (ours and radon's
    # calls alike), so parsing is serialised; it holds the GIL anyway.
    _parse = ast.parse
    _lock = threading.Lock()

    def _serialised_parse(*args, **kwargs):  # type: ignore[no-untyped-def]
        with _lock:
            return _parse(*args, **kwargs)

    _serialised_parse._agentrt_serialised = True  # type: ignore[attr-defined]
    ast.parse = _serialised_parse  # type: ignore[assignment]
