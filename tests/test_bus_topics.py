"""Every bus topic is named by a constant of ``tau.bus.events``: no literal topic in ``publish(…)``,
``subscribe(…)`` (or ``subscribe_local``), and no topic spelled as a string anywhere else in tau/.

A literal topic is how the list went stale once; with this check, the list is the bus's traffic.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tau.bus import events

ROOT = Path(__file__).resolve().parent.parent / "tau"
EVENTS = ROOT / "bus" / "events.py"
CALLS = {"publish", "subscribe", "subscribe_local"}


def _callee(func: ast.expr) -> str | None:
    """The called name, seeing through ``getattr(bus, "subscribe_local", bus.subscribe)``."""
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Call) and any(isinstance(a, ast.Attribute) and a.attr in CALLS for a in func.args):
        return "subscribe"
    return None


def _literal_topics(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value in events.ALL:
            found.append((node.lineno, repr(node.value)))
        if not isinstance(node, ast.Call):
            continue
        name, args = _callee(node.func), node.args
        if name not in CALLS:      # txn.call_after(bus.publish, TOPIC, …): the topic follows the callable
            i = next((i for i, a in enumerate(args) if isinstance(a, ast.Attribute) and a.attr in CALLS), None)
            args = args[i + 1:] if i is not None else []
        if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str) and "." in args[0].value:
            found.append((node.lineno, f"{name}({args[0].value!r})"))
    return found


def test_no_literal_topics_in_tau() -> None:
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        if path == EVENTS:
            continue
        for line, what in _literal_topics(ast.parse(path.read_text(), str(path))):
            bad.append(f"{path.relative_to(ROOT.parent)}:{line}: {what}")
    assert not bad, "use the constants of tau.bus.events:\n" + "\n".join(bad)


def test_the_check_sees_literals() -> None:
    code = ('bus.publish("x.y", {})\ntxn.call_after(self.bus.publish, "a.b", {})\n'
            'getattr(bus, "subscribe_local", bus.subscribe)("mailbox.changed", f)\nTOPICS = ("signal.frame",)\n')
    assert len(_literal_topics(ast.parse(code))) == 5


def test_topics_are_unique_and_named_once() -> None:
    assert len(set(events.ALL)) == len(events.ALL)
    names = [n for n in dir(events) if n.isupper() and n != "ALL"]
    assert sorted(getattr(events, n) for n in names) == sorted(events.ALL)
