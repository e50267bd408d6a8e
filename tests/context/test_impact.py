"""Change-impact context (agentrt.context.impact) on fixture repositories whose callers,
tests and importers are known: the Python API, the CLI, and bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentrt.cli.context import app
from agentrt.context.history import read_history
from agentrt.context.impact import ChangeError, ImpactSelection, change_sizes, select_impact
from agentrt.context.store import ContextStore
from agentrt.context.tokens import count_tokens

runner = CliRunner()

FILES = {
    "pkg/__init__.py": "from pkg.utils import parse_header\n",
    "pkg/utils.py": '''\
"""Header parsing."""


class Header:
    def __init__(self, name, value):
        self.name = name
        self.value = value

    def render(self):
        return f"{self.name}: {self.value}"


def parse_header(line):
    """Parse one 'Name: value' line."""
    name, value = line.split(":", 1)
    return Header(name.strip(), value.strip())


def unrelated():
    return 1
''',
    # A direct call of an imported function.
    "pkg/client.py": """\
from pkg.utils import parse_header


def read_headers(lines):
    return [parse_header(line) for line in lines]


def count(lines):
    return len(lines)
""",
    # Through an import-from alias.
    "pkg/alias.py": """\
from pkg.utils import parse_header as ph


def first_header(lines):
    return ph(lines[0])
""",
    # Through a module alias: an attribute call on the module.
    "pkg/modattr.py": """\
import pkg.utils as u


def via_module(line):
    return u.parse_header(line)
""",
    # Imports the module but never uses what changes: an importer, not a caller.
    "pkg/other.py": """\
from pkg import utils


def other():
    return utils.unrelated()
""",
    # Its own parse_header: not a caller of pkg.utils.parse_header.
    "pkg/legacy.py": """\
def parse_header(text):
    return text.split(":")


def legacy(text):
    return parse_header(text)
""",
    # A method whose name is defined once (resolved by name), and one defined twice.
    "pkg/service.py": """\
class Parser:
    def parse_line(self, line):
        return line.strip()

    def render(self):
        return "parser"

    def run(self, lines):
        return [self.parse_line(line) for line in lines]
""",
    "pkg/runner.py": """\
from pkg.service import Parser


def run_all(parser, lines):
    return [parser.parse_line(line) for line in lines]


def show(thing):
    return thing.render()
""",
    # Tests: one by naming convention (tests/test_utils.py), one by import and call.
    "tests/test_utils.py": """\
from pkg.utils import Header


def test_render():
    assert Header("a", "b").render() == "a: b"
""",
    "tests/test_parsing.py": """\
from pkg.utils import parse_header


def test_parse():
    assert parse_header("A: b").name == "A"


def test_unrelated_thing():
    assert 1 + 1 == 2
""",
    "tests/test_client.py": """\
from pkg.client import count


def test_count():
    assert count([1, 2]) == 2
""",
    "README.md": "# pkg\n\nParses headers.\n",
}


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(repo), *args],
        check=True,
        capture_output=True,
    )
    return done.stdout.decode()


def make_repo(root: Path, files: dict[str, str]) -> Path:
    """A git repository at ``root`` of ``files`` (path -> text), committed."""
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "base")
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", FILES)


@pytest.fixture
def store(tmp_path: Path) -> ContextStore:
    return ContextStore(tmp_path / "store")


def _edit(repo: Path, path: str, old: str, new: str) -> None:
    file = repo / path
    text = file.read_text()
    assert old in text
    file.write_text(text.replace(old, new))


def _change_parse_header(repo: Path) -> None:
    _edit(
        repo,
        "pkg/utils.py",
        "    return Header(name.strip(), value.strip())",
        "    return Header(name.strip().lower(), value.strip())",
    )


def _whys(selection: ImpactSelection) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in selection.items:
        out.setdefault(item.path, []).append(item.why)
    return out


def _delivered(selection: ImpactSelection, path: str) -> str:
    return "".join(item.text for item in selection.items if item.path == path)


def test_callers_of_a_changed_function(repo: Path, store: ContextStore) -> None:
    _change_parse_header(repo)
    selection = select_impact(repo, 6000, since="HEAD", store=store, related=False)
    whys = _whys(selection)
    assert selection.changes[0].path == "pkg/utils.py"
    assert selection.changes[0].units == ["parse_header"]
    # The hunk and its function come first.
    assert selection.items[0].path == "pkg/utils.py"
    assert "name.strip().lower()" in _delivered(selection, "pkg/utils.py")
    assert any("changed: parse_header" in w for w in whys["pkg/utils.py"])
    # Direct call, import-from alias, module attribute.
    for path, function in [
        ("pkg/client.py", "def read_headers"),
        ("pkg/alias.py", "def first_header"),
        ("pkg/modattr.py", "def via_module"),
    ]:
        assert any("caller of parse_header" in w for w in whys[path]), (path, whys.get(path))
        assert function in _delivered(selection, path)
    # Its own parse_header: not a caller; the module that only imports: an importer.
    assert not any("caller" in w for w in whys.get("pkg/legacy.py", []))
    assert any("importer of utils.py" in w for w in whys["pkg/other.py"])
    assert not any("caller" in w for w in whys["pkg/other.py"])
    # Not related at all (and nothing "related by content": related=False).
    assert "pkg/service.py" not in whys and "pkg/runner.py" not in whys
    assert not any("related" in w for ws in whys.values() for w in ws)
    # The callee whose signature the changed line relies on.
    assert any("callee: Header.__init__" in w for w in whys["pkg/utils.py"])
    assert selection.stats["caller_sites"] >= 3


def test_overrides_of_a_changed_method_in_subclasses(repo: Path, store: ContextStore) -> None:
    (repo / "pkg" / "fancy.py").write_text(
        "from pkg.service import Parser\n\n\n"
        "class FancyParser(Parser):\n    def parse_line(self, line):\n        return line\n\n\n"
        "class FancierParser(FancyParser):\n    def parse_line(self, line):\n"
        "        return line.upper()\n\n\n"
        "class Unrelated:\n    def parse_line(self, line):\n        return None\n"
    )
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "subclasses")
    _edit(repo, "pkg/service.py", "return line.strip()", "return line.strip().lower()")
    selection = select_impact(repo, 6000, since="HEAD", store=store, related=False)
    fancy = _delivered(selection, "pkg/fancy.py")
    whys = _whys(selection)["pkg/fancy.py"]
    assert any("override of Parser.parse_line" in w for w in whys), whys
    assert "return line.upper()" in fancy  # a subclass of a subclass
    assert "return None" not in fancy


def test_what_is_left_goes_to_related_code(repo: Path, store: ContextStore) -> None:
    _edit(repo, "pkg/service.py", "return line.strip()", "return line.strip().lower()")
    graph_only = select_impact(repo, 6000, since="HEAD", store=store, related=False)
    filled = select_impact(repo, 6000, since="HEAD", store=store)
    assert filled.tokens > graph_only.tokens
    related = [i for i in filled.items if "related by content" in i.why]
    assert related
    assert count_tokens(filled.to_markdown()) <= 6000


def test_tests_by_import_and_by_name(repo: Path, store: ContextStore) -> None:
    _change_parse_header(repo)
    selection = select_impact(repo, 6000, since="HEAD", store=store)
    whys = _whys(selection)
    # By import and call: the test function that calls it, as a test.
    assert any("test of parse_header" in w for w in whys["tests/test_parsing.py"])
    assert "def test_parse():" in _delivered(selection, "tests/test_parsing.py")
    # By naming convention: tests/test_utils.py for pkg/utils.py.
    assert any("test of utils.py" in w for w in whys["tests/test_utils.py"])
    # A test of another module is not a test of this change.
    assert "tests/test_client.py" not in whys


def test_method_call_through_an_attribute_resolved_by_name(repo: Path, store: ContextStore) -> None:
    _edit(repo, "pkg/service.py", "return line.strip()", "return line.strip().lower()")
    _edit(repo, "pkg/service.py", 'return "parser"', 'return "Parser"')
    selection = select_impact(repo, 6000, since="HEAD", store=store, related=False)
    whys = _whys(selection)
    assert sorted(selection.changes[0].units) == ["Parser.parse_line", "Parser.render"]
    # parser.parse_line(...): one definition has that name, so the call is resolved.
    runner_whys = whys["pkg/runner.py"]
    assert any("caller of Parser.parse_line" in w for w in runner_whys), runner_whys
    # self.parse_line(...) inside the class.
    assert any("caller of Parser.parse_line" in w for w in whys["pkg/service.py"])
    # thing.render(): two classes define render, so it is not claimed as a caller.
    assert not any("Parser.render" in w for w in runner_whys)
    assert "thing.render()" not in _delivered(selection, "pkg/runner.py")


def test_diff_on_stdin_of_a_tree_before_the_change(repo: Path) -> None:
    """The tree holds the old side: the diff is located there, callers are the same."""
    _change_parse_header(repo)
    diff = _git(repo, "diff")
    _git(repo, "checkout", "--", ".")
    result = runner.invoke(
        app,
        ["impact", "--repo", str(repo), "--diff", "-", "--budget", "3000", "--format", "json"],
        input=diff,
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["changes"] == [
        {
            "path": "pkg/utils.py",
            "status": "modified",
            "lines": [[16, 16]],
            "applied": False,
            "units": ["parse_header"],
        }
    ]
    callers = {i["path"] for i in data["items"] if "caller of parse_header" in i["why"]}
    assert callers == {"pkg/client.py", "pkg/alias.py", "pkg/modattr.py"}


def test_json_shape_is_select_plus_why(repo: Path) -> None:
    _change_parse_header(repo)
    impact = runner.invoke(
        app,
        ["impact", "--repo", str(repo), "--since", "HEAD", "--budget", "2000", "--format", "json"],
    )
    select = runner.invoke(
        app,
        ["select", "--repo", str(repo), "--query", "parse_header", "--budget", "2000",
         "--format", "json"],
    )  # fmt: skip
    assert impact.exit_code == 0 and select.exit_code == 0, impact.output + select.output
    got, reference = json.loads(impact.stdout), json.loads(select.stdout)
    assert set(got) == set(reference) | {"changes"}
    assert got["budget"] == 2000 and got["tokens"] <= 2000
    item_keys = set(reference["items"][0])
    for item in got["items"]:
        assert set(item) == item_keys | {"why"}
        assert item["why"]
        assert item["tokens"] == count_tokens(item["text"])
    assert got["tokens"] == sum(item["tokens"] for item in got["items"])


def test_markdown_headers_say_why_and_fit_the_budget(repo: Path, store: ContextStore) -> None:
    _change_parse_header(repo)
    for budget in (150, 400, 1000, 3000):
        markdown = select_impact(repo, budget, since="HEAD", store=store).to_markdown()
        assert count_tokens(markdown) <= budget
        assert markdown.startswith("## pkg/utils.py:")
        assert " — changed: parse_header" in markdown.splitlines()[0]


def test_a_budget_too_small_delivers_the_changed_hunks_first(
    repo: Path, store: ContextStore
) -> None:
    """A big hunk is worth less per token than a small caller; it still goes first."""
    comment = "".join(
        f"    # step {i}: the header name is folded to lower case here\n" for i in range(12)
    )
    _edit(
        repo,
        "pkg/utils.py",
        "    return Header(name.strip(), value.strip())",
        comment + "    return Header(name.strip().lower(), value.strip())",
    )
    hunk = select_impact(repo, 4000, since="HEAD", store=store).items[0]
    assert hunk.path == "pkg/utils.py" and hunk.why.startswith("changed: parse_header")
    budget = count_tokens(hunk.text) + 40
    selection = select_impact(repo, budget, since="HEAD", store=store)
    assert selection.items[0].path == "pkg/utils.py"
    assert selection.items[0].why.startswith("changed: parse_header")
    assert comment in selection.text and "name.strip().lower()" in selection.text
    assert count_tokens(selection.to_markdown()) <= budget
    # Smaller than the hunk: its beginning, and nothing else.
    tiny = select_impact(repo, 150, since="HEAD", store=store)
    assert tiny.items and {item.path for item in tiny.items} == {"pkg/utils.py"}
    assert "# step 0:" in tiny.text
    assert "# step 11:" not in tiny.text
    assert count_tokens(tiny.to_markdown()) <= 150


def test_untracked_files_and_no_change(repo: Path, store: ContextStore) -> None:
    nothing = select_impact(repo, 1000, since="HEAD", store=store)
    assert nothing.items == [] and nothing.message == "no changes since HEAD"
    (repo / "pkg" / "extra.py").write_text(
        "from pkg.client import count\n\n\ndef extra(lines):\n    return count(lines)\n"
    )
    selection = select_impact(repo, 3000, since="HEAD", store=store)
    assert [c.path for c in selection.changes] == ["pkg/extra.py"]
    assert selection.changes[0].status == "added"
    whys = _whys(selection)
    assert any("changed: extra" in w for w in whys["pkg/extra.py"])
    assert any("callee: count" in w for w in whys["pkg/client.py"])


def test_removed_function_keeps_its_callers(repo: Path, store: ContextStore) -> None:
    text = (repo / "pkg" / "client.py").read_text()
    (repo / "pkg" / "client.py").write_text(
        text.replace("def count(lines):\n    return len(lines)\n", "")
    )
    selection = select_impact(repo, 3000, since="HEAD", store=store)
    whys = _whys(selection)
    assert any("test of count" in w for w in whys["tests/test_client.py"]), whys


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "no-such-rev"], "unknown revision 'no-such-rev'"),
        (["--since", "--all"], "must not start with '-'"),
        (["--diff", "DIFF_MISSING_FILE"], "not a file in"),
        (["--diff", "DIFF_NOT_APPLYING"], "does not apply to pkg/utils.py"),
        (["--diff", "DIFF_GARBAGE"], "no file changes"),
        (["--diff", "/nonexistent/x.diff"], "--diff /nonexistent/x.diff"),
        (["--since", "HEAD", "--diff", "-"], "exactly one of"),
        ([], "exactly one of"),
        (["--since", "HEAD", "--format", "xml"], "--format"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    repo: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    diffs = {
        "DIFF_MISSING_FILE": "--- a/pkg/gone.py\n+++ b/pkg/gone.py\n@@ -1,1 +1,1 @@\n-x\n+y\n",
        "DIFF_NOT_APPLYING": (
            "--- a/pkg/utils.py\n+++ b/pkg/utils.py\n@@ -3,2 +3,2 @@\n"
            " no such line\n-nor this one\n+but this\n"
        ),
        "DIFF_GARBAGE": "this is not a diff\n",
    }
    resolved = []
    for arg in args:
        if arg in diffs:
            path = tmp_path / f"{arg}.diff"
            path.write_text(diffs[arg])
            arg = str(path)
        resolved.append(arg)
    result = runner.invoke(app, ["impact", "--repo", str(repo), "--budget", "500", *resolved])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_not_a_git_repository(tmp_path: Path, store: ContextStore) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "a.py").write_text("x = 1\n")
    with pytest.raises(ChangeError, match="not a git work tree"):
        select_impact(tmp_path / "plain", 500, since="HEAD", store=store)
    result = runner.invoke(
        app, ["impact", "--repo", str(tmp_path / "plain"), "--since", "HEAD", "--budget", "50"]
    )
    assert result.exit_code == 2 and "not a git work tree" in result.stderr
    # A diff needs no git: the tree is read as it is.
    diff = "--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
    selection = select_impact(tmp_path / "plain", 500, diff=diff, store=store)
    assert selection.changes[0].applied is False and selection.items[0].path == "a.py"


@pytest.mark.parametrize("prefix", [("a/", "b/"), ("", ""), ("old/", "new/")])
def test_diff_file_names_with_and_without_prefixes(
    repo: Path, store: ContextStore, prefix: tuple[str, str]
) -> None:
    diff = (
        f"--- {prefix[0]}pkg/client.py\n+++ {prefix[1]}pkg/client.py\n@@ -8,2 +8,2 @@\n"
        " def count(lines):\n-    return len(lines)\n+    return len(list(lines))\n"
    )
    selection = select_impact(repo, 2000, diff=diff, store=store, related=False)
    assert [c.to_json() for c in selection.changes] == [
        {"path": "pkg/client.py", "status": "modified", "lines": [[9, 9]], "applied": False,
         "units": ["count"]}
    ]  # fmt: skip
    assert any("test of count" in i.why for i in selection.items)


def test_the_public_api_exports_it() -> None:
    import agentrt
    import agentrt.context

    assert agentrt.select_impact is select_impact
    assert agentrt.context.select_impact is select_impact
    assert issubclass(agentrt.context.ChangeError, agentrt.AgentrtError)


def test_a_group_of_the_changed_files_with_its_own_impact(repo: Path, store: ContextStore) -> None:
    """``paths``: one group of a bigger change (a chunk of a review) and its neighbours;
    change_sizes: what each changed file's hunks cost."""
    _change_parse_header(repo)
    _edit(repo, "pkg/other.py", "def other():", "def other(flag=False):")
    both = change_sizes(repo, since="HEAD")
    assert set(both) == {"pkg/utils.py", "pkg/other.py"} and all(n > 0 for n in both.values())
    assert change_sizes(repo, since="HEAD", paths=["pkg/other.py"]) == {
        "pkg/other.py": both["pkg/other.py"]
    }
    whole = select_impact(repo, 6000, since="HEAD", store=store, related=False)
    assert {c.path for c in whole.changes} == set(both)
    group = select_impact(
        repo, 6000, since="HEAD", store=store, related=False, paths=["pkg/utils.py"]
    )
    assert [c.path for c in group.changes] == ["pkg/utils.py"]
    whys = _whys(group)
    assert any("changed: parse_header" in w for w in whys["pkg/utils.py"])
    assert any("caller of parse_header" in w for w in whys["pkg/client.py"])
    assert not any("changed" in w for w in whys.get("pkg/other.py", []))
    related = select_impact(repo, 6000, since="HEAD", store=store, paths=["pkg/utils.py"])
    assert not any("related" in w for w in _whys(related).get("pkg/other.py", []))
    assert "name.strip().lower()" in _delivered(group, "pkg/utils.py")


# --------------------------------------------------------------------------- co-changes

#: Shares no name or word with utils.py (so neither the graph nor "related by content" finds
#: it), but every past change of the header parsing changed it too.
WIRE_FORMAT = """WIRE_LIMITS = {"maximum": 8190, "folded": False}


def wire_maximum():
    return WIRE_LIMITS["maximum"]
"""


def _with_cochanges(repo: Path) -> None:
    """Three past commits that change pkg/utils.py together with pkg/wire.py."""
    for n in range(3):
        _edit(repo, "pkg/utils.py", '"""Header parsing."""', f'"""Header parsing ({n})."""')
        (repo / "pkg" / "wire.py").write_text(WIRE_FORMAT + f"\n# revision {n}\n")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", f"headers and wire {n}")
        _edit(repo, "pkg/utils.py", f'"""Header parsing ({n})."""', '"""Header parsing."""')
        _git(repo, "commit", "-q", "-am", f"back {n}")


def _items(selection: ImpactSelection) -> list[tuple[str, int, int, str, str]]:
    return [(i.path, i.start_line, i.end_line, i.kind, i.why) for i in selection.items]


def test_co_changed_files_are_delivered_with_their_reason(repo: Path, store: ContextStore) -> None:
    _with_cochanges(repo)
    _change_parse_header(repo)
    selection = select_impact(repo, 6000, since="HEAD", store=store)
    whys = _whys(selection)
    assert whys["pkg/wire.py"] == ["co-changed with utils.py"], whys.get("pkg/wire.py")
    assert "WIRE_LIMITS" in _delivered(selection, "pkg/wire.py")
    assert selection.stats["history_commits"] == 3 and selection.stats["cochanged"] == 1
    # The changed file itself is not its own co-change; what else is there stays.
    assert not any("co-changed" in w for w in whys["pkg/utils.py"])
    assert any("caller of parse_header" in w for w in whys["pkg/client.py"])


def test_without_history_the_selection_is_as_before(
    repo: Path, tmp_path: Path, store: ContextStore
) -> None:
    _with_cochanges(repo)
    _change_parse_header(repo)
    diff = _git(repo, "diff")
    # The same files without .git: no history to read.
    plain = tmp_path / "plain"
    shutil.copytree(repo, plain, ignore=shutil.ignore_patterns(".git"))
    outside = select_impact(plain, 6000, diff=diff, store=store)
    assert outside.stats["history_commits"] == 0 and "pkg/wire.py" not in _whys(outside)
    for selection in (
        select_impact(repo, 6000, since="HEAD", store=store, history=False),
        select_impact(repo, 6000, diff=diff, store=store, history=False),
    ):
        assert selection.stats["history_commits"] == 0
        assert _items(selection) == _items(outside)
    # The history given (as a benchmark gives a tree its snapshot's history).
    given = select_impact(plain, 6000, diff=diff, store=store, history=read_history(repo))
    assert _whys(given)["pkg/wire.py"] == ["co-changed with utils.py"]


def test_co_changes_respect_the_group_under_review(repo: Path, store: ContextStore) -> None:
    """With ``paths``, the change's other files are reviewed elsewhere: not co-changes here."""
    _with_cochanges(repo)
    _change_parse_header(repo)
    (repo / "pkg" / "wire.py").write_text(WIRE_FORMAT + "\n# edited with the change\n")
    whole = select_impact(repo, 6000, since="HEAD", store=store)
    assert not any("co-changed" in i.why for i in whole.items)  # wire.py is in the change
    group = select_impact(repo, 6000, since="HEAD", store=store, paths=["pkg/utils.py"])
    assert "pkg/wire.py" not in _whys(group)


def test_the_history_is_the_past_of_the_revision(repo: Path, store: ContextStore) -> None:
    """``--since REV`` reads the history before REV: the commits under review are not it."""
    _with_cochanges(repo)
    _change_parse_header(repo)
    _git(repo, "commit", "-q", "-am", "the change")
    before = select_impact(repo, 6000, since="HEAD~1", store=store)
    assert before.stats["history_commits"] == 3
    assert _whys(before)["pkg/wire.py"] == ["co-changed with utils.py"]
    early = select_impact(repo, 6000, since="HEAD~7", store=store)  # before the co-changes
    assert early.stats["history_commits"] == 0
    assert not any("co-changed" in i.why for i in early.items)


@pytest.mark.parametrize("flag", [[], ["--no-history"]])
def test_cli_history_flag(repo: Path, flag: list[str]) -> None:
    _with_cochanges(repo)
    _change_parse_header(repo)
    args = ["impact", "--repo", str(repo), "--since", "HEAD", "--budget", "6000", "--format"]
    result = runner.invoke(app, [*args, "json", *flag])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    wire = [i["why"] for i in out["items"] if i["path"] == "pkg/wire.py"]
    assert wire == ([] if flag else ["co-changed with utils.py"])
    assert "--no-history" in runner.invoke(app, ["impact", "--help"]).stdout
