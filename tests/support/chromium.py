"""Headless Chromium (Debian's ``chromium``) for browser tests, driven over the DevTools protocol.

``launch`` starts a browser with its own profile and yields the DevTools WebSocket (url, path);
``DevTools`` speaks just enough of the protocol: commands with ids, flattened page sessions,
``Runtime.evaluate``. Tests that use it skip cleanly when ``CHROMIUM`` is None.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tau.client.ws import Socket

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@contextmanager
def launch(flags: list[str], profile: Path) -> Iterator[tuple[str, str]]:
    """Chromium with ``flags`` (which include ``--remote-debugging-port=0``) on a fresh profile."""
    assert CHROMIUM is not None
    proc = subprocess.Popen([CHROMIUM, *flags, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("chromium did not start its DevTools endpoint")
        time.sleep(0.1)
    port, path = port_file.read_text().splitlines()[:2]
    try:
        yield f"http://127.0.0.1:{port}", path
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


class DevTools:
    """Commands with ids over one DevTools socket; ``strict`` turns a page exception into a failure."""

    def __init__(self, sock: Socket, strict: bool = False) -> None:
        self.sock, self.strict, self._ids = sock, strict, itertools.count(1)

    async def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.sock.send(message)
        while True:
            frame = await self.sock.recv(30)
            if frame.get("id") == ident:
                if "error" in frame:
                    raise RuntimeError(f"{method}: {frame['error']}")
                return frame["result"]

    async def open(self, url: str) -> str:
        target = (await self.call("Target.createTarget", {"url": url}))["targetId"]
        return (await self.call("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]

    async def evaluate(self, session: str, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                      "returnByValue": True}, session)
        if self.strict and "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def until(self, session: str, expression: str, timeout: float = 20) -> Any:
        """Poll ``expression`` until it is truthy (a navigating page's errors count as not yet)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = await self.evaluate(session, expression)
            except (RuntimeError, AssertionError):  # the page is navigating
                value = None
            if value:
                return value
            await asyncio.sleep(0.2)
        state = await self.evaluate(session, "document.body ? document.body.innerText.slice(0, 2000) : ''")
        raise AssertionError(f"timed out waiting for {expression}; page says: {state}")
