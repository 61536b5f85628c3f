"""``tau queue list|show|retry|delete|hold|release``: the outbound queue, like Postfix's ``mailq``,
``postcat -q``, ``postqueue -f`` / ``postqueue -i`` and ``postsuper -d|-h|-H``.

The daemon need not be stopped: a row being delivered right now (``sending``) cannot be held or
deleted (exit 1, try again shortly); a retried or released row is due at once and the delivery
worker takes it on its next poll.
"""

from __future__ import annotations

import argparse
from typing import Any

from tau.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    add_action,
    add_group,
    format_time,
    load,
    print_listing,
    run_store,
)
from tau.mail.store import queue
from tau.mail.store.api import MailStoreError


def register(subparsers: Any) -> None:
    sub = add_group(subparsers, "queue", "list, show, retry, hold, release and delete outbound mail")
    p = add_action(sub, "list", "the outbound queue, like mailq (held, failed and sent rows too)", list_, json=True)
    p.add_argument("--state", choices=queue.STATES, help="only rows in this state")
    p.add_argument("--limit", type=int, default=1000, help="at most this many rows (default %(default)s)")
    add_action(sub, "show", "one queued message: envelope, state per recipient, last error", show, ("id",))
    p = add_action(sub, "retry", "make a message (or, with --all, every queued one) due now", retry, ("id?",))
    p.add_argument("--all", action="store_true", help="every queued message that is not held")
    add_action(sub, "delete", "remove a message from the queue (it is not delivered)", delete, ("id",))
    add_action(sub, "hold", "keep a queued message from delivery until released", hold, ("id",))
    add_action(sub, "release", "let a held message be delivered again, now", release, ("id",))


def _id(text: str) -> int:
    if not text.isdigit():
        raise CliError(f"not a queue id: {text!r}", EXIT_FAILED)
    return int(text)


def _store(args: argparse.Namespace, name: str, fn: Any, *fn_args: Any, readonly: bool = False) -> Any:
    try:
        return run_store(load(args), name, fn, *fn_args, readonly=readonly)
    except MailStoreError as exc:  # QueueBusy, unknown state
        raise CliError(str(exc), EXIT_FAILED)


def _recipients(row: queue.QueuedMessage) -> str:
    return ", ".join(row.rcpt_to)


def list_(args: argparse.Namespace) -> int:
    rows = _store(args, "cli_queue_list", queue.list_queue, args.state, max(1, args.limit), readonly=True)
    return print_listing(args, rows, "Mail queue is empty", ["ID", "STATE", "SIZE", "ARRIVED", "FROM", "TO"],
                         lambda r: [str(r.id), r.state, str(r.size), format_time(r.created_at),
                                    r.mail_from or "<>", _recipients(r)], lambda r: r.to_json())


def show(args: argparse.Namespace) -> int:
    row = _store(args, "cli_queue_show", queue.get, _id(args.id), readonly=True)
    if row is None:
        raise CliError(f"no queued message {args.id}", EXIT_FAILED)
    lines = [("id", str(row.id)), ("state", row.state), ("from", row.mail_from or "<>"),
             ("to", _recipients(row)), ("user", row.user or "(the server)"), ("size", str(row.size)),
             ("message-id", row.message_id or ""), ("arrived", format_time(row.created_at)),
             ("attempts", str(row.attempts)), ("next attempt", format_time(row.next_attempt_at)),
             ("last error", row.last_error or "")]
    for rcpt, state in row.rcpt_state.items():
        lines.append((f"rcpt {rcpt}", " ".join(str(part) for part in state[:3] if part not in (None, ""))))
    width = max(len(label) for label, _ in lines)
    for label, text in lines:
        print(f"{label.ljust(width)}  {text}")
    return EXIT_OK


def retry(args: argparse.Namespace) -> int:
    if args.all:
        count = _store(args, "cli_queue_retry_all", queue.retry_all)
        print(f"{count} message{'s' if count != 1 else ''} due now")
        return EXIT_OK
    if not args.id:
        raise CliError("name a queue id, or --all", EXIT_FAILED)
    if not _store(args, "cli_queue_retry", queue.retry, _id(args.id)):
        raise CliError(f"no queued, held or failed message {args.id}", EXIT_FAILED)
    print(f"message {args.id} is due now")
    return EXIT_OK


def delete(args: argparse.Namespace) -> int:
    if _store(args, "cli_queue_delete", queue.delete, _id(args.id)) is None:
        raise CliError(f"no queued message {args.id}", EXIT_FAILED)
    print(f"deleted message {args.id} from the queue")
    return EXIT_OK


def hold(args: argparse.Namespace) -> int:
    if not _store(args, "cli_queue_hold", queue.hold, _id(args.id)):
        raise CliError(f"no queued message {args.id} to hold", EXIT_FAILED)
    print(f"message {args.id} is held")
    return EXIT_OK


def release(args: argparse.Namespace) -> int:
    if not _store(args, "cli_queue_release", queue.unhold, _id(args.id)):
        raise CliError(f"no held message {args.id}", EXIT_FAILED)
    print(f"message {args.id} is released and due now")
    return EXIT_OK
