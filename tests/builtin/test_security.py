"""security_validation: real bandit findings and planted secrets, always redacted."""

from __future__ import annotations

import json

from agentrt.agents.builtin.security import Input, redact, render_markdown, run, scan_secrets

from .conftest import RepoFactory

# Built from parts so that this test file itself holds no complete secret.
AWS_KEY = "AKIA" + "Z7QH2X4M6P8R3T5V"
GITHUB_TOKEN = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"
PASSWORD = "hunter2-" + "Sup3rS3cret"

REPO = {
    "service.py": f"""
        import subprocess

        import yaml


        def deploy(cmd):
            subprocess.call(cmd, shell=True)


        def load(text):
            return yaml.load(text)


        password = "{PASSWORD}"
    """,
    "config/settings.txt": f"aws_access_key_id = {AWS_KEY}\n",
    "deploy/ci.yml": f"env:\n  API_TOKEN: '{GITHUB_TOKEN}'\n",
    "keys/id_rsa": "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\n",
    "app_settings.py": """
        STRIPE_API_KEY = "q8Zr3kT1vX9pL2mN7bW4"
        ANALYTICS_TOKEN = "your-token-goes-here-please"
        tokenizer_name = "bert-base-uncased-whole"
    """,
    "tests/test_service.py": "import subprocess\nsubprocess.call('ls', shell=True)\n",
}


def test_bandit_findings_keep_bandit_severity_and_confidence(make_repo: RepoFactory) -> None:
    out = run(Input(repo=str(make_repo(REPO))))
    bandit = {f.rule: f for f in out.findings if f.tool == "bandit"}
    shell = bandit["B602"]
    assert (shell.path, shell.line, shell.severity, shell.confidence) == (
        "service.py",
        7,
        "high",
        "high",
    )
    assert "shell=True" in shell.message and "CWE-78" in shell.message
    assert (bandit["B506"].line, bandit["B506"].severity) == (11, "medium")
    # Test code is left to the secret scan unless asked for.
    assert not any(f.path.startswith("tests/") for f in out.findings)
    assert out.bandit.skipped_tests == ["B101"] and out.files_analysed == 2


def test_hardcoded_password_message_is_redacted(make_repo: RepoFactory) -> None:
    out = run(Input(repo=str(make_repo(REPO))))
    [password] = [f for f in out.findings if f.rule == "B105" and f.path == "service.py"]
    assert password.line == 14
    assert PASSWORD not in password.message and "'hunt…'" in password.message
    # The generic pattern matched the same line: reported once, by bandit.
    assert not any(f.rule == "generic-secret" and f.path == "service.py" for f in out.findings)


def test_planted_secrets_found_and_redacted(make_repo: RepoFactory) -> None:
    out = run(Input(repo=str(make_repo(REPO))))
    secrets = {(f.rule, f.path): f for f in out.findings if f.tool == "agentrt"}
    aws = secrets[("aws-access-key-id", "config/settings.txt")]
    assert (aws.line, aws.column, aws.severity, aws.confidence) == (1, 21, "high", "high")
    assert "AKIA…" in aws.message
    github = secrets[("github-token", "deploy/ci.yml")]
    assert "ghp_…" in github.message
    assert ("private-key", "keys/id_rsa") in secrets
    generic = secrets[("generic-secret", "app_settings.py")]
    assert (
        generic.line == 1 and "`STRIPE_API_KEY`" in generic.message and "q8Zr…" in generic.message
    )
    # Placeholders and low-entropy values are not secrets (bandit still flags line 2's name).
    assert [
        f.line for f in out.findings if f.path == "app_settings.py" and f.tool == "agentrt"
    ] == [1]
    assert out.secrets == 4
    dumped = json.dumps(out.model_dump(mode="json")) + render_markdown(out)
    for secret in (AWS_KEY, GITHUB_TOKEN, PASSWORD, "q8Zr3kT1vX9pL2mN7bW4"):
        assert secret not in dumped


def test_tests_included_on_request(make_repo: RepoFactory) -> None:
    out = run(Input(repo=str(make_repo(REPO)), include_tests=True, scan_secrets=False))
    assert ("tests/test_service.py", "B602") in {(f.path, f.rule) for f in out.findings}
    assert out.secrets == 0 and out.text_files_scanned == 0


def test_scan_secrets_patterns() -> None:
    text = (
        "x = 1\n"
        f"token = 'xoxb-{'1234567890'}-abcdefghij'\n"
        f"slack = 'https://hooks.slack.com/services/T000/B000/{'XXXXabcd1234'}'\n"
        f"notakey = 'XAKIA{'Z7QH2X4M6P8R3T5V'}'\n"
    )
    found = {(f.rule, f.line) for f in scan_secrets("f.py", text)}
    assert found == {("slack-token", 2), ("slack-webhook", 3)}
    assert redact("abcdefgh") == "abcd…"
