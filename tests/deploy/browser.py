"""Headless Chromium driven over the DevTools protocol, as a user would use the Prefect UI.

Only the standard library and ``websockets`` (a Prefect dependency) are used: Chromium is
started with ``--remote-debugging-port=0``, writes the port it chose to
``DevToolsActivePort`` in its profile folder, and we talk to its page target over a
websocket: navigate, evaluate JavaScript (read the page, click a tab), take a screenshot.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

__all__ = ["Chromium", "ChromiumError", "find_chromium"]

# The flags Debian's Chromium needs on a machine with no network, no display and root.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


class ChromiumError(RuntimeError):
    """Chromium could not be started or did not answer; the message says why."""


def find_chromium() -> str | None:
    """The Chromium binary: ``$CHROMIUM``, else /usr/bin/chromium, else one on PATH."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """One headless Chromium with one page. Use as a context manager."""

    def __init__(
        self, binary: str, profile: Path, *, width: int = 1400, height: int = 1000
    ) -> None:
        self.binary = binary
        self.profile = profile
        self.size = (width, height)
        self.log = profile.parent / f"{profile.name}-chromium.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._ws: ClientConnection | None = None
        self._ids = itertools.count(1)

    def __enter__(self) -> Chromium:
        self.profile.mkdir(parents=True, exist_ok=True)
        (self.profile / "DevToolsActivePort").unlink(missing_ok=True)  # from an earlier run
        width, height = self.size
        with self.log.open("wb") as log:
            try:
                self._proc = subprocess.Popen(
                    [
                        self.binary,
                        *FLAGS,
                        f"--user-data-dir={self.profile}",
                        f"--window-size={width},{height}",
                        "about:blank",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            except OSError as exc:
                raise ChromiumError(f"cannot start {self.binary}: {exc}") from exc
        try:
            self._ws = connect(self._page_socket(), max_size=None, open_timeout=30)
            self.call("Page.enable")
            self.call("Runtime.enable")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self._proc = None

    def _tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def _page_socket(self, timeout: float = 60) -> str:
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise ChromiumError(
                    f"{self.binary} exited with {self._proc.returncode} before opening its "
                    f"DevTools port; its output:\n{self._tail()}"
                )
            if port_file.is_file() and (lines := port_file.read_text().split()):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{lines[0]}/json/list") as r:
                        targets = json.load(r)
                except OSError:  # the port is written just before it accepts connections
                    targets = []
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.2)
        raise ChromiumError(
            f"{self.binary} opened no DevTools page in {timeout:g} s:\n{self._tail()}"
        )

    def call(self, method: str, timeout: float = 60, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result (events are skipped)."""
        assert self._ws is not None, "use Chromium as a context manager"
        call_id = next(self._ids)
        self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChromiumError(f"no answer to {method} within {timeout:g} s")
            message = json.loads(self._ws.recv(timeout=left))
            if message.get("id") != call_id:
                continue
            if "error" in message:
                raise ChromiumError(f"{method} failed: {message['error']}")
            return message.get("result", {})

    def goto(self, url: str) -> None:
        width, height = self.size
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        result = self.call("Page.navigate", url=url)
        if result.get("errorText"):
            raise ChromiumError(f"cannot open {url}: {result['errorText']}")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise ChromiumError(f"JavaScript failed: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 60, what: str = "") -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except ChromiumError:  # e.g. no document.body yet while the page loads
                value = None
            if value:
                return value
            time.sleep(0.25)
        text = self.evaluate("document.body ? document.body.innerText.slice(0, 1500) : ''")
        raise ChromiumError(
            f"timed out after {timeout:g} s waiting for {what or expression}; the page says:\n"
            f"{text}"
        )

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
