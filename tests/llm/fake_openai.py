"""A scripted OpenAI-compatible Chat Completions server on 127.0.0.1, for end-to-end tests.

It speaks the wire format the real ``openai`` SDK (and so pydantic-ai's ``OpenAIChatModel``)
reads: ``POST /v1/chat/completions`` answered with a ``chat.completion`` object. Replies are
scripted per request: :func:`tool_call` answers through the output tool the request offers
(pydantic-ai's default structured-output mode) or, when the request asks for a JSON-schema
``response_format`` instead, as JSON message content; :func:`error` answers with an HTTP
error. Every request is recorded (headers and JSON body) so tests can look at what was sent.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Usage the server reports per successful completion.
PROMPT_TOKENS = 1_000
COMPLETION_TOKENS = 50


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    def tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self.body.get("tools", [])]

    def text(self) -> str:
        """Every message's text content, joined (what the model was shown)."""
        parts = []
        for message in self.body.get("messages", []):
            content = message.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts += [c.get("text", "") for c in content if isinstance(c, dict)]
        return "\n".join(parts)


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


Script = Callable[[Recorded], Reply]


def tool_call(arguments: dict[str, Any] | str) -> Script:
    """A completion answering with ``arguments`` (a dict, or raw text such as broken JSON)."""
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)

    def reply(request: Recorded) -> Reply:
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        finish = "tool_calls"
        names = request.tool_names()
        if names:
            message["tool_calls"] = [
                {
                    "id": f"call_{len(raw)}",
                    "type": "function",
                    "function": {"name": names[0], "arguments": raw},
                }
            ]
        else:  # native (response_format) or prompted output: the JSON is the content
            message["content"], finish = raw, "stop"
        return Reply(
            200,
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": request.body.get("model", "fake"),
                "choices": [
                    {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
                ],
                "usage": {
                    "prompt_tokens": PROMPT_TOKENS,
                    "completion_tokens": COMPLETION_TOKENS,
                    "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
                },
            },
        )

    return reply


def error(status: int, message: str = "", headers: dict[str, str] | None = None) -> Script:
    """An OpenAI-style error response (``{"error": {...}}``)."""

    def reply(request: Recorded) -> Reply:
        body = {"error": {"message": message or f"error {status}", "type": "server_error"}}
        return Reply(status, body, dict(headers or {}))

    return reply


def echo_key_error(status: int = 500) -> Script:
    """An error that echoes the caller's Authorization header, as careless proxies do."""

    def reply(request: Recorded) -> Reply:
        auth = request.headers.get("authorization", "")
        return Reply(
            status,
            {"error": {"message": f"upstream failed for {auth}", "type": "server_error"}},
        )

    return reply


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a timeout test) closes the socket mid-reply: not an error.
        pass


class FakeOpenAI:
    """The server. Scripts are used in order; the last one repeats once the others are used."""

    def __init__(self, *scripts: Script) -> None:
        self.scripts: deque[Script] = deque(scripts)
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            script = self.scripts.popleft() if len(self.scripts) > 1 else self.scripts[0]
        return script(request)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                request = Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                if self.path != "/v1/chat/completions":
                    reply = Reply(404, {"error": {"message": f"no route {self.path}"}})
                else:
                    reply = fake._next(request)
                data = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        return Handler
