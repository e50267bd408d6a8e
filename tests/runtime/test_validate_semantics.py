"""`agents validate` reports valid manifests that would misbehave: min_confidence without a
confidence output field, requirement lists YAML split at a comma."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from agentrt.cli import app
from tests.runtime.helpers import write

runner = CliRunner()


def validate(folder: Path) -> tuple[int, list[str]]:
    result = runner.invoke(app, ["agents", "validate", str(folder)])
    return result.exit_code, result.stderr.splitlines()


def test_a_requirement_split_at_its_comma_says_to_quote_it(tmp_path: Path) -> None:
    write(
        tmp_path / "a.yaml",
        """
        id: splitter
        version: 1.0.0
        entrypoint: agentrt.agents.builtin.code_review:run
        requires: [context_gathering>=1,<2]
        fallbacks: [code_review>=1,<2]
        """,
    )
    code, lines = validate(tmp_path)
    assert code == 2
    assert any(
        line.endswith(
            "a.yaml:4: requires: '<2' is not an agent: YAML split the requirement "
            "at its comma; quote it: 'context_gathering>=1,<2' "
            "(requires: ['context_gathering>=1,<2'])"
        )
        for line in lines
    ), lines
    assert any("a.yaml:5: fallbacks:" in line and "'code_review>=1,<2'" in line for line in lines)


def test_min_confidence_without_a_confidence_field(tmp_path: Path) -> None:
    write(
        tmp_path / "models_mc.py",
        """
        from pydantic import BaseModel


        class Out(BaseModel):
            summary: str


        class Sure(BaseModel):
            summary: str
            confidence: float
        """,
    )
    base = (
        "version: 1.0.0\nentrypoint: agentrt.agents.builtin.code_review:run\nmin_confidence: 0.7\n"
    )
    write(tmp_path / "model.yaml", f"id: by_model\n{base}output: models_mc:Out\n")
    write(
        tmp_path / "inline.yaml",
        f"id: by_schema\n{base}output: "
        "{type: object, properties: {summary: {type: string}}}\n",
    )
    write(tmp_path / "ok.yaml", f"id: sure\n{base}output: models_mc:Sure\n")
    code, lines = validate(tmp_path)
    assert code == 2
    problems = [line for line in lines if "min_confidence:" in line]
    assert len(problems) == 2, lines
    assert any(
        "model.yaml:4: min_confidence: the output (models_mc:Out) has no confidence" in p
        for p in problems
    )
    assert any(
        "inline.yaml:4: min_confidence: the output (the inline output schema)" in p
        for p in problems
    )
    assert all(
        "add `confidence: float` to the output, or remove min_confidence" in p for p in problems
    )


def test_context_delivered_must_name_an_output_field(tmp_path: Path) -> None:
    write(
        tmp_path / "models_cd.py",
        """
        from pydantic import BaseModel


        class Item(BaseModel):
            path: str
            text: str


        class Out(BaseModel):
            summary: str
            items: list[Item]
            extra: dict
        """,
    )
    base = "version: 1.0.0\nentrypoint: agentrt.agents.builtin.code_review:run\n"
    cases = {
        "top": ("models_cd:Out", "itemz"),  # a typo
        "nested": ("models_cd:Out", "items.0.txt"),
        "unindexed": ("models_cd:Out", "items.text"),  # lookup_field indexes lists
        "inline": ("{type: object, properties: {text: {type: string}}}", "texts"),
        "ok_top": ("models_cd:Out", "items"),
        "ok_nested": ("models_cd:Out", "items.0.text"),
        "ok_open": ("models_cd:Out", "extra.anything"),  # a dict: its keys cannot be known
        "ok_inline": ("{type: object, properties: {text: {type: string}}}", "text"),
    }
    for name, (output, delivered) in cases.items():
        write(
            tmp_path / f"{name}.yaml",
            f"id: {name}\n{base}output: {output}\ncontext:\n  min_tokens: 10\n"
            f"  delivered: {delivered}\n",
        )
    code, lines = validate(tmp_path)
    assert code == 2
    problems = {
        line.split(":")[0].rsplit("/", 1)[-1]: line for line in lines if "context.delivered" in line
    }
    assert sorted(problems) == ["inline.yaml", "nested.yaml", "top.yaml", "unindexed.yaml"], lines
    assert problems["top.yaml"].endswith(
        "top.yaml:7: context.delivered: 'itemz': 'itemz' is not a field of the output "
        "(extra, items, summary); name the output field that holds the context the agent "
        "delivers (the runtime counts it against the grant), or remove context.delivered"
    )
    assert "'txt' is not a field of field 'items.0' (path, text)" in problems["nested.yaml"]
    assert (
        "field 'items' is a list: name an item by its index (items.0)" in problems["unindexed.yaml"]
    )
    assert "'texts' is not a field of the output (text)" in problems["inline.yaml"]
