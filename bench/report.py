"""Write one benchmark's table into docs/benchmarks.md, between markers of its own.

Each benchmark owns a section ``<!-- bench:NAME -->`` … ``<!-- /bench:NAME -->``; rerunning
a benchmark replaces only its section, so benchmarks can run separately.
"""

from __future__ import annotations

import platform
import re
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
_HEADER = (
    "# Benchmarks\n\n"
    "Every table below was written by the command shown above it (`make bench` runs them all).\n"
    "Ratios are measured side by side in one run on the same machine.\n"
)


def machine() -> str:
    import os

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {load:.1f} at the end"
    )


def _module_name() -> str:
    """The benchmark's module as ``python -m`` wants it (``bench.orchestration``)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        return spec.name.removesuffix(".__main__")
    parts = Path(sys.argv[0]).resolve().with_suffix("").parts
    # Run as a file, possibly from another checkout: the module path starts at bench/.
    if "bench" in parts:
        parts = parts[len(parts) - 1 - parts[::-1].index("bench") :]
    return ".".join(parts)


def write_section(name: str, title: str, body: str, command: str | None = None) -> Path:
    """Replace (or append) the section ``name`` of docs/benchmarks.md."""
    command = command or "python -m " + " ".join(
        [_module_name()] + [shlex.quote(a) for a in sys.argv[1:]]
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    section = (
        f"<!-- bench:{name} -->\n## {title}\n\n"
        f"Command: `{command}` — {stamp}, {machine()}\n\n{body.strip()}\n"
        f"<!-- /bench:{name} -->\n"
    )
    text = DOC.read_text() if DOC.exists() else _HEADER
    tag = re.escape(name)
    pattern = re.compile(rf"<!-- bench:{tag} -->.*?<!-- /bench:{tag} -->\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section, text)
    else:
        text = text.rstrip() + "\n\n" + section
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
    return DOC
