"""Prompt templates (safe formatting, nothing evaluated) and redaction of API keys."""

from __future__ import annotations

import pytest

from agentrt.agents.llm import (
    CONTEXT_SOURCE,
    PromptTemplateError,
    build_prompt,
    render_prompt,
    template_fields,
)
from agentrt.agents.redact import REDACTED, redact
from agentrt.context.untrusted import fence_untrusted
from tests.llm.conftest import PLANTED_KEY


def test_fields_render_by_name() -> None:
    text = render_prompt(
        "Review {repo} for {task}; files: {files}; opts: {opts}; none: [{missing}]",
        {
            "repo": "/r",
            "task": "the bug",
            "files": ["a.py", "b.py"],
            "opts": {"x": 1},
            "missing": None,
        },
    )
    assert text == 'Review /r for the bug; files: a.py, b.py; opts: {"x": 1}; none: []'


def test_literal_braces_survive() -> None:
    assert render_prompt("a dict: {{key: 1}} and {x}", {"x": "X"}) == "a dict: {key: 1} and X"


@pytest.mark.parametrize(
    ("template", "needle"),
    [
        ("{repo.__class__.__mro__}", "plain names"),  # attribute access: no escape hatch
        ("{files[0]}", "plain names"),
        ("{}", "plain names"),  # positional
        ("{0}", "plain names"),
        ("{repo:>99999999}", "format spec"),  # would allocate a huge string
        ("{repo!r}", "format spec or conversion"),
        ("unbalanced {repo", "malformed"),
    ],
)
def test_unsafe_or_malformed_fields_are_rejected(template: str, needle: str) -> None:
    with pytest.raises(PromptTemplateError, match=needle):
        render_prompt(template, {"repo": "/r", "files": ["a"]})


def test_unknown_field_names_what_is_available() -> None:
    with pytest.raises(PromptTemplateError) as info:
        render_prompt("look at {reop}", {"repo": "/r", "task": ""})
    message = str(info.value)
    assert "{reop}" in message and "available: repo, task" in message


def test_template_fields_in_order() -> None:
    assert template_fields("{task} then {context} and {{not}} {task}") == [
        "task",
        "context",
        "task",
    ]


def test_build_prompt_puts_what_the_template_does_not_place_in_the_user_message() -> None:
    prompt = build_prompt(
        "You review code.", {"repo": "/r", "files": ["a.py"], "task": "t"}, "fix it", "CODE"
    )
    assert prompt.instructions == "You review code."
    assert prompt.user.index("## Task\n\nfix it") < prompt.user.index("## Context\n\n")
    fenced = fence_untrusted("CODE", CONTEXT_SOURCE)
    assert prompt.user.index("## Context\n\n" + fenced) > 0  # repository code is data
    assert '"files": [\n    "a.py"\n  ]' in prompt.user and '"repo": "/r"' in prompt.user
    assert '"task"' not in prompt.user  # the task has its own section


def test_build_prompt_respects_fields_the_template_places() -> None:
    prompt = build_prompt("Task: {task}\n{context}\nRepo {repo}", {"repo": "/r"}, "t", "CODE")
    fenced = fence_untrusted("CODE", CONTEXT_SOURCE)
    assert prompt.instructions == f"Task: t\n{fenced}\nRepo /r"  # fenced where placed
    assert prompt.user == "Answer according to your instructions."


def test_redact_removes_planted_environment_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", PLANTED_KEY)
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-0123456789")
    text = f"401 for key {PLANTED_KEY} (and tok-0123456789) at https://api"
    cleaned = redact(text)
    assert PLANTED_KEY not in cleaned and "tok-0123456789" not in cleaned
    assert cleaned == f"401 for key {REDACTED} (and {REDACTED}) at https://api"


@pytest.mark.parametrize(
    "leak",
    [
        "Incorrect API key provided: sk-proj-abcdEFGH1234ijklMNOP5678",
        "Incorrect API key provided: sk-abc1***************************wxyz",
        "invalid x-api-key: sk-ant-api03-AbCdEf0123456789",
        "headers: {'Authorization': 'Bearer abcdefghijklmnop0123'}",
        'body: {"api_key": "0123456789abcdef"}',
        "GET https://host/v1/models?key=AIzaSyA0123456789abcdefghijklmnop",
        "cannot reach https://user:hunter22secret@proxy.local/v1",
    ],
)
def test_redact_removes_key_shaped_text_not_in_the_environment(leak: str) -> None:
    cleaned = redact(leak)
    assert REDACTED in cleaned
    for secret in (
        "abcdEFGH1234",
        "abc1****",
        "AbCdEf0123456789",
        "abcdefghijklmnop0123",
        "0123456789abcdef",
        "AIzaSy",
        "hunter22secret",
    ):
        assert secret not in cleaned


def test_redact_keeps_ordinary_text() -> None:
    text = "the task risk-assessment failed: HTTP 500 after 2 retries at http://127.0.0.1:8000/v1"
    assert redact(text) == text
