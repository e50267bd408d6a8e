"""Co-change history: the files a repository's past commits changed together.

A fix seldom stays in one file, and the other files it touches often share few words with
the issue: the header of a ``.cpp``, the registry a new option is added to, the module that
re-exports a changed function. What ties them to the file the query finds is the project's
history: they were changed in the same commits before. (Mining "logical coupling" from
version history is an old result of software-evolution research; Zimmermann et al., "Mining
Version Histories to Guide Software Changes", ICSE 2004.)

:func:`read_history` reads the last :data:`HISTORY_COMMITS` commits reachable from a
revision with one ``git log`` (hardened, :func:`agentrt.context.git.run_git`), leaving out
merges, root commits and commits that touch more than :data:`MAX_COMMIT_FILES` files
(imports, reformattings, renames and vendored updates couple everything with everything).
:meth:`CoChanges.related` scores files by their coupling with the files a ranking put first
(the cosine of their change vectors), and :func:`cochange_scores` keeps the
:data:`HISTORY_FILES` source files most coupled with the best source files;
:func:`agentrt.context.relevance.with_history` raises their scores.

No history (not a git work tree, git missing, a shallow clone) gives None and the ranking
is left as it was. Only the revision's past is read: nothing after ``rev``.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from agentrt.context.git import head_commit, in_work_tree, run_git

if TYPE_CHECKING:
    from agentrt.context.store import ContextStore

__all__ = ["CoChanges", "cochange_scores", "read_history"]

#: How many of the latest commits are read. Older coupling fades (files are split, moved,
#: rewritten), and one ``git log`` of 2,000 commits takes 0.05-0.3 s on the polyglot
#: benchmark's repositories (DuckDB, Folly, Playwright, ripgrep: ``time git --git-dir
#: SNAPSHOT log --no-merges --name-only --format=%x00 -n 2000 HEAD``).
HISTORY_COMMITS = 2000
#: Commits touching more files than this say nothing about which files belong together.
MAX_COMMIT_FILES = 30
#: A commit id (SHA-1 or SHA-256), as HEAD's file holds it when it is not a ref name.
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
#: Seconds the ``git log`` may take; a repository that takes longer is ranked without it.
HISTORY_TIMEOUT = 20.0


@dataclass(frozen=True, slots=True)
class CoChanges:
    """The commits of a history as sets of paths: ``paths`` (repository-relative, POSIX)
    and, per commit, the indices of the paths it touched (``commit_paths[starts[c]:
    starts[c + 1]]``)."""

    paths: tuple[str, ...]
    commit_paths: np.ndarray
    starts: np.ndarray

    @property
    def n_commits(self) -> int:
        return len(self.starts) - 1

    @classmethod
    def from_commits(cls, commits: Sequence[Sequence[str]]) -> CoChanges:
        """From each commit's changed paths (commits with one path carry no coupling)."""
        ids: dict[str, int] = {}
        flat: list[int] = []
        starts = [0]
        for changed in commits:
            unique = dict.fromkeys(changed)
            if len(unique) < 2:
                continue
            flat.extend(ids.setdefault(p, len(ids)) for p in unique)
            starts.append(len(flat))
        return cls(tuple(ids), np.asarray(flat, dtype=np.int32), np.asarray(starts, np.int64))

    def related(self, seeds: Mapping[str, float]) -> dict[str, float]:
        """Per path, Σ over ``seeds`` (path → weight) of the weight times the path's coupling
        with the seed: the commits that changed both over the geometric mean of the commits
        that changed each (the cosine of their change vectors, in [0, 1]). A file that
        changes in most commits (a changelog, a version file, the test registry) is coupled
        with every seed a little, not a lot, as the share of the seed's commits that changed
        it would have it. Seeds get no score from themselves."""
        position = {p: i for i, p in enumerate(self.paths)}
        changes = np.bincount(self.commit_paths, minlength=len(self.paths)).astype(np.float64)
        commit_of = np.repeat(np.arange(self.n_commits), np.diff(self.starts))
        total = np.zeros(len(self.paths), dtype=np.float64)
        seed_ids = {position[p]: w for p, w in seeds.items() if p in position and w > 0}
        for seed, weight in seed_ids.items():
            commits = commit_of[self.commit_paths == seed]
            if not len(commits):
                continue
            touched = np.concatenate(
                [self.commit_paths[self.starts[c] : self.starts[c + 1]] for c in commits]
            )
            both = np.bincount(touched, minlength=len(self.paths))
            total += weight * both / np.sqrt(np.maximum(changes, 1.0) * len(commits))
        for seed in seed_ids:
            total[seed] = 0.0
        return {self.paths[i]: float(total[i]) for i in np.flatnonzero(total)}


def _parse_log(output: str) -> list[list[str]]:
    """Each commit's changed paths from ``git log --format=%x00%P --name-only``, without
    root commits: a first commit imports a project, it does not change files together."""
    commits: list[list[str]] = []
    for chunk in output.split("\x00")[1:]:
        parents, _, names = chunk.partition("\n")
        changed = [line for line in names.split("\n") if line]
        if parents.strip() and changed:
            commits.append(changed)
    return commits


def _commit_of(root: str | os.PathLike[str], rev: str, where: list[str]) -> str | None:
    """The commit id of ``rev``: read from ``.git`` for HEAD at a repository's root (no
    process: every selection asks), else from ``git rev-parse``; None outside git."""
    if not where:
        if rev == "HEAD":
            head = head_commit(root)
            if head is not None and _SHA.fullmatch(head):
                return head
        if not in_work_tree(root):
            return None
    try:
        resolved = run_git(root, *where, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}")
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    return resolved.stdout.decode().strip() if resolved.returncode == 0 else None


def read_history(
    root: str | os.PathLike[str],
    rev: str = "HEAD",
    *,
    git_dir: str | os.PathLike[str] | None = None,
    store: ContextStore | None = None,
    commits: int = HISTORY_COMMITS,
) -> CoChanges | None:
    """The co-changes of the ``commits`` latest commits reachable from ``rev`` in the git
    repository at ``root`` (or the bare ``git_dir``), paths relative to the repository's
    top; None when there is no history to read. Cached in ``store`` by commit id."""
    where = ["--git-dir", os.fspath(git_dir)] if git_dir is not None else []
    # Paths relative to ``root`` when it is a folder inside the work tree (changes outside
    # it are left out), as the index names them.
    relative = [] if git_dir is not None else ["--relative"]
    commit = _commit_of(root, rev, where)
    if commit is None:
        return None
    key = f"history:v4:{commit}:{commits}:{MAX_COMMIT_FILES}"
    if store is not None:
        cached = store.get(key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
    try:
        done = run_git(
            root, *where, "log", "--no-merges", "--no-renames", "--name-only", *relative,
            "--format=%x00%P", f"-n{commits}", commit,
            timeout=HISTORY_TIMEOUT,
        )  # fmt: skip
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None  # rank without history
    # A snapshot without some old objects stops the log early with an error after what it
    # could read: the commits read are still the latest ones.
    changed = [
        c for c in _parse_log(done.stdout.decode(errors="replace")) if len(c) <= MAX_COMMIT_FILES
    ]
    if not changed:
        return None
    history = CoChanges.from_commits(changed)
    if store is not None:
        store.set(key, history)
    return history


#: How many of the best-ranked files seed the co-change scores, and the least score
#: (relative to the best file) a seed needs.
HISTORY_SEEDS = 5
HISTORY_SEED_MIN = 0.3
#: How many files, the most coupled with the seeds, are ranked up; each file's score is
#: multiplied by 1 + W_HISTORY times its coupling (:func:`agentrt.context.relevance.
#: with_history`), so only a file with some evidence of its own rises, at most to twice its
#: score for a file that changed in every commit of the best file. Its units keep their
#: scores: it is offered through its best unit, outline or whole text. Measured with each
#: issue's history before its base commit, at 13k / 27k (python -m bench.context_selection
#: --set polyglot --mirrors DIR, and with --no-history): 256 polyglot issues, every gold
#: hunk 75 -> 78 / 97 -> 99 issues, every gold file 134 -> 138 / 154 -> 155; 80 Python
#: issues on git trees (--set python-git --mirrors DIR --limit 80): hunk 52 -> 52 / 58 -> 57,
#: file 65 -> 67 / 70 -> 71. Adding W times the coupling to the score
#: instead (0.2 to 0.5), raising every coupled file, or raising its units too, lost more:
#: up to 6 polyglot and 5 Python issues' hunks at 27k, where a co-changed file that is not
#: the fix takes the room of the last gold spans.
HISTORY_FILES = 3
W_HISTORY = 1.0


def cochange_scores(
    paths: Sequence[str], file_scores: np.ndarray, history: CoChanges, code: np.ndarray
) -> np.ndarray:
    """Per file of ``paths``, its coupling (:meth:`CoChanges.related`) with the
    HISTORY_SEEDS best files by ``file_scores``, each weighted by its score. Only source
    code (``code``, a mask over ``paths``) seeds and is scored: the history is for the
    other code a change touches; its changelog, docs and build lines are companions
    (:mod:`agentrt.context.companions`), its tests context."""
    out = np.zeros(len(paths), dtype=np.float32)
    eligible = np.flatnonzero(code)
    if not len(eligible):
        return out
    order = eligible[np.argsort(-file_scores[eligible], kind="stable")[:HISTORY_SEEDS]]
    best = float(file_scores[order[0]])
    if best <= 0:
        return out
    seeds = {
        paths[f]: float(file_scores[f]) for f in order if file_scores[f] >= HISTORY_SEED_MIN * best
    }
    related = history.related(seeds)
    for f in eligible:
        out[f] = related.get(paths[f], 0.0)
    if len(out) > HISTORY_FILES:  # only the most coupled files
        out[np.argsort(-out, kind="stable")[HISTORY_FILES:]] = 0.0
    return out
