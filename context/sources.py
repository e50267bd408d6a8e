"""Finding the text files of a repository, and other sources of context.

:func:`scan_repository` walks a tree the way a developer would look at it: it honours
``.gitignore`` files (root and nested, git's own precedence, via :mod:`pathspec`),
``.git/info/exclude`` and a set of default ignores (VCS folders, virtualenvs, caches,
build output), skips binary and oversized files, and never follows a symlink out of the
tree or around a loop. It only stats files and sniffs their first 8 KiB; contents are read
later, on demand (:meth:`SourceFile.read_text`).

Every problem that is not the caller's fault (an unreadable file, a dangling symlink) is
recorded as a :class:`SkippedFile` with a reason instead of raising.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pathspec import GitIgnoreSpec, PathSpec

from agentrt.context.git import git_stdout, in_work_tree
from agentrt.errors import AgentrtError

if TYPE_CHECKING:
    from agentrt.context.store import ContextStore

__all__ = [
    "AMBIGUOUS_DIRS",
    "BUILD_OUTPUT_MARKERS",
    "DEFAULT_IGNORED_DIRS",
    "RepoScan",
    "SkippedFile",
    "SourceError",
    "SourceFile",
    "TextSource",
    "iter_text_files",
    "language_of",
    "scan_repository",
]

SNIFF_BYTES = 8192

# Directory names never worth reading as context. Matched on the name alone, at any
# depth below the root (the root itself is always scanned).
DEFAULT_IGNORED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".bzr",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        "dist",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        ".agentrt",
        "site-packages",
    }
)

#: Directory names that hold build output in most projects and build scripts or sources in
#: some (zstd's ``build/`` holds its CMake, Meson and Visual Studio projects, bat's its Rust
#: build script). Skipped when ``.gitignore`` ignores them, as any path; otherwise scanned
#: when git tracks files in them, and else skipped only if they look like build output (one
#: of :data:`BUILD_OUTPUT_MARKERS` directly inside).
AMBIGUOUS_DIRS = frozenset({"build"})

#: Names whose presence directly inside an :data:`AMBIGUOUS_DIRS` folder marks it as build
#: output: CMake, Ninja, Meson, autotools, setuptools (``lib``, ``lib.<platform>``,
#: ``temp.<platform>``, ``bdist.<platform>``), Gradle/Android, Sphinx, Create React App.
BUILD_OUTPUT_MARKERS = frozenset(
    (  # noqa: SIM905 - one word per name reads better than 30 quoted strings
        "CMakeCache.txt CMakeFiles cmake_install.cmake build.ninja .ninja_log .ninja_deps "
        "compile_commands.json meson-private meson-info meson-logs config.log config.status "
        "lib bdist classes libs tmp intermediates generated outputs reports test-results "
        "kotlin doctrees html asset-manifest.json"
    ).split()
)
_BUILD_OUTPUT_PREFIXES = ("lib.", "temp.", "bdist.")

# Suffixes that are binary by format: skipped without opening the file.
_BINARY_SUFFIXES = frozenset(
    (  # noqa: SIM905 - one word per suffix reads better than 70 quoted strings
        ".png .jpg .jpeg .gif .bmp .ico .webp .tif .tiff .psd .pdf "  # images, documents
        ".zip .gz .tgz .bz2 .xz .zst .7z .rar .tar .whl .egg .jar .war "  # archives
        ".class .pyc .pyo .pyd .so .dylib .dll .exe .o .a .lib .obj .bin "  # compiled
        ".dat .db .sqlite .sqlite3 .mo .npy .npz .pkl .pickle .parquet .feather .arrow "
        ".h5 .hdf5 .onnx .pt .pth .safetensors "  # data, models
        ".woff .woff2 .ttf .otf .eot .mp3 .mp4 .wav .ogg .flac .avi .mov .mkv .webm"
    ).split()
)

_LANGUAGES = {
    ".py": "python",
    ".pyi": "python",
    ".pyx": "cython",
    ".md": "markdown",
    ".markdown": "markdown",
    ".rst": "restructuredtext",
    ".txt": "text",
    ".toml": "toml",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ini": "ini",
    ".cfg": "ini",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".html": "html",
    ".htm": "html",
    ".css": "css",
    ".scss": "scss",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".hxx": "cpp",
    ".ipp": "cpp",
    ".inl": "cpp",
    ".mts": "typescript",
    ".cts": "typescript",
    ".cs": "csharp",
    ".swift": "swift",
    ".kts": "kotlin",
    ".scala": "scala",
    ".rs": "rust",
    ".go": "go",
    ".java": "java",
    ".kt": "kotlin",
    ".rb": "ruby",
    ".php": "php",
    ".sh": "shell",
    ".bash": "shell",
    ".zsh": "shell",
    ".sql": "sql",
    ".xml": "xml",
    ".csv": "csv",
    ".ipynb": "jupyter",
    # More languages the analysers read (lizard): complexity and function length.
    ".m": "objective-c",
    ".mm": "objective-c",
    ".lua": "lua",
    ".pl": "perl",
    ".pm": "perl",
    ".vue": "vue",
    ".zig": "zig",
    ".sol": "solidity",
    ".erl": "erlang",
    ".hrl": "erlang",
    ".f90": "fortran",
    ".f95": "fortran",
    ".f03": "fortran",
    ".f08": "fortran",
    ".dart": "dart",
    ".ex": "elixir",
    ".exs": "elixir",
    ".hs": "haskell",
    ".r": "r",
}
_NAMED_LANGUAGES = {
    "Makefile": "make",
    "Dockerfile": "dockerfile",
    "Containerfile": "dockerfile",
    "CMakeLists.txt": "cmake",
}


def language_of(path: str) -> str:
    """A coarse language name for ``path`` by file name or suffix ("text" if unknown)."""
    name = path.rsplit("/", 1)[-1]
    if name in _NAMED_LANGUAGES:
        return _NAMED_LANGUAGES[name]
    dot = name.rfind(".")
    if dot <= 0:
        return "text"
    return _LANGUAGES.get(name[dot:].lower(), "text")


class SourceError(AgentrtError, ValueError):
    """The thing to scan is not usable at all (missing, not a directory)."""


def _blake2b_hex(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=20).hexdigest()


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A text file of a repository. ``path`` (relative, posix) is its identity.

    ``ctime_ns`` (inode change time) only helps to notice rewrites that kept size and
    mtime; it is 0 when unknown.
    """

    path: str
    abs_path: Path
    size: int
    mtime_ns: int
    language: str
    ctime_ns: int = 0

    def read_bytes(self) -> bytes:
        return self.abs_path.read_bytes()

    def read_text_with_encoding(self) -> tuple[str, str]:
        """The text and the codec that decoded it: ``"utf-8"``, else ``"latin-1"``.

        latin-1 maps every byte to one character, so the fallback never fails and loses
        nothing (the bytes can be recovered with ``text.encode("latin-1")``).
        """
        data = self.read_bytes()
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return data.decode("latin-1"), "latin-1"

    def read_text(self) -> str:
        """The file's text (UTF-8, or latin-1 when it is not valid UTF-8)."""
        return self.read_text_with_encoding()[0]

    def content_hash(self) -> str:
        """blake2b (160 bit) hex digest of the file's bytes."""
        return _blake2b_hex(self.read_bytes())


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A file or directory left out of a scan, and why (``reason`` is for humans)."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class TextSource:
    """Context that is not a repository file: a transcript, an agent's output, a note."""

    name: str
    text: str
    kind: str

    def content_hash(self) -> str:
        return _blake2b_hex(self.text.encode("utf-8", "surrogatepass"))


@dataclass(slots=True)
class RepoScan:
    """The result of :func:`scan_repository`.

    ``files`` is sorted by path. ``message`` is set when there is nothing to work with
    (callers print it).
    """

    root: Path
    files: list[SourceFile]
    skipped: list[SkippedFile] = field(default_factory=list)
    message: str | None = None
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    def fingerprint(self, store: ContextStore | None = None) -> str:
        """A content-based fingerprint of the scanned files (a cache key for the tree).

        Hashes the sorted ``(path, content_hash)`` pairs: it changes when a file's content,
        name or presence changes, not when only an mtime does. Content hashes of files
        whose ``(size, mtime_ns)`` did not change since the previous fingerprint of this
        root are reused, from memory or from ``store`` (shared across processes).
        """
        if self._fingerprint is None:
            hashes = _content_hashes(self, store)
            h = hashlib.blake2b(digest_size=20)
            for f in self.files:
                h.update(f.path.encode("utf-8", "surrogateescape"))
                h.update(b"\0")
                h.update(hashes[f.path].encode())
                h.update(b"\n")
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def by_path(self) -> dict[str, SourceFile]:
        return {f.path: f for f in self.files}


def iter_text_files(scan: RepoScan) -> Iterator[tuple[SourceFile, str]]:
    """Yield ``(file, text)`` for each file of ``scan`` that can still be read."""
    for f in scan.files:
        try:
            text = f.read_text()
        except OSError:  # deleted or made unreadable since the scan
            continue
        yield f, text


# --------------------------------------------------------------------------------------
# Content-hash reuse
# --------------------------------------------------------------------------------------

# A hash recorded at time T is only trusted for files last changed before T minus this
# margin: file timestamps are as coarse as the kernel clock tick, so a file rewritten just
# after it was hashed can keep its size, mtime and ctime ("racy git").
_RACY_MARGIN_NS = 2_000_000_000

_Stamp = tuple[int, int, int]  # size, mtime_ns, ctime_ns
_Manifest = dict[str, tuple[_Stamp, str]]  # path -> (stamp, content hash)

# root -> (recorded_at_ns, manifest): the last manifest per root, in this process.
_manifests: dict[str, tuple[int, _Manifest]] = {}


def _content_hashes(scan: RepoScan, store: ContextStore | None) -> dict[str, str]:
    """Content hash per path, reusing hashes of files whose stamp did not change."""
    root = str(scan.root)
    store_key = store.make_key("source-manifest", root) if store is not None else None
    previous = _manifests.get(root)
    if previous is None and store is not None and store_key is not None:
        loaded = store.get(store_key)
        if isinstance(loaded, tuple) and len(loaded) == 2:
            previous = loaded
    recorded_at, old = previous if previous is not None else (0, {})
    trusted_before = recorded_at - _RACY_MARGIN_NS

    now = time.time_ns()
    manifest: _Manifest = {}
    hashed = 0
    for f in scan.files:
        stamp = (f.size, f.mtime_ns, f.ctime_ns)
        entry = old.get(f.path)
        if entry is not None and entry[0] == stamp and max(stamp[1:]) < trusted_before:
            manifest[f.path] = entry
            continue
        try:
            digest = f.content_hash()
        except OSError as exc:
            # Vanished or unreadable since the scan: still a stable, distinct value.
            digest = f"unreadable:{exc.errno}"
        manifest[f.path] = (stamp, digest)
        hashed += 1
    if hashed or len(manifest) != len(old):
        _manifests[root] = (now, manifest)
        if store is not None and store_key is not None:
            store.set(store_key, (now, manifest))
    elif root not in _manifests:
        _manifests[root] = (recorded_at, old)
    return {path: entry[1] for path, entry in manifest.items()}


# --------------------------------------------------------------------------------------
# Scanning
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Dir:
    path: str  # absolute path as walked (may go through an in-tree symlink)
    real: str  # resolved path, for loop detection
    rel: str  # posix path relative to the root, "" for the root
    specs: tuple[tuple[str, GitIgnoreSpec], ...]  # (base rel dir, spec), outermost first


def scan_repository(
    root: str | Path,
    *,
    max_file_bytes: int = 1_000_000,
    extra_ignores: Sequence[str] = (),
    include: Sequence[str] | None = None,
) -> RepoScan:
    """Find the text files under ``root``.

    Args:
        root: the directory to scan.
        max_file_bytes: larger files are skipped ("too large").
        extra_ignores: more gitignore-style patterns, relative to ``root``; they win over
            any ``.gitignore`` negation.
        include: if given, gitignore-style patterns a file must match to be kept
            (e.g. ``["*.py", "docs/**/*.md"]``).

    Raises:
        SourceError: ``root`` does not exist or is not a directory.
    """
    root_path = Path(root).expanduser()
    if not root_path.exists():
        raise SourceError(f"cannot scan {root_path}: no such directory")
    if not root_path.is_dir():
        raise SourceError(f"cannot scan {root_path}: not a directory (pass its folder)")
    root_path = root_path.resolve()
    walker = _Walker(
        root=root_path,
        max_file_bytes=max_file_bytes,
        extra=GitIgnoreSpec.from_lines(extra_ignores) if extra_ignores else None,
        include=GitIgnoreSpec.from_lines(include) if include is not None else None,
    )
    files, skipped = walker.walk()
    files.sort(key=lambda f: f.path)
    skipped.sort(key=lambda s: s.path)
    message = None if files else f"no readable text files under {root_path}"
    return RepoScan(root=root_path, files=files, skipped=skipped, message=message)


class _Walker:
    def __init__(
        self,
        root: Path,
        max_file_bytes: int,
        extra: GitIgnoreSpec | None,
        include: GitIgnoreSpec | None,
    ) -> None:
        self.root = root
        self.root_str = str(root)
        self.max_file_bytes = max_file_bytes
        self.extra = extra
        self.include = include
        self.files: list[SourceFile] = []
        self.skipped: list[SkippedFile] = []
        self.visited: set[str] = set()
        self._dir_specs: dict[int, PathSpec] = {}
        #: Files git tracks although a .gitignore rule matches them (added before the rule,
        #: or forced), and their folders: a .gitignore does not hide them (see walk).
        self.tracked_ignored: set[str] = set()
        self.tracked_ignored_dirs: set[str] = set()

    def walk(self) -> tuple[list[SourceFile], list[SkippedFile]]:
        self._find_tracked_ignored()
        root_specs: list[tuple[str, GitIgnoreSpec]] = []
        exclude = self._read_ignore_file(os.path.join(self.root_str, ".git", "info", "exclude"))
        if exclude is not None:
            root_specs.append(("", exclude))
        stack = [_Dir(self.root_str, self.root_str, "", tuple(root_specs))]
        # Directories reached through symlinks are walked last, so a directory that is
        # also reachable directly is listed under its own path, not the link's.
        deferred: list[_Dir] = []
        while stack or deferred:
            directory = stack.pop() if stack else deferred.pop(0)
            self._walk_dir(directory, stack, deferred)
        return self.files, self.skipped

    def _walk_dir(self, d: _Dir, stack: list[_Dir], deferred: list[_Dir]) -> None:
        if d.real in self.visited:
            self._skip_revisit(d)
            return
        self.visited.add(d.real)
        try:
            entries = list(os.scandir(d.path))
        except OSError as exc:
            self._skip(d.rel or ".", f"unreadable directory: {_strerror(exc)}")
            return

        specs = d.specs
        if any(e.name == ".gitignore" for e in entries):
            spec = self._read_ignore_file(os.path.join(d.path, ".gitignore"), d.rel)
            if spec is not None:
                specs = (*specs, (d.rel, spec))

        for entry in entries:
            name = entry.name
            rel = f"{d.rel}/{name}" if d.rel else name
            is_link = False
            try:
                is_link = entry.is_symlink()  # from the directory listing: no syscall
                is_dir = entry.is_dir()  # follows symlinks
            except OSError as exc:
                self._skip(rel, _link_reason(exc) if is_link else _unreadable(exc))
                continue
            if is_dir:
                if self._dir_ignored(name, rel, entry.path, specs):
                    continue
                if is_link:
                    target = self._in_tree_target(entry.path, rel)
                    if target is not None:
                        deferred.append(_Dir(entry.path, target, rel, specs))
                else:
                    stack.append(_Dir(entry.path, f"{d.real}/{name}", rel, specs))
                continue
            if self._ignored(rel, specs, is_dir=False):
                continue
            if self.include is not None and not self.include.match_file(rel):
                continue
            if is_link and self._in_tree_target(entry.path, rel) is None:
                continue
            self._add_file(entry, rel)

    def _add_file(self, entry: os.DirEntry[str], rel: str) -> None:
        try:
            st = entry.stat()  # follows an (in-tree) symlink
        except OSError as exc:
            self._skip(rel, _link_reason(exc) if entry.is_symlink() else _unreadable(exc))
            return
        if not stat.S_ISREG(st.st_mode):
            # FIFOs, sockets, devices: opening a FIFO would block the scan.
            self._skip(rel, "not a regular file")
            return
        if st.st_size > self.max_file_bytes:
            self._skip(
                rel,
                f"too large ({_megabytes(st.st_size)} > {_megabytes(self.max_file_bytes)} limit)",
            )
            return
        dot = entry.name.rfind(".")
        if dot > 0 and entry.name[dot:].lower() in _BINARY_SUFFIXES:
            self._skip(rel, f"binary ({entry.name[dot:].lower()} file)")
            return
        if st.st_size:
            try:
                with open(entry.path, "rb") as fh:
                    head = fh.read(SNIFF_BYTES)
            except OSError as exc:
                self._skip(rel, _unreadable(exc))
                return
            if b"\0" in head:
                self._skip(rel, "binary (NUL byte)")
                return
        self.files.append(
            SourceFile(
                path=rel,
                abs_path=Path(self.root_str, rel),
                size=st.st_size,
                mtime_ns=st.st_mtime_ns,
                language=language_of(rel),
                ctime_ns=st.st_ctime_ns,
            )
        )

    def _dir_ignored(
        self, name: str, rel: str, path: str, specs: tuple[tuple[str, GitIgnoreSpec], ...]
    ) -> bool:
        if name in DEFAULT_IGNORED_DIRS or name.endswith(".egg-info"):
            return True
        if os.path.exists(os.path.join(path, "pyvenv.cfg")):  # a virtualenv of any name
            return True
        if self._ignored(rel, specs, is_dir=True):
            return True
        return name in AMBIGUOUS_DIRS and self._build_output(path, rel)

    def _find_tracked_ignored(self) -> None:
        """Ask git (in a git work tree only) which tracked files its ignore rules match.

        A .gitignore only keeps untracked files out of git: zstd's ``build/.gitignore``
        lists ``VS2008/`` whose project files git tracks all the same. One ``git ls-files``
        call, made only when a ``.git`` is found at or above the root.
        """
        if not in_work_tree(self.root_str):
            return
        listed = git_stdout(
            self.root_str, "ls-files", "-z", "--cached", "--ignored", "--exclude-standard",
            timeout=10.0,
        )  # fmt: skip
        for rel in (listed or "").split("\0"):
            if not rel:
                continue
            self.tracked_ignored.add(rel)
            folder = rel.rpartition("/")[0]
            while folder and folder not in self.tracked_ignored_dirs:
                self.tracked_ignored_dirs.add(folder)
                folder = folder.rpartition("/")[0]

    def _build_output(self, path: str, rel: str) -> bool:
        """Whether the folder ``rel`` (named like build output) holds build output.

        No if git tracks a file in it; else yes if one of :data:`BUILD_OUTPUT_MARKERS` is
        directly inside (an untracked folder without them, or a tree outside git, is read:
        a tracked, text, source-like file is never skipped by its folder's name alone).
        """
        tracked = git_stdout(
            self.root_str, "--literal-pathspecs", "ls-files", "-z", "--", f"{rel}/", timeout=10.0
        )
        if tracked:
            return False
        try:
            names = os.listdir(path)
        except OSError:
            return False  # _walk_dir records why it cannot be read
        return any(n in BUILD_OUTPUT_MARKERS or n.startswith(_BUILD_OUTPUT_PREFIXES) for n in names)

    def _ignored(
        self, rel: str, specs: tuple[tuple[str, GitIgnoreSpec], ...], *, is_dir: bool
    ) -> bool:
        suffix = "/" if is_dir else ""  # lets "build/"-style patterns match directories
        if self.extra is not None and self.extra.match_file(rel + suffix):
            return True
        if rel in (self.tracked_ignored_dirs if is_dir else self.tracked_ignored):
            return False  # tracked by git: no .gitignore rule hides it
        ignored = False
        # Deeper .gitignore files override shallower ones, as in git.
        for base, spec in specs:
            local = rel[len(base) + 1 :] if base else rel
            checker = _last_match(spec, self._dir_specs) if is_dir else spec
            include = checker.check_file(local + suffix).include
            if include is not None:
                ignored = include
        return ignored

    def _in_tree_target(self, path: str, rel: str) -> str | None:
        """The resolved target of symlink ``path`` if it may be followed, else None."""
        try:
            target = os.path.realpath(path, strict=True)
        except OSError as exc:
            self._skip(rel, _link_reason(exc))
            return None
        if target != self.root_str and not target.startswith(self.root_str + os.sep):
            self._skip(rel, "symlink outside repository")
            return None
        return target

    def _skip_revisit(self, d: _Dir) -> None:
        # Reached again through a symlink: pointing at one of its own ancestors is a loop,
        # anything else is a directory that was already scanned under its own path.
        link_parent = os.path.dirname(d.path)
        parent_real = os.path.realpath(link_parent)
        if parent_real == d.real or parent_real.startswith(d.real + os.sep):
            self._skip(d.rel, "symlink loop")
        else:
            self._skip(d.rel, f"symlink to a directory already scanned ({self._rel(d.real)})")

    def _rel(self, real: str) -> str:
        return os.path.relpath(real, self.root_str).replace(os.sep, "/")

    def _read_ignore_file(self, path: str, rel: str = "") -> GitIgnoreSpec | None:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._skip(self._rel(path), f"unreadable ignore file: {_strerror(exc)}")
            return None
        if not lines:
            return None
        return GitIgnoreSpec.from_lines(lines)

    def _skip(self, rel: str, reason: str) -> None:
        self.skipped.append(SkippedFile(rel, reason))


def _last_match(spec: GitIgnoreSpec, cache: dict[int, PathSpec]) -> PathSpec:
    """``spec`` with git's plain rule for a directory itself: the last matching pattern wins.

    pathspec's GitIgnoreSpec (1.1) lets ``*`` beat a later ``!*/`` for ``core/``, where git
    keeps the directory: go-zero's ``.gitignore`` (``*``, ``!*.*``, ``!*/``) hid 99 % of its
    tree. The walker never descends into an ignored directory, so the parent-exclusion rule
    GitIgnoreSpec adds for files is kept by the walk itself.
    """
    found = cache.get(id(spec))
    if found is None:
        found = cache[id(spec)] = PathSpec(spec.patterns)
    return found


def _strerror(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _unreadable(exc: OSError) -> str:
    return f"unreadable: {_strerror(exc)}"


def _link_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.ENOENT:
        return "broken symlink"
    return _unreadable(exc)


def _megabytes(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"
