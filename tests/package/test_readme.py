"""The README's Python examples run as written (on a copy of a small repository)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_public_api_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (example,) = [b for b in _python_blocks() if b.startswith("import agentrt\n")]
    repo = tmp_path / "repo"
    (repo / "shop").mkdir(parents=True)
    (repo / "shop" / "retry.py").write_text(
        "def configure_retries(agent, attempts=3):\n"
        '    """Agent retries are configured here."""\n'
        "    return {'agent': agent, 'retries': attempts}\n"
    )
    (repo / "README.md").write_text("# shop\n")
    monkeypatch.chdir(repo)
    monkeypatch.setenv("AGENTRT_HOME", str(tmp_path / "home"))
    exec(compile(example, "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "['shop/retry.py']"
    assert out[1].startswith("code_review@1.")
    assert out[2].startswith(
        "completed ['analysis_summary', 'architecture_analysis', 'code_review', 'context_gathering'"
    )
