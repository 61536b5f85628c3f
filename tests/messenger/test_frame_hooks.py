"""``call.start`` on ``/ws/messages`` is answered by a hook another service adds to the messenger
(the flows do, at install): the messenger never imports the flows."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tau.messenger.errors import MessengerError
from tau.messenger.ws import MessagesSocket
from tests.support.harness import resolve


def _socket(hooks: dict[str, Any]) -> MessagesSocket:
    sock = MessagesSocket.__new__(MessagesSocket)
    sock.factory = SimpleNamespace(messenger=SimpleNamespace(frame_hooks=hooks))
    return sock


def test_without_the_hook_calls_are_unavailable() -> None:
    with pytest.raises(MessengerError) as info:
        resolve(_socket({}).frame_call_start({"type": "call.start", "conversation": 1}))
    assert (info.value.status, info.value.code) == (503, "calls_unavailable")


def test_the_hook_answers_the_frame() -> None:
    seen: list[tuple[Any, dict[str, Any]]] = []

    async def hook(sock: Any, frame: dict[str, Any]) -> None:
        seen.append((sock, frame))

    sock = _socket({"call.start": hook})
    resolve(sock.frame_call_start({"type": "call.start", "conversation": 1}))
    assert seen == [(sock, {"type": "call.start", "conversation": 1})]


def test_the_messenger_does_not_import_the_flows() -> None:
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "tau" / "messenger"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("tau.flows"), path
