"""A workflow's `inputs` mapping into a field of another type is a plan problem (exit 2)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from agentrt.cli import app
from tests.runtime.helpers import write

runner = CliRunner()


def setup(tmp_path: Path, field: str) -> Path:
    write(
        tmp_path / "agents" / "types_flow.py",
        """
        from pydantic import BaseModel


        class Out(BaseModel):
            count: int
            names: list[str]


        class In(BaseModel):
            files: list[str] = []


        def produce(inputs=None) -> Out:
            return Out(count=1, names=["a.py"])


        def consume(inputs: In) -> dict:
            return {}
        """,
    )
    base = "version: 1.0.0\ninput: types_flow:In\n"
    write(
        tmp_path / "agents" / "p.yaml",
        f"id: producer\n{base}entrypoint: types_flow:produce\noutput: types_flow:Out\n",
    )
    write(tmp_path / "agents" / "c.yaml", f"id: consumer2\n{base}entrypoint: types_flow:consume\n")
    return write(
        tmp_path / "wf.yaml",
        f"""
        name: types
        steps:
          - agent: producer
          - agent: consumer2
            inputs: {{files: producer.{field}}}
        """,
    )


def test_a_mapping_between_types_that_cannot_match_is_reported(tmp_path: Path) -> None:
    wf = setup(tmp_path, "count")
    result = runner.invoke(app, ["workflows", "show", str(wf), "-A", str(tmp_path / "agents")])
    assert result.exit_code == 2, result.output
    assert (
        "wf.yaml:5: steps.1.inputs.files: producer.count is number (producer@1.0.0's output) "
        "but consumer2@1.0.0's input files is array; map a field of the same type"
    ) in " ".join(result.stderr.split())


def test_a_mapping_of_the_same_type_is_fine(tmp_path: Path) -> None:
    wf = setup(tmp_path, "names")
    result = runner.invoke(app, ["workflows", "show", str(wf), "-A", str(tmp_path / "agents")])
    assert result.exit_code == 0, result.output
