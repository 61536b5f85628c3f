"""tau's packages stand on floors: a module imports its own package and lower floors, never upward.

The floors (bottom to top) follow ARCHITECTURE.md: the network floor, shared infrastructure, auth,
the HTTP server framework, the protocol-only DAV core, the domains, the flows that compose them,
the Python client, and the edges that assemble and administer everything. Packages on one floor
may import each other, except on the domain floor, where each domain stands alone and a crossing
must be named in ``ALLOWED`` (or, while someone removes it, in ``TODO_REMOVE``).

What counts: every ``import`` and ``from ... import`` in ``tau/``, at module level or inside a
function (a lazy import still runs, it only hides the dependency), except under
``if TYPE_CHECKING:`` (annotations only: a domain may name ``tau.registry.Registry``). The same
edges must not form a cycle between tau's modules: a cycle through a function-level import is
still a cycle, it only moves the failure from import time to call time.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FLOORS: list[tuple[str, set[str]]] = [
    ("net", {"net"}),                                    # endpoints, TLS, slow-sender deadlines
    ("infrastructure", {"config", "config_sections", "keys", "logs", "metrics", "clock", "storage", "blobs", "bus",
                        "atrest"}),
    ("auth", {"auth", "privacy"}),                       # privacy: the export/purge hook contract
    ("http", {"http"}),                                  # Site, router, errors, auth wrapper, WebSocket layer
    ("dav", {"dav"}),                                    # protocol-only WebDAV core (RFC 4918)
    ("domains", {"mail", "calendar", "contacts", "files", "messenger", "connect", "clientsetup"}),
    ("flows", {"flows"}),                                # composes domains: that is its job
    ("client", {"client"}),                              # the Python client library; the server never imports it
    ("edges", {"admin", "ops", "cli", "app", "registry", "plugins", "web"}),
]
#: floors whose packages may not import each other (each needs an entry below)
INDEPENDENT = {"domains"}

#: crossings between independent packages that are part of the design
ALLOWED: dict[tuple[str, str], str] = {
    ("calendar", "mail"): "iMIP (RFC 6047) reads a scheduling message's author as submission did: tau.mail.senders",
}
#: crossings being removed (issue 14); the integrator empties this list
TODO_REMOVE: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Edge:
    source: str   # importing module, e.g. "tau.dav.get"
    target: str   # imported module (a submodule when one is named, else the package)
    line: int


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module under ``root/package`` by dotted name (a package by its ``__init__``)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements anywhere in ``tree`` except the body of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _type_checking(node):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))


def _resolve(name: str, modules: Iterable[str]) -> str:
    """The closest existing module: ``tau.a.b.Name`` → ``tau.a.b``."""
    known = set(modules)
    while name not in known and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def import_edges(root: Path, package: str) -> list[Edge]:
    """Runtime imports between the modules of ``package`` (relative imports resolved)."""
    modules = module_names(root, package)
    edges = []
    for source, path in modules.items():
        base = source.split(".") if path.name == "__init__.py" else source.split(".")[:-1]
        for node in _runtime_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                prefix = ".".join(base[:len(base) - node.level + 1]) if node.level else ""
                mod = ".".join(p for p in (prefix, node.module or "") if p)
                targets = [f"{mod}.{alias.name}" for alias in node.names]
            for target in targets:
                if target.split(".")[0] == package:
                    resolved = _resolve(target, modules)
                    if resolved != source:
                        edges.append(Edge(source, resolved, node.lineno))
    return edges


def floor_package(module: str) -> str:
    """``tau.mail.smtp.server`` → ``mail``; ``tau.config`` → ``config``; ``tau`` → ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_violations(edges: list[Edge], floors: list[tuple[str, set[str]]], independent: set[str],
                     allowed: dict[tuple[str, str], str]) -> list[str]:
    """Upward imports, sideways imports between independent packages, and unplaced packages."""
    level = {pkg: (i, name) for i, (name, pkgs) in enumerate(floors) for pkg in pkgs}
    problems = []
    for edge in edges:
        src, dst = floor_package(edge.source), floor_package(edge.target)
        if src == dst or not dst or (src, dst) in allowed:
            continue
        for pkg in (src, dst):
            if pkg not in level:
                problems.append(f"{edge.source}:{edge.line}: package {pkg!r} is on no floor (add it to FLOORS)")
        if src not in level or dst not in level:
            continue
        (src_level, floor), (dst_level, _) = level[src], level[dst]
        if src_level < dst_level:
            problems.append(f"{edge.source}:{edge.line}: imports {edge.target}, a higher floor")
        elif src_level == dst_level and floor in independent:
            problems.append(f"{edge.source}:{edge.line}: imports {edge.target}, another {floor} package")
    return sorted(set(problems))


def import_cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        found.append(sorted(group))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted(found)


# -- tau itself ---------------------------------------------------------------------------------

@functools.cache
def _tau_edges() -> tuple[Edge, ...]:
    return tuple(import_edges(ROOT, "tau"))


def test_every_import_goes_down_a_floor() -> None:
    problems = layer_violations(list(_tau_edges()), FLOORS, INDEPENDENT, {**ALLOWED, **TODO_REMOVE})
    assert not problems, "imports against the floors (tests/test_layering_imports.py):\n" + "\n".join(problems)


def test_no_import_cycles() -> None:
    cycles = import_cycles(list(_tau_edges()))
    assert not cycles, "import cycles (move what both sides need to a module both import):\n" + "\n".join(
        " <-> ".join(group) for group in cycles)


def test_exceptions_are_still_needed() -> None:
    """An entry nobody uses any more is deleted, so the lists only shrink."""
    used = {(floor_package(e.source), floor_package(e.target)) for e in _tau_edges()}
    stale = sorted((set(ALLOWED) | set(TODO_REMOVE)) - used)
    assert not stale, f"remove these crossings from the lists, nothing imports that way now: {stale}"


def test_the_product_ships_no_test_harness() -> None:
    assert not [e for e in _tau_edges() if e.target.startswith(("tau.testing", "tests"))]
    assert not (ROOT / "tau" / "testing").exists()
    assert not list((ROOT / "tau").rglob("*testing.py"))


# -- the checker on a synthetic package ------------------------------------------------------------

def _package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checker_on_a_synthetic_package(tmp_path: Path) -> None:
    _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/low/__init__.py": "",
        "pkg/low/base.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.top import app\n",
        "pkg/a/__init__.py": "",
        "pkg/a/one.py": "from pkg.low import base\nfrom . import two\n\ndef later():\n    from pkg.b import x\n",
        "pkg/a/two.py": "def f():\n    from .one import later\n",
        "pkg/b/__init__.py": "",
        "pkg/b/x.py": "import pkg.top.app\n",
        "pkg/top/__init__.py": "",
        "pkg/top/app.py": "from pkg.a.one import later\n",
        "pkg/extra/thing.py": "from pkg.low.base import TYPE_CHECKING\n",
    })
    edges = import_edges(tmp_path, "pkg")
    assert Edge("pkg.a.one", "pkg.a.two", 2) in edges                 # relative import resolved
    assert Edge("pkg.a.two", "pkg.a.one", 2) in edges                 # function-level import counted
    assert not [e for e in edges if e.source == "pkg.low.base"]       # TYPE_CHECKING ignored
    floors = [("low", {"low"}), ("domains", {"a", "b"}), ("top", {"top"})]
    problems = layer_violations(edges, floors, {"domains"}, {})
    assert problems == [
        "pkg.a.one:5: imports pkg.b.x, another domains package",
        "pkg.b.x:1: imports pkg.top.app, a higher floor",
        "pkg.extra.thing:1: package 'extra' is on no floor (add it to FLOORS)",
    ]
    assert layer_violations(edges, floors + [("new", {"extra"})], set(), {("b", "top"): "why"}) == []
    assert import_cycles(edges) == [["pkg.a.one", "pkg.a.two", "pkg.b.x", "pkg.top.app"]]
