from __future__ import annotations

import builtins
import os
from pathlib import Path

import pytest

from agentrt.context import sources
from agentrt.context.sources import (
    RepoScan,
    SourceError,
    TextSource,
    iter_text_files,
    language_of,
    scan_repository,
)

SITE_PACKAGES = Path(__file__).resolve().parents[2] / ".venv/lib/python3.11/site-packages"


def write(root: Path, rel: str, content: str | bytes = "x = 1\n") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def paths(scan: RepoScan) -> list[str]:
    return [f.path for f in scan.files]


def skipped(scan: RepoScan) -> dict[str, str]:
    return {s.path: s.reason for s in scan.skipped}


def test_gitignore_ignore_all_but_directories_and_files_with_extensions(tmp_path: Path) -> None:
    # go-zero's .gitignore: "*" then "!*.*" and "!*/" (git re-includes every directory).
    write(tmp_path, ".gitignore", "# Ignore all\n*\n\n!*.*\n!*/\n!**/Makefile\n")
    write(tmp_path, "core/mapping/unmarshaler.go")
    write(tmp_path, "core/mapping/README")  # no extension: still ignored
    write(tmp_path, "tools/Makefile")
    write(tmp_path, "LICENSE")
    assert paths(scan_repository(tmp_path)) == [
        ".gitignore",
        "core/mapping/unmarshaler.go",
        "tools/Makefile",
    ]


def test_gitignore_root_nested_and_negation(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "*.log\n!keep.log\nsecret/\n/top_only.txt\n")
    write(tmp_path, "a.py")
    write(tmp_path, "debug.log")
    write(tmp_path, "keep.log")
    write(tmp_path, "secret/key.txt")
    write(tmp_path, "top_only.txt")
    write(tmp_path, "pkg/top_only.txt")  # anchored pattern: only the root one is ignored
    write(tmp_path, "pkg/.gitignore", "generated_*.py\n!keep.log\nkeep.log\n")
    write(tmp_path, "pkg/generated_x.py")
    write(tmp_path, "pkg/real.py")
    write(tmp_path, "pkg/keep.log")  # re-ignored by the deeper file (last match wins)
    write(tmp_path, "pkg/sub/debug.log")  # root pattern applies at any depth
    write(tmp_path, "pkg/sub/.gitignore", "!debug.log\n")  # ...but a deeper file re-includes
    write(tmp_path, "other/generated_y.py")  # nested pattern does not leak to siblings

    scan = scan_repository(tmp_path)
    assert paths(scan) == [
        ".gitignore",
        "a.py",
        "keep.log",
        "other/generated_y.py",
        "pkg/.gitignore",
        "pkg/real.py",
        "pkg/sub/.gitignore",
        "pkg/sub/debug.log",
        "pkg/top_only.txt",
    ]
    assert scan.message is None
    assert scan.skipped == []  # ignored files are not "skipped"


def test_a_negated_directory_pattern_keeps_the_directory_as_git_does(tmp_path: Path) -> None:
    # go-zero's .gitignore: ignore everything, then keep files with a dot and every
    # directory. `git check-ignore` keeps core/ and core/sub/; pathspec's GitIgnoreSpec 1.1
    # alone would drop them.
    write(tmp_path, ".gitignore", "*\n!*.*\n!*/\n")
    write(tmp_path, "Makefile", "all:\n")
    write(tmp_path, "core/a.go", "package core\n")
    write(tmp_path, "core/sub/b.go", "package sub\n")
    write(tmp_path, "core/sub/LICENSE", "x\n")
    assert paths(scan_repository(tmp_path)) == [".gitignore", "core/a.go", "core/sub/b.go"]


def test_git_info_exclude_and_extra_ignores_and_include(tmp_path: Path) -> None:
    write(tmp_path, ".git/info/exclude", "local_*.py\n")
    write(tmp_path, ".gitignore", "!docs/\n")
    write(tmp_path, "local_notes.py")
    write(tmp_path, "main.py")
    write(tmp_path, "docs/index.md", "# Docs\n")
    write(tmp_path, "docs/conf.py")
    assert paths(scan_repository(tmp_path)) == [
        ".gitignore",
        "docs/conf.py",
        "docs/index.md",
        "main.py",
    ]
    assert paths(scan_repository(tmp_path, extra_ignores=["docs/"])) == [".gitignore", "main.py"]
    assert paths(scan_repository(tmp_path, include=["*.py"])) == ["docs/conf.py", "main.py"]


def test_default_ignores(tmp_path: Path) -> None:
    for rel in [
        ".git/config",
        ".hg/x",
        ".svn/x",
        ".venv/lib/x.py",
        "venv/lib/x.py",
        "env/pyvenv.cfg",  # virtualenv with an ordinary name, detected by pyvenv.cfg
        "env/lib/x.py",
        "myenv/pyvenv.cfg",
        "node_modules/pkg/index.js",
        "pkg/__pycache__/m.cpython-311.pyc",
        "build/lib/x.py",
        "dist/x.py",
        "proj.egg-info/PKG-INFO",
        ".tox/x",
        ".nox/x",
        ".mypy_cache/x",
        ".pytest_cache/x",
        ".ruff_cache/x",
        ".agentrt/context/x",
        "lib/site-packages/x.py",
    ]:
        write(tmp_path, rel)
    write(tmp_path, "src/env/settings.py")  # "env" without pyvenv.cfg is ordinary code
    write(tmp_path, "src/app.py")
    assert paths(scan_repository(tmp_path)) == ["src/app.py", "src/env/settings.py"]


def test_build_folder_of_build_scripts_is_scanned_and_build_output_is_not(tmp_path: Path) -> None:
    # zstd keeps its CMake and Visual Studio projects in build/, bat its build script.
    write(tmp_path, "build/cmake/CMakeLists.txt", "project(zstd)\n")
    write(tmp_path, "build/main.rs", "fn main() {}\n")
    write(tmp_path, "app/build/CMakeCache.txt", "CMAKE_BUILD_TYPE:STRING=Release\n")
    write(tmp_path, "app/build/gen.cpp", "int x;\n")
    write(tmp_path, "py/build/lib.linux-x86_64-cpython-311/m.py")  # setuptools output
    write(tmp_path, "src/a.c", "int a;\n")
    assert paths(scan_repository(tmp_path)) == [
        "build/cmake/CMakeLists.txt",
        "build/main.rs",
        "src/a.c",
    ]


def _git(repo: Path, *args: str) -> None:
    import subprocess

    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
    )


def test_tracked_files_are_scanned_though_a_gitignore_matches_them(tmp_path: Path) -> None:
    # zstd's build/.gitignore lists VS2008/, whose project files git tracks all the same;
    # a tracked build/ with output markers is scanned too, an untracked one is not.
    write(tmp_path, "build/.gitignore", "VS2008/\n")
    write(tmp_path, "build/VS2008/fuzzer.vcproj", "<VisualStudioProject/>\n")
    write(tmp_path, "tools/build/CMakeCache.txt", "tracked\n")
    write(tmp_path, "src/a.c", "int a;\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-f", ".")
    _git(tmp_path, "commit", "-qm", "init")
    write(tmp_path, "build/VS2008/local.user", "untracked and ignored\n")
    write(tmp_path, "out/build/CMakeCache.txt", "untracked build output\n")
    assert paths(scan_repository(tmp_path)) == [
        "build/.gitignore",
        "build/VS2008/fuzzer.vcproj",
        "src/a.c",
        "tools/build/CMakeCache.txt",
    ]


def test_root_named_like_a_default_ignore_is_scanned(tmp_path: Path) -> None:
    write(tmp_path, "build/x.py")
    assert paths(scan_repository(tmp_path / "build")) == ["x.py"]


def test_binary_huge_and_empty_files(tmp_path: Path) -> None:
    write(tmp_path, "blob.dat2", b"abc\0def")
    write(tmp_path, "late_nul.txt", b"a" * 9000 + b"\0")  # NUL after the 8 KiB sniff
    write(tmp_path, "image.png", b"not even a png")  # binary by suffix, never opened
    write(tmp_path, "empty.py", "")
    huge = tmp_path / "huge.sql"
    with huge.open("wb") as fh:
        fh.truncate(3_200_000)  # sparse: no real disk use
    scan = scan_repository(tmp_path)
    assert paths(scan) == ["empty.py", "late_nul.txt"]
    assert skipped(scan) == {
        "blob.dat2": "binary (NUL byte)",
        "image.png": "binary (.png file)",
        "huge.sql": "too large (3.2 MB > 1.0 MB limit)",
    }
    bigger_limit = scan_repository(tmp_path, max_file_bytes=4_000_000)
    assert skipped(bigger_limit)["huge.sql"] == "binary (NUL byte)"  # sparse: all NULs


def test_non_utf8_file_reads_losslessly(tmp_path: Path) -> None:
    raw = "café = 'naïve'\n".encode("latin-1")
    write(tmp_path, "legacy.py", raw)
    write(tmp_path, "modern.py", "café = 'naïve'\n")
    files = scan_repository(tmp_path).by_path()
    text, codec = files["legacy.py"].read_text_with_encoding()
    assert codec == "latin-1"
    assert text.encode("latin-1") == raw
    assert files["modern.py"].read_text_with_encoding() == ("café = 'naïve'\n", "utf-8")
    assert files["legacy.py"].language == "python"
    assert dict((f.path, t) for f, t in iter_text_files(scan_repository(tmp_path)))[
        "modern.py"
    ] == ("café = 'naïve'\n")


def test_symlinks(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    outside = tmp_path / "outside"
    write(outside, "secret.py", "password = 1\n")
    write(repo, "pkg/mod.py")
    (repo / "pkg" / "loop").symlink_to("..")  # points at its own ancestor
    (repo / "pkg" / "self").symlink_to(".")
    (repo / "alias.py").symlink_to("pkg/mod.py")  # in-tree file link: fine
    (repo / "pkg_alias").symlink_to("pkg")  # in-tree dir link: already scanned
    (repo / "escape").symlink_to(outside)
    (repo / "escape.py").symlink_to(outside / "secret.py")
    (repo / "dangling.py").symlink_to("missing.py")
    (repo / "ping.py").symlink_to("pong.py")
    (repo / "pong.py").symlink_to("ping.py")

    scan = scan_repository(repo)
    assert paths(scan) == ["alias.py", "pkg/mod.py"]
    assert scan.by_path()["alias.py"].read_text() == "x = 1\n"
    assert skipped(scan) == {
        "pkg/loop": "symlink loop",
        "pkg/self": "symlink loop",
        "pkg_alias": "symlink to a directory already scanned (pkg)",
        "escape": "symlink outside repository",
        "escape.py": "symlink outside repository",
        "dangling.py": "broken symlink",
        "ping.py": "symlink loop",
        "pong.py": "symlink loop",
    }


def test_symlink_to_ignored_directory_is_followed_under_its_own_name(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "vendored/\n")
    write(tmp_path, "vendored/lib.py")
    (tmp_path / "lib").symlink_to("vendored")
    assert paths(scan_repository(tmp_path)) == [".gitignore", "lib/lib.py"]


def test_unreadable_file_and_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "ok.py")
    locked = write(tmp_path, "locked.py")
    locked_dir = tmp_path / "private"
    write(tmp_path, "private/x.py")
    if os.geteuid() != 0:  # root reads anything: chmod cannot make it fail
        locked.chmod(0)
        locked_dir.chmod(0)
        try:
            scan = scan_repository(tmp_path)
        finally:
            locked.chmod(0o644)
            locked_dir.chmod(0o755)
        assert paths(scan) == ["ok.py"]
        assert skipped(scan) == {
            "locked.py": "unreadable: Permission denied",
            "private": "unreadable directory: Permission denied",
        }

    # The same code paths, whoever runs the tests.
    real_open, real_scandir = builtins.open, os.scandir

    def deny_open(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(file).endswith("locked.py"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    def deny_scandir(path):  # type: ignore[no-untyped-def]
        if str(path).endswith("private"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(builtins, "open", deny_open)
    monkeypatch.setattr(sources.os, "scandir", deny_scandir)
    scan = scan_repository(tmp_path)
    assert paths(scan) == ["ok.py"]
    assert skipped(scan) == {
        "locked.py": "unreadable: Permission denied",
        "private": "unreadable directory: Permission denied",
    }


def test_empty_tree_has_a_message(tmp_path: Path) -> None:
    write(tmp_path, "only.bin", b"\0\0")
    scan = scan_repository(tmp_path)
    assert scan.files == []
    assert scan.message == f"no readable text files under {tmp_path.resolve()}"
    assert scan.fingerprint() == scan_repository(tmp_path).fingerprint()


def test_missing_root_and_file_root_raise_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"cannot scan .*nope: no such directory"):
        scan_repository(tmp_path / "nope")
    f = write(tmp_path, "file.py")
    with pytest.raises(ValueError, match="not a directory"):
        scan_repository(f)


def test_fifo_is_skipped_not_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    write(tmp_path, "a.py")
    scan = scan_repository(tmp_path)
    assert paths(scan) == ["a.py"]
    assert skipped(scan) == {"pipe": "not a regular file"}


def test_source_file_fields(tmp_path: Path) -> None:
    p = write(tmp_path, "docs/guide.md", "# Guide\n")
    (f,) = scan_repository(tmp_path).files
    st = p.stat()
    assert (f.path, f.abs_path, f.size, f.mtime_ns, f.language) == (
        "docs/guide.md",
        p.resolve(),
        st.st_size,
        st.st_mtime_ns,
        "markdown",
    )
    assert f.content_hash() == TextSource("g", "# Guide\n", "note").content_hash()
    with pytest.raises(AttributeError):
        f.path = "other"  # type: ignore[misc]


def test_language_of() -> None:
    assert language_of("a/b.py") == "python"
    assert language_of("README.md") == "markdown"
    assert language_of("Makefile") == "make"
    assert language_of("notes") == "text"
    assert language_of(".bashrc") == "text"
    assert language_of("x.TS") == "typescript"


def test_fingerprint_tracks_content_not_mtime(tmp_path: Path) -> None:
    a = write(tmp_path, "a.py", "a = 1\n")
    write(tmp_path, "b.py", "b = 2\n")
    base = scan_repository(tmp_path).fingerprint()
    assert scan_repository(tmp_path).fingerprint() == base

    os.utime(a, ns=(1_000_000_000, 1_000_000_000))  # touch: new mtime, same content
    assert scan_repository(tmp_path).fingerprint() == base

    a.write_text("a = 3\n")  # same size, new content
    os.utime(a, ns=(1_000_000_000, 1_000_000_000))  # ...even with the old mtime
    changed = scan_repository(tmp_path).fingerprint()
    assert changed != base

    a.write_text("a = 1\n")
    assert scan_repository(tmp_path).fingerprint() == base
    (tmp_path / "b.py").rename(tmp_path / "c.py")  # rename: same content, new identity
    assert scan_repository(tmp_path).fingerprint() != base


def test_fingerprint_reuses_hashes_of_unchanged_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(5):
        write(tmp_path, f"m{i}.py", f"v = {i}\n")
    hashed: list[str] = []
    real = sources.SourceFile.content_hash

    def counting(self: sources.SourceFile) -> str:
        hashed.append(self.path)
        return real(self)

    monkeypatch.setattr(sources.SourceFile, "content_hash", counting)
    first = scan_repository(tmp_path).fingerprint()
    assert len(hashed) == 5
    # Files changed within the last 2 s are re-read every time: their timestamps could
    # hide a rewrite in the same clock tick.
    assert scan_repository(tmp_path).fingerprint() == first
    assert len(hashed) == 10

    hashed.clear()
    monkeypatch.setattr(sources, "_RACY_MARGIN_NS", 0)  # as if the files were old
    scan_repository(tmp_path).fingerprint()
    hashed.clear()
    assert scan_repository(tmp_path).fingerprint() == first
    assert hashed == []  # nothing re-read
    os.utime(tmp_path / "m2.py")  # touched: stamp changed, so re-read, same fingerprint
    assert scan_repository(tmp_path).fingerprint() == first
    assert hashed == ["m2.py"]


@pytest.mark.skipif(not (SITE_PACKAGES / "prefect").is_dir(), reason="prefect not installed")
def test_scan_real_tree_prefect() -> None:
    root = SITE_PACKAGES / "prefect"
    scan = scan_repository(root)
    assert len(scan.files) > 500
    assert "flows.py" in paths(scan)
    assert not any("__pycache__" in p for p in paths(scan))
    assert paths(scan) == sorted(paths(scan))
    assert all(f.size <= 1_000_000 for f in scan.files)
    reasons = {s.reason.split(" (")[0] for s in scan.skipped}
    assert reasons <= {"binary", "too large"}
    assert len(scan.fingerprint()) == 40
