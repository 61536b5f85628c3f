"""THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §2.2), over rows already read.

Input rows are ``ThreadRow``s in UID order (the message sequence order, which breaks every tie);
the threads are ``flatten``ed into a list of UIDs and parenthesis markers, which ``render`` turns
into the RFC 5256 ``thread-list`` text, e.g. ``(1 2 (3)(4))(5)``, mapping each UID through
``number`` (the IMAP layer passes UID → sequence number for THREAD, identity for UID THREAD).
Pure Python: no I/O, no recursion on the client's data (a hostile References chain cannot exhaust the stack).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import NamedTuple


class ThreadRow(NamedTuple):
    """Ids and subjects are only compared for equality: the store passes their keyed hashes
    (``threadkeys``), 0 for none."""

    uid: int
    date: int           # sent date (internal date when the Date: header is missing)
    subject: int        # base subject (RFC 5256 §2.1)
    reply: bool         # base-subject extraction removed a Re:/Fwd: marker
    message_id: int
    refs: tuple[int, ...]


class Node:
    __slots__ = ("children", "parent", "row")

    def __init__(self, row: ThreadRow | None = None) -> None:
        self.row = row
        self.parent: Node | None = None
        self.children: list[Node] = []

    def first(self) -> ThreadRow | None:
        """The message that stands for this node in sorting and grouping (a dummy's first child)."""
        node: Node | None = self
        while node is not None and node.row is None:
            node = node.children[0] if node.children else None
        return node.row if node is not None else None

    def adopt(self, child: Node) -> None:
        if child.parent is not None:
            child.parent.children.remove(child)
        child.parent = self
        self.children.append(child)

    def is_ancestor_of(self, other: Node) -> bool:
        node: Node | None = other
        while node is not None:
            if node is self:
                return True
            node = node.parent
        return False


def _date_key(node: Node) -> tuple[int, int]:
    row = node.row
    if row is None:
        row = node.first()
        if row is None:
            return (0, 0)
    return (row.date, row.uid)


def _link(table: dict[Hashable, Node], rows: Sequence[ThreadRow]) -> list[Node]:
    """Step 1: containers for every Message-ID and reference, linked parent → child."""
    get = table.get
    for row in rows:
        mid: Hashable = row.message_id
        node = get(mid) if mid else None
        if node is None or node.row is not None:
            if node is not None or not mid:
                mid = (row.uid,)  # missing or duplicate Message-ID: a unique one (no id is a tuple)
            node = table[mid] = Node()
        node.row = row
        parent: Node | None = None  # the previous reference: each is the parent of the next
        for ref in row.refs:
            child = get(ref)
            if child is None:
                child = table[ref] = Node()
                if parent is not None:  # a new container has no parent and cannot be an ancestor
                    parent.adopt(child)
            elif (parent is not None and child.parent is None and parent is not child
                  and not child.is_ancestor_of(parent)):
                parent.adopt(child)
            parent = child
        if node.parent is not None:
            node.parent.children.remove(node)
            node.parent = None
        if parent is not None and parent is not node and not node.is_ancestor_of(parent):
            parent.adopt(node)
    return [n for n in table.values() if n.parent is None]


def _prune(roots: list[Node]) -> list[Node]:
    """Step 3: dummies without children go; dummies with children give them to their parent
    (at the top level only when there is a single child)."""
    out: list[Node] = []
    stack: list[tuple[Node | None, list[Node]]] = [(None, roots)]
    while stack:
        parent, kids = stack.pop()
        kept: list[Node] = []
        queue = list(reversed(kids))
        while queue:
            node = queue.pop()
            if node.row is None and (not node.children or parent is not None or len(node.children) == 1):
                for child in node.children:
                    child.parent = parent
                queue.extend(reversed(node.children))
                continue
            kept.append(node)
            stack.append((node, node.children))
        if parent is None:
            out = kept
        else:
            parent.children = kept
    return out


def _group(roots: list[Node]) -> list[Node]:
    """Step 5: top-level threads with the same base subject are gathered."""
    table: dict[int, Node] = {}
    for node in roots:
        row = node.first()
        if row is None or not row.subject:
            continue
        old = table.get(row.subject)
        old_row = old.row if old is not None else None
        if (old is None or (old.row is not None and node.row is None)
                or (old_row is not None and old_row.reply and node.row is not None and not row.reply)):
            table[row.subject] = node
    out: list[Node] = []
    for node in roots:
        row = node.first()
        holder = table.get(row.subject) if row is not None and row.subject else None
        if holder is None or holder is node:
            out.append(node)
        elif holder.row is None and node.row is None:
            for child in list(node.children):
                holder.adopt(child)
        elif holder.row is None or node.row is not None and row is not None and row.reply and not holder.row.reply:
            holder.adopt(node)
        else:
            dummy = Node()
            out.append(dummy)
            dummy.adopt(holder)
            dummy.adopt(node)
            table[holder.row.subject] = dummy
    return [n for n in out if n.parent is None and (n.row is not None or n.children)]


def _sort_all(roots: list[Node]) -> None:
    """Step 6: every set of siblings by sent date, the deepest first (a dummy sorts as its first child)."""
    order: list[Node] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.children)
    for node in reversed(order):
        if len(node.children) > 1:
            node.children.sort(key=_date_key)
    roots.sort(key=_date_key)


def references(rows: Sequence[ThreadRow]) -> list[Node]:
    """THREAD=REFERENCES: the threads' root nodes in order."""
    roots = _prune(_link({}, rows))
    for root in roots:  # step 4 sorts a dummy's children so that its first child stands for it
        if root.row is None:
            root.children.sort(key=_date_key)
    roots.sort(key=_date_key)
    roots = _group(roots)
    _sort_all(roots)
    return roots


def ordered_subject(rows: Sequence[ThreadRow]) -> list[Node]:
    """THREAD=ORDEREDSUBJECT: by base subject, then sent date; each subject's first message is the
    parent of the others; threads in the order of their first messages' dates."""
    roots: list[Node] = []
    current: Node | None = None
    for row in sorted(rows, key=lambda r: (r.subject, r.date, r.uid)):
        if current is not None and current.row is not None and current.row.subject == row.subject:
            current.adopt(Node(row))
            continue
        current = Node(row)
        roots.append(current)
    roots.sort(key=_date_key)
    return roots


OPEN, CLOSE = -1, -2


def flatten(roots: Iterable[Node]) -> list[int]:
    """The threads as one flat list: UIDs, OPEN and CLOSE for each parenthesised group (a chain of
    only children shares one group). No objects to keep: cheap to cache, nothing for the GC."""
    out: list[int] = []
    stack: list[Node | None] = []  # None closes a parenthesis
    for root in reversed(list(roots)):
        stack += [None, root]
    while stack:
        node = stack.pop()
        if node is None:
            out.append(CLOSE)
            continue
        out.append(OPEN)
        while True:
            if node.row is not None:
                out.append(node.row.uid)
            if len(node.children) != 1:
                break
            node = node.children[0]
        for child in reversed(node.children):
            stack += [None, child]
    return out


def render(flat: Sequence[int], number: Callable[[int], int]) -> str:
    """RFC 5256 ``thread-list``s from ``flatten``'s list; ``number`` maps a UID to what is sent
    (itself, or its sequence number)."""
    out: list[str] = []
    after_number = False
    for item in flat:
        if item == OPEN:
            out.append(" (" if after_number else "(")
            after_number = False
        elif item == CLOSE:
            out.append(")")
            after_number = False
        else:
            out.append(f" {number(item)}" if after_number else str(number(item)))
            after_number = True
    return "".join(out)
