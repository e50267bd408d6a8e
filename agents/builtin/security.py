"""Security validation (agent ``security_validation``): bandit plus a hard-coded secret scan.

**Bandit** runs as a subprocess (``python -I -m bandit -f json``) over the selected Python
files, once, with its default plugin set minus ``bandit_skip`` (``B101``, ``assert`` used, by
default: in test suites it fires on every test and buries the findings that matter).
Severity and confidence are bandit's own. Test code (``tests/``, ``test_*.py``,
``conftest.py``) is left out unless ``include_tests``: it is rarely deployed, and it is most of
a large project (15 of pandas' 24.5 MB of Python) while bandit manages about 0.4 MB/s; the
secret scan still covers it.

Why a subprocess rather than bandit's Python API: the CPU cost is the same (measured: about
11 s for prefect's 854 files either way), but a subprocess runs outside this interpreter's
GIL, so the other analysers keep running meanwhile, and on large trees the files are split
over two processes (``jobs``). ``-I`` matters: without it ``python -m`` puts the working
directory, the repository, first on ``sys.path``, and a repository module named like one
bandit imports (``logging.py``) would be imported and run. No configuration of the repository
is read (``.bandit`` files are only picked up for directory targets; files are passed one by
one).

**Secrets** are searched in every selected text file (not only Python) with the patterns of
``SECRET_PATTERNS``: AWS access key IDs and secret keys, private key headers, GitHub, Slack,
Stripe and Google API tokens, Slack webhooks; and generic ``api_key = "…"``-style assignments
whose value looks random (at least 12 characters, letters and digits, Shannon entropy of at
least 3.5 bits per character, not a placeholder). A generic match on a line bandit already
reported as a hard-coded password is dropped as a duplicate.

**No secret is ever repeated**: messages show the first 4 characters and "…", including
bandit's hard-coded-password messages, which quote the whole string.

**Coverage.** ``language_coverage`` has one entry for bandit (the Python files it read; test
code and code of other languages left out) and one for the secret scan (every text file, by
language; left out: files too large for the repository scan or unreadable — a secret in them
would go unseen).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from agentrt.agents.builtin.common import (
    AnalyserInput,
    Confidence,
    Finding,
    Severity,
    SeverityCounts,
    findings_table,
    is_test_path,
    md_table,
    scan_files,
    sort_findings,
)
from agentrt.agents.builtin.coverage import ToolCoverage, coverage_markdown, language_coverage

if TYPE_CHECKING:
    from agentrt.context.sources import SourceFile

__all__ = [
    "SECRET_PATTERNS",
    "BanditRun",
    "Input",
    "Output",
    "SecretPattern",
    "redact",
    "render_markdown",
    "run",
    "scan_secrets",
]

_BANDIT_CHUNK = 2000  # files per command line, far below the kernel's argument-size limit
_BANDIT_TIMEOUT = 1800  # seconds
#: Reasons of the repository scan for leaving a file out that could hide a secret.
_UNSEARCHED = ("too large", "unreadable")


class Input(AnalyserInput):
    """What to scan, and how."""

    bandit_skip: list[str] = Field(
        default=["B101"], description="Bandit test IDs not to run (B101: assert used)."
    )
    scan_secrets: bool = Field(default=True, description="Search text files for secrets.")
    include_tests: bool = Field(
        default=False,
        description="Also run bandit on test code (tests/, test_*.py, conftest.py); the "
        "secret scan always covers it.",
    )
    jobs: int | None = Field(
        default=None,
        ge=1,
        le=32,
        description="Bandit processes to run at once; None: 2 on large trees (one per 200 "
        "files, at most the number of CPUs and 2), else 1.",
    )


class BanditRun(BaseModel):
    """How bandit was run, and what it could not scan."""

    version: str
    files: int
    skipped_tests: list[str]
    errors: list[str] = Field(description="Files bandit could not scan, with the reason.")


class Output(BaseModel):
    """Security findings, sorted by place."""

    summary: str
    files_analysed: int = Field(description="Python files given to bandit.")
    text_files_scanned: int = Field(description="Files searched for secrets.")
    bandit: BanditRun
    findings: list[Finding]
    counts: SeverityCounts
    secrets: int = Field(description="How many findings are hard-coded secrets.")
    notes: list[str]
    language_coverage: list[ToolCoverage] = Field(
        default_factory=list,
        description="Per tool (bandit, secrets): files read per language, and those left out.",
    )


# --------------------------------------------------------------------------------------------
# Secrets


def redact(secret: str) -> str:
    """The first 4 characters of ``secret`` and an ellipsis: enough to find it, not to use it."""
    return secret[:4] + "…"


@dataclass(frozen=True, slots=True)
class SecretPattern:
    """A kind of secret: ``regex``'s group ``secret`` is the value (what gets redacted).

    Patterns start with a literal (``AKIA``, ``ghp_``) so :mod:`re` can skip ahead to
    candidates; a ``\\b`` in front would make it try every position (measured: 4x slower).
    ``word_start`` checks the word boundary before the match instead.
    """

    rule: str
    description: str
    regex: re.Pattern[str]
    severity: Severity = "high"
    confidence: Confidence = "high"
    word_start: bool = True


def _p(rule: str, description: str, pattern: str, *args: str, flags: int = 0) -> SecretPattern:
    return SecretPattern(rule, description, re.compile(pattern, flags), *args)  # type: ignore[arg-type]


SECRET_PATTERNS: tuple[SecretPattern, ...] = (
    _p("aws-access-key-id", "AWS access key ID", r"(?P<secret>A(?:KIA|SIA)[0-9A-Z]{16})\b"),
    _p(
        "aws-secret-access-key",
        "AWS secret access key",
        r"aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?(?P<secret>[A-Za-z0-9/+=]{40})"
        r"(?![A-Za-z0-9/+=])",
        "critical",
        flags=re.IGNORECASE,
    ),
    _p(
        "private-key",
        "private key",
        r"-----BEGIN (?P<secret>(?:RSA |DSA |EC |OPENSSH |PGP |ENCRYPTED )?"
        r"PRIVATE KEY(?: BLOCK)?)-----",
    ),
    _p("github-token", "GitHub token", r"(?P<secret>gh[pousr]_[A-Za-z0-9]{36,255})\b"),
    _p("github-token", "GitHub token", r"(?P<secret>github_pat_[A-Za-z0-9_]{22,255})"),
    _p("slack-token", "Slack token", r"(?P<secret>xox[abposr]-[A-Za-z0-9-]{10,})"),
    _p(
        "slack-webhook",
        "Slack webhook URL",
        r"(?P<secret>https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+)",
        "medium",
    ),
    _p("stripe-key", "Stripe live key", r"(?P<secret>[sr]k_live_[0-9a-zA-Z]{24,})"),
    _p("google-api-key", "Google API key", r"(?P<secret>AIza[0-9A-Za-z_-]{35})", "medium"),
)

# Generic secrets, in two steps: a quoted value of 12+ characters after `=` or `:` (cheap to
# find: the pattern starts with a character set), then a secret-sounding name just before.
_ASSIGNED_VALUE = re.compile(r"[:=][ \t]*[rbuf]?[\"'](?P<secret>[^\"'\s]{12,})[\"']")
_SECRET_NAME = re.compile(
    r"(?P<name>[\w.-]*(?:api[_-]?key|secret|token|passw(?:or)?d|pwd|credential|auth)\w*)"
    r"[\"'\]]?[ \t]*$",
    re.IGNORECASE,
)
_PLACEHOLDER = re.compile(
    r"x{4}|\*{4}|example|changeme|change_me|placeholder|dummy|your[_-]|redacted|fake|"
    r"[<>{}$%]|^\w+\.\w+(\.\w+)+$",  # templates and dotted names (settings.keys.path)
    re.IGNORECASE,
)


def _entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _looks_random(value: str) -> bool:
    return (
        any(c.isdigit() for c in value)
        and any(c.isalpha() for c in value)
        and _entropy(value) >= 3.5
        and not _PLACEHOLDER.search(value)
    )


def _finding(
    path: str,
    text: str,
    start: int,
    rule: str,
    severity: Severity,
    confidence: Confidence,
    message: str,
) -> Finding:
    line_start = text.rfind("\n", 0, start) + 1
    return Finding(
        path=path,
        line=text.count("\n", 0, start) + 1,
        column=start - line_start + 1,
        rule=rule,
        severity=severity,
        confidence=confidence,
        message=message,
        tool="agentrt",
    )


def scan_secrets(path: str, text: str) -> Iterator[Finding]:
    """Hard-coded secrets in one file's text, as findings with redacted messages."""
    specific: list[tuple[int, int]] = []  # spans already reported by a specific pattern
    for pattern in SECRET_PATTERNS:
        for match in pattern.regex.finditer(text):
            start = match.start()
            if (
                pattern.word_start
                and start
                and (text[start - 1].isalnum() or text[start - 1] == "_")
            ):
                continue
            secret = match.group("secret")
            specific.append(match.span("secret"))
            if pattern.rule == "private-key":
                message = f"{secret.lower()} embedded in the file"
            else:
                message = (
                    f"{pattern.description} hard-coded: {redact(secret)}; revoke it and load it "
                    "from the environment or a secret store"
                )
            yield _finding(
                path, text, start, pattern.rule, pattern.severity, pattern.confidence, message
            )
    for match in _ASSIGNED_VALUE.finditer(text):
        secret = match.group("secret")
        start, end = match.span("secret")
        if not _looks_random(secret) or any(a < end and start < b for a, b in specific):
            continue
        line_start = text.rfind("\n", 0, match.start()) + 1
        named = _SECRET_NAME.search(text, max(line_start, match.start() - 120), match.start())
        if named is None:
            continue
        message = (
            f"secret-looking value assigned to `{named.group('name')}`: {redact(secret)} "
            f"({len(secret)} characters); move it to the environment or a secret store"
        )
        yield _finding(path, text, named.start(), "generic-secret", "medium", "medium", message)


# --------------------------------------------------------------------------------------------
# Bandit

# B105-B107 quote the string they flag: "Possible hardcoded password: 'hunter2'".
_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_QUOTES_SECRET = {"B105", "B106", "B107"}


def _bandit_message(test_id: str, text: str) -> str:
    if test_id not in _QUOTES_SECRET:
        return text
    return _QUOTED.sub(lambda m: repr(redact(m.group(1) or m.group(2) or "")), text)


def _bandit_version() -> str:
    try:
        return version("bandit")
    except PackageNotFoundError:
        return "unknown"


def _run_bandit(
    root: Path, files: list[SourceFile], skip: list[str], jobs: int
) -> dict[str, list[Any]]:
    """Bandit's JSON ``results`` and ``errors`` for ``files``, from ``jobs`` processes at once."""
    # -I: never import from the repository (see the module docstring).
    argv = [sys.executable, "-I", "-m", "bandit", "-f", "json", "-q", "--exit-zero"]
    if skip:
        argv += ["-s", ",".join(skip)]
    # Round-robin over files sorted by size balances the work of the parallel processes.
    by_size = [f.path for f in sorted(files, key=lambda f: (-f.size, f.path))]
    groups = [by_size[i::jobs] for i in range(jobs)]
    chunks = [
        sorted(g[s : s + _BANDIT_CHUNK]) for g in groups for s in range(0, len(g), _BANDIT_CHUNK)
    ]
    merged: dict[str, list[Any]] = {"results": [], "errors": []}
    for start in range(0, len(chunks), jobs):
        processes = [
            subprocess.Popen(
                [*argv, "--", *chunk],
                cwd=root,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for chunk in chunks[start : start + jobs]
        ]
        try:
            outputs = [p.communicate(timeout=_BANDIT_TIMEOUT) for p in processes]
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(
                f"bandit did not finish within {_BANDIT_TIMEOUT} s; restrict `files` or raise "
                "`jobs`"
            ) from exc
        finally:
            for process in processes:  # none is left running, whatever happened
                if process.poll() is None:
                    process.kill()
                    process.wait()
        for process, (stdout, stderr) in zip(processes, outputs, strict=True):
            if process.returncode != 0:
                tail = " ".join(stderr.strip().splitlines()[-3:])
                raise RuntimeError(f"bandit failed (exit {process.returncode}): {tail}")
            data = json.loads(stdout)
            merged["results"] += data.get("results", [])
            merged["errors"] += data.get("errors", [])
    return merged


def _relative(filename: str, root: Path) -> str:
    path = Path(filename)
    if path.is_absolute():
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            return path.as_posix()
    return path.as_posix().removeprefix("./")


def _bandit_findings(results: list[dict[str, Any]], root: Path) -> Iterator[Finding]:
    for r in results:
        test_id = str(r["test_id"])
        cwe = (r.get("issue_cwe") or {}).get("id")
        text = _bandit_message(test_id, str(r["issue_text"]))
        yield Finding(
            path=_relative(str(r["filename"]), root),
            line=int(r["line_number"]),
            column=int(r.get("col_offset", 0)) + 1,
            rule=test_id,
            severity=str(r["issue_severity"]).lower(),  # type: ignore[arg-type]
            confidence=str(r["issue_confidence"]).lower(),  # type: ignore[arg-type]
            message=f"{text} ({r['test_name']}{f', CWE-{cwe}' if cwe else ''})",
            tool="bandit",
        )


# --------------------------------------------------------------------------------------------
# Entry point


def run(inputs: Input) -> Output:
    """Run bandit once over the Python files and the secret patterns over all text files."""
    repo_files = scan_files(inputs.repo, inputs.files)
    root, text_files = repo_files.root, repo_files.files
    python = [
        f
        for f in text_files
        if f.path.endswith(".py") and (inputs.include_tests or not is_test_path(f.path))
    ]
    notes: list[str] = []

    jobs = inputs.jobs or max(1, min(2, os.cpu_count() or 1, len(python) // 200))
    with ThreadPoolExecutor(max_workers=1) as pool:
        # Bandit works in its own processes while this thread searches for secrets.
        pending = (
            pool.submit(_run_bandit, root, python, inputs.bandit_skip, min(jobs, len(python)))
            if python
            else None
        )
        secrets: list[Finding] = []
        searched: set[str] = set()
        unsearched: dict[str, str] = {}
        for source_file in text_files:
            if not inputs.scan_secrets:
                unsearched[source_file.path] = "scan_secrets is off"
                continue
            try:
                text = source_file.read_text()
            except OSError as exc:
                notes.append(f"{source_file.path}: not searched for secrets: {exc}")
                unsearched[source_file.path] = "unreadable"
                continue
            searched.add(source_file.path)
            secrets += scan_secrets(source_file.path, text)
        bandit = pending.result() if pending else {"results": [], "errors": []}
    findings = list(_bandit_findings(bandit["results"], root))
    errors = sorted(f"{_relative(e['filename'], root)}: {e['reason']}" for e in bandit["errors"])
    password_lines = {(f.path, f.line) for f in findings if f.rule in _QUOTES_SECRET}
    secrets = [
        s
        for s in secrets
        if not (s.rule == "generic-secret" and (s.path, s.line) in password_lines)
    ]
    findings = sort_findings(findings + secrets)
    counts = SeverityCounts.of(findings)
    summary = (
        f"{len(findings)} security findings ({counts.describe()}), {len(secrets)} hard-coded "
        f"secrets; bandit over {len(python)} Python files"
        f"{'' if inputs.include_tests else ' (tests excluded)'}, "
        f"secrets over {len(text_files)} files"
    )
    python_paths = {f.path for f in python}
    bandit_coverage = language_coverage(
        "bandit",
        text_files,
        python_paths,
        excluded={
            f.path: "type stub" if f.path.endswith(".pyi") else "test code"
            for f in text_files
            if f.language == "python" and f.path not in python_paths
        },
        unscanned=repo_files.unscanned,
    )
    secrets_coverage = language_coverage(
        "secrets",
        text_files,
        searched,
        excluded=unsearched,
        # Files too large to scan may hold secrets; binary files are not text to search.
        unscanned=[s for s in repo_files.unscanned if s.reason.startswith(_UNSEARCHED)],
        count_all=True,
    )
    return Output(
        summary=summary,
        files_analysed=len(python),
        text_files_scanned=len(text_files) if inputs.scan_secrets else 0,
        bandit=BanditRun(
            version=_bandit_version(),
            files=len(python),
            skipped_tests=sorted(inputs.bandit_skip),
            errors=errors,
        ),
        findings=findings,
        counts=counts,
        secrets=len(secrets),
        notes=notes,
        language_coverage=[bandit_coverage, secrets_coverage],
    )


def render_markdown(output: Output) -> str:
    """The security section of the run report."""
    c = output.counts
    parts = [
        "## Security",
        "",
        output.summary,
        "",
        md_table(
            ["Critical", "High", "Medium", "Low", "Secrets", "Python files", "Text files"],
            [
                (
                    c.critical,
                    c.high,
                    c.medium,
                    c.low,
                    output.secrets,
                    output.files_analysed,
                    output.text_files_scanned,
                )
            ],
        ),
        "",
        f"Bandit {output.bandit.version}"
        + (
            f", skipping {', '.join(output.bandit.skipped_tests)}"
            if output.bandit.skipped_tests
            else ""
        )
        + ". Secret values are redacted to their first 4 characters.",
        "",
    ]
    if output.language_coverage:
        parts += [coverage_markdown(output.language_coverage), ""]
    parts += [
        "### Findings (worst first)",
        "",
        findings_table(output.findings),
    ]
    if output.bandit.errors:
        parts += ["", "### Files bandit could not scan", ""]
        parts += [f"- {e}" for e in output.bandit.errors[:20]]
    if output.notes:
        parts += ["", "### Notes", ""] + [f"- {n}" for n in output.notes[:20]]
    return "\n".join(parts) + "\n"
