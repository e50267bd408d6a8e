"""Helpers of the bench tests: git in isolation from the user's configuration."""

from __future__ import annotations

import os
import subprocess

import pytest


def isolate_git(monkeypatch: pytest.MonkeyPatch) -> None:
    """No system or user git configuration, and a fixed author for commits."""
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "t")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "t@example.com")


def git(*args: str) -> str:
    """Run git; its output, stripped."""
    done = subprocess.run(["git", *args], check=True, capture_output=True)
    return done.stdout.decode().strip()
