"""Tests for bench.report, which writes docs/benchmarks.md sections."""

from __future__ import annotations

import sys

import pytest

from bench import report


@pytest.mark.parametrize(
    ("argv0", "module"),
    [
        ("bench/load.py", "bench.load"),
        # Run as a file from another checkout: the command must still be `python -m bench.x`.
        ("/elsewhere/work/main/bench/pipelines.py", "bench.pipelines"),
        ("/x/bench/tree/bench/orchestration.py", "bench.orchestration"),
    ],
)
def test_the_command_names_the_benchmark_module(
    argv0: str, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.modules["__main__"], "__spec__", None, raising=False)
    monkeypatch.setattr(sys, "argv", [argv0])
    assert report._module_name() == module
