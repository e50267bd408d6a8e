"""Source trees at an exact commit, written out of bare git snapshots (for the benchmarks).

The polyglot issue set (``../shared/bench/polyglot_dev.jsonl``) names each issue's repository
(``fetch``: ``github:owner/name``) and ``base_commit``. The repositories are on no package
index: a session fetches each once as a bare git directory (the layout of the search tool's
``fetch``: ``MIRRORS/<owner>+<name>/repo``) and hands the benchmark the folder that holds
them. :func:`extract_tree` writes the tree of one commit into a cache outside the repository
with one ``git ls-tree`` and one ``git cat-file --batch``; a snapshot may lack its largest
blobs, which are skipped and counted, as are submodules (no content in the snapshot).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: Environment variable naming the folder of bare git snapshots (``--mirrors`` overrides it).
MIRRORS_ENV = "AGENTRT_BENCH_MIRRORS"


class NoTree(Exception):
    """No tree for an issue; the message is the reason, reported with the skipped count."""


@dataclass(slots=True)
class TreeInfo:
    """What extracting one commit wrote (kept beside the tree as ``<commit>.json``)."""

    files: int = 0
    symlinks: int = 0
    #: Blobs the snapshot does not hold (its largest files), by path.
    missing: list[str] = field(default_factory=list)
    #: Submodule entries (commits of other repositories; nothing to write).
    submodules: list[str] = field(default_factory=list)


def find_mirror(mirrors: Path, repo: str) -> Path | None:
    """The bare git directory of ``owner/name`` under ``mirrors`` (names compared ignoring case).

    Accepted layouts: ``<owner>+<name>/repo`` (the search tool's ``fetch``), ``<owner>+<name>``
    and ``<owner>+<name>.git`` themselves bare git directories.
    """
    wanted = repo.removeprefix("github:").replace("/", "+").lower()
    if not mirrors.is_dir():
        return None
    for child in sorted(mirrors.iterdir()):
        if child.name.lower().removesuffix(".git") != wanted:
            continue
        for candidate in (child / "repo", child):
            if (candidate / "objects").is_dir() and (candidate / "HEAD").is_file():
                return candidate
    return None


def _git(git_dir: Path, *args: str) -> list[str]:
    return ["git", "--git-dir", str(git_dir), *args]


def has_commit(git_dir: Path, commit: str) -> bool:
    """Whether the snapshot holds ``commit`` (a commit object, not only its name)."""
    result = subprocess.run(
        _git(git_dir, "cat-file", "-e", f"{commit}^{{commit}}"), capture_output=True, check=False
    )
    return result.returncode == 0


def _entries(git_dir: Path, commit: str) -> list[tuple[str, str, str, str]]:
    """``(mode, type, sha, path)`` of every entry of ``commit``'s tree, recursively."""
    listing = subprocess.run(
        _git(git_dir, "ls-tree", "-r", "-z", "--full-tree", commit),
        capture_output=True,
        check=True,
    ).stdout
    entries = []
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, kind, sha = meta.decode().split()
        entries.append((mode, kind, sha, os.fsdecode(path)))
    return entries


def extract_tree(git_dir: Path, commit: str, dest: Path, folders: tuple[str, ...] = ()) -> TreeInfo:
    """Write the tree of ``commit`` from the bare repository ``git_dir`` into ``dest``.

    ``folders``: write only the files under these top-level folders (default: all).
    ``dest`` must not exist; the tree is written into a temporary folder beside it and moved
    into place when complete, so an interrupted run leaves no partial tree behind.

    Raises:
        NoTree: the snapshot does not hold ``commit``.
    """
    if not has_commit(git_dir, commit):
        raise NoTree("base commit not in the snapshot")
    entries = _entries(git_dir, commit)
    info = TreeInfo()
    blobs = []
    for mode, kind, sha, path in entries:
        if folders and path.split("/", 1)[0] not in folders:
            continue
        if kind == "commit":
            info.submodules.append(path)
        elif kind == "blob":
            blobs.append((mode, sha, path))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with tempfile.TemporaryFile() as wanted:
            wanted.write("".join(f"{sha}\n" for _, sha, _ in blobs).encode())
            wanted.seek(0)
            with subprocess.Popen(
                _git(git_dir, "cat-file", "--batch"), stdin=wanted, stdout=subprocess.PIPE
            ) as batch:
                assert batch.stdout is not None
                for mode, sha, path in blobs:
                    header = batch.stdout.readline().decode().split()
                    if header[:1] != [sha]:
                        raise RuntimeError(f"git cat-file --batch: {header} for {sha}")
                    if len(header) != 3:  # "<sha> missing": the snapshot lacks this blob
                        info.missing.append(path)
                        continue
                    content = batch.stdout.read(int(header[2]))
                    batch.stdout.read(1)  # the newline after each object
                    _write(tmp, path, mode, content, info)
            if batch.returncode:
                raise subprocess.CalledProcessError(batch.returncode, batch.args)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _write(root: Path, path: str, mode: str, content: bytes, info: TreeInfo) -> None:
    target = root / path
    if ".." in Path(path).parts or Path(path).is_absolute():
        return  # git never records such paths; refuse them all the same
    target.parent.mkdir(parents=True, exist_ok=True)
    if mode == "120000":
        os.symlink(os.fsdecode(content), target)
        info.symlinks += 1
    else:
        target.write_bytes(content)
        if mode == "100755":
            target.chmod(0o755)
        info.files += 1


def cached_tree(
    mirrors: Path, repo: str, commit: str, cache: Path, folders: tuple[str, ...] = ()
) -> tuple[Path, TreeInfo]:
    """The tree of ``repo`` (``owner/name``) at ``commit``, extracted into ``cache`` on first use.

    ``folders``: only these top-level folders (the tree is then ``<commit>-<folders>``).

    The tree is ``cache/<owner>+<name>/<commit>/`` and what extraction wrote (files, missing
    blobs) ``cache/<owner>+<name>/<commit>.json``; nothing is written inside the tree.

    Raises:
        NoTree: no snapshot of ``repo`` under ``mirrors``, or it lacks ``commit``.
    """
    slug = repo.removeprefix("github:").replace("/", "+")
    name = commit + "".join(f"-{f}" for f in folders)
    tree = cache / slug / name
    manifest = cache / slug / f"{name}.json"
    if tree.is_dir() and manifest.is_file():
        return tree, TreeInfo(**json.loads(manifest.read_text()))
    git_dir = find_mirror(mirrors, repo)
    if git_dir is None:
        raise NoTree(f"no snapshot of {repo.removeprefix('github:')} in {mirrors}")
    shutil.rmtree(tree, ignore_errors=True)
    try:
        info = extract_tree(git_dir, commit, tree, folders)
    except NoTree as exc:
        raise NoTree(f"{exc} of {repo.removeprefix('github:')}") from None
    manifest.write_text(json.dumps(asdict(info)))
    return tree, info
