"""Twins: code that exists verbatim in more than one file of a repository.

A generated single header (nlohmann/json's ``single_include/nlohmann/json.hpp``, Catch2's
``catch_amalgamated.hpp``, simdjson's ``singleheader/simdjson.h``) concatenates the files
it is made from; vendored libraries and copied headers repeat other files. A fix to a
function that also exists in such a copy must change (or regenerate) both, so whoever
receives the function must also see, or at least be told about, its copies.

* :func:`unit_hashes` (per file, cached with its analysis): a 64-bit digest of each code
  unit's text with indentation and trailing spaces stripped; 0 for units too small or
  too trivial to be worth pairing (fewer than :data:`MIN_CODE_LINES` lines of code or
  :data:`MIN_CHARS` characters, comments and ``#include`` lines).
* :func:`find_twins` (per repository state, when the index is assembled): units of
  different files with the same digest are *twins*; digests shared by more than
  :data:`MAX_TWIN_FILES` files are boilerplate and pair nothing. A file whose twins lie in
  at least :data:`AMALGAMATION_PARTNERS` other files and make up a good share of its units
  (or that is named like one: ``single_include/``, ``singleheader/``, ``amalgamat…``) is an
  *amalgamation*: a generated concatenation of its sources.

Selection (:mod:`agentrt.context.select`) uses them so that an amalgamation does not compete
with its sources (its units' scores go to their source twins), what is selected of a source
brings its copy in the amalgamation along (found at the twins' offsets and checked line by
line, :class:`agentrt.context.select.Copies`; in the budget, right after it), and a copy
that is not delivered is named in the item's ``why``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

import numpy as np

from agentrt.context.compress import Unit

__all__ = ["Twins", "find_twins", "unit_hashes"]

#: A unit is paired only if it has this many lines of code (not blank, not comments,
#: not ``#include``/``import`` lines) and this many characters once normalised.
MIN_CODE_LINES = 3
MIN_CHARS = 80
#: A digest shared by more than this many files is boilerplate (a license banner, a
#: common include block): it pairs nothing.
MAX_TWIN_FILES = 8
#: An amalgamation's twins lie in at least this many other files and are at least
#: AMALGAMATION_SHARE of its paired-eligible units (and at least AMALGAMATION_MIN_UNITS).
AMALGAMATION_PARTNERS = 3
AMALGAMATION_SHARE = 0.3
AMALGAMATION_MIN_UNITS = 8
#: Paths that name a generated single file; with one twin file they are amalgamations.
GENERATED_PATH = re.compile(r"single[_-]?include|single[_-]?header|amalgamat", re.I)

_NOT_CODE = ("//", "/*", "*", "#include", "#import", "import ", "using ", "#pragma", "# ")


def unit_hashes(text: str, units: Sequence[Unit]) -> np.ndarray:
    """A signed 64-bit digest per unit of its normalised text (0: not worth pairing).

    Normalised: each line stripped of indentation and trailing spaces, so a copy indented
    differently (inside a namespace of the amalgamation) still pairs.
    """
    out = np.zeros(len(units), dtype=np.int64)
    if not units:
        return out
    lines = [line.strip() for line in text.split("\n")]
    not_code = _NOT_CODE
    code = [0]
    code.extend(accumulate(bool(line) and not line.startswith(not_code) for line in lines))
    n = len(lines)
    blake2b = hashlib.blake2b
    for i, unit in enumerate(units):
        start, end = unit.start_line, min(unit.end_line, n)
        if end - start + 1 < MIN_CODE_LINES or code[end] - code[start - 1] < MIN_CODE_LINES:
            continue
        body = "\n".join(lines[start - 1 : end])
        if len(body) < MIN_CHARS:
            continue
        digest = blake2b(body.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little", signed=True) or 1
    return out


@dataclass(slots=True)
class Twins:
    """The twins of a repository's units (global unit numbers, as in the index).

    Kept as arrays: ``members[offsets[g]:offsets[g + 1]]`` are the units of twin group
    ``g`` (sorted), ``units`` the units that have a twin (sorted) and ``group`` their group.
    """

    units: np.ndarray
    group: np.ndarray
    members: np.ndarray
    offsets: np.ndarray
    #: Per file: an amalgamation (a generated concatenation of other files).
    amalgamation: np.ndarray
    #: Units of amalgamations (``shadow_from``) and their twins outside amalgamations
    #: (``shadow_to``), pair by pair: where an amalgamation unit's relevance goes.
    shadow_from: np.ndarray
    shadow_to: np.ndarray

    def of(self, k: int, unit_file: np.ndarray) -> list[int]:
        """The twins of unit ``k`` in other files than its own."""
        pos = int(np.searchsorted(self.units, k))
        if pos >= len(self.units) or self.units[pos] != k:
            return []
        g = int(self.group[pos])
        f = unit_file[k]
        members = self.members[self.offsets[g] : self.offsets[g + 1]]
        return [int(j) for j in members if unit_file[j] != f]

    def in_range(self, start: int, stop: int) -> np.ndarray:
        """The units numbered ``start..stop-1`` (one file's) that have a twin."""
        lo, hi = np.searchsorted(self.units, (start, stop))
        return self.units[lo:hi]

    @property
    def pairs(self) -> int:
        """How many units have a twin."""
        return len(self.units)


def find_twins(unit_file: np.ndarray, hashes: np.ndarray, paths: Sequence[str]) -> Twins:
    """The twins of units whose digests (:func:`unit_hashes`, concatenated) are equal."""
    n_files = len(paths)
    eligible = np.flatnonzero(hashes != 0)
    eligible_per_file = np.bincount(unit_file[eligible], minlength=n_files)
    # Only digests that occur more than once matter (few): one sort finds them.
    order = np.argsort(hashes[eligible], kind="stable")
    ordered = hashes[eligible][order]
    repeated = np.zeros(len(ordered), dtype=bool)
    repeated[1:] = ordered[1:] == ordered[:-1]
    repeated[:-1] |= repeated[1:]
    eligible = eligible[order][repeated]
    files = unit_file[eligible].astype(np.int64)
    digests, gid = np.unique(hashes[eligible], return_inverse=True)
    pairs = np.unique(gid.astype(np.int64) << 32 | files)
    pair_group = pairs >> 32
    files_per_group = np.bincount(pair_group, minlength=len(digests))
    kept = (files_per_group >= 2) & (files_per_group <= MAX_TWIN_FILES)
    keep = kept[gid]
    units = eligible[keep]
    old_group = gid[keep]
    # Renumber kept groups 0..G-1; members sorted by (group, unit).
    renumber = np.cumsum(kept) - 1
    group = renumber[old_group].astype(np.int64)
    order = np.lexsort((units, group))
    members = units[order].astype(np.int64)
    member_group = group[order]
    n_groups = int(kept.sum())
    offsets = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(member_group, minlength=n_groups), out=offsets[1:])
    by_unit = np.argsort(units, kind="stable")

    # Distinct partner files of each file, and how many of its units have a twin.
    pair_kept = kept[pair_group]
    group_files = (renumber[pair_group[pair_kept]], (pairs & 0xFFFFFFFF)[pair_kept])
    partner_pairs = _shifted_pairs(*group_files)
    partners = np.zeros(n_files, dtype=np.int64)
    if len(partner_pairs):
        distinct = np.unique(partner_pairs[:, 0] << 32 | partner_pairs[:, 1])
        partners = np.bincount(distinct >> 32, minlength=n_files)
    twinned = np.bincount(unit_file[units], minlength=n_files)
    named = np.zeros(n_files, dtype=bool)
    for f in np.flatnonzero(partners).tolist():
        named[f] = bool(GENERATED_PATH.search(paths[f]))
    amalgamation = (
        (partners >= AMALGAMATION_PARTNERS)
        & (twinned >= AMALGAMATION_MIN_UNITS)
        & (twinned >= AMALGAMATION_SHARE * eligible_per_file)
    ) | (named & (partners >= 1))

    # Shadows: (amalgamation unit, its twin outside amalgamations), per group.
    member_amalgamation = amalgamation[unit_file[members]]
    shadow = _shifted_pairs(member_group, members)
    if len(shadow):
        from_amalgamation = member_amalgamation[shadow[:, 2]] & ~member_amalgamation[shadow[:, 3]]
        shadow = shadow[from_amalgamation]
    return Twins(
        units=units[by_unit].astype(np.int64),
        group=group[by_unit],
        members=members,
        offsets=offsets,
        amalgamation=amalgamation,
        shadow_from=shadow[:, 0].astype(np.int64) if len(shadow) else np.zeros(0, np.int64),
        shadow_to=shadow[:, 1].astype(np.int64) if len(shadow) else np.zeros(0, np.int64),
    )


def _shifted_pairs(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Every ordered pair of distinct positions with the same ``group`` (sorted by group),
    as rows ``(values[i], values[j], i, j)``. Groups are small (at most a few files)."""
    rows: list[np.ndarray] = []
    n = len(group)
    for d in range(1, n):
        same = group[:-d] == group[d:]
        if not same.any():
            break
        i = np.flatnonzero(same)
        j = i + d
        rows.append(np.stack((values[i], values[j], i, j), axis=1))
        rows.append(np.stack((values[j], values[i], j, i), axis=1))
    if not rows:
        return np.zeros((0, 4), dtype=np.int64)
    return np.concatenate(rows).astype(np.int64)
