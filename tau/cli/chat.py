"""``tau chat login|send|listen``: the end-to-end encrypted messenger from a terminal.

A thin shell over :mod:`tau.client`. ``login`` creates this terminal's device (identity and
prekeys generated here, public halves published) and keeps its secrets in a state file
(``--state``, default ``$TAU_CHAT_STATE`` or ``~/.config/tau/chat.json``, mode 0600); ``send``
and ``listen`` use it. The server never sees the text: only ciphertext per device. Files travel
the same way (``send --file``, ``listen --save DIR``): encrypted here with a fresh key, uploaded as
ciphertext, the key inside the message (:mod:`tau.client.attachments`, as the web app does).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from tau.cli.common import EXIT_OK, CliError, add_action, add_group


def default_state() -> str:
    return os.environ.get("TAU_CHAT_STATE") or str(Path.home() / ".config" / "tau" / "chat.json")


def register(subparsers: Any) -> None:
    sub = add_group(subparsers, "chat", "end-to-end encrypted chat from the terminal (tau.client)")
    p = add_action(sub, "login", "log in and register this terminal as a new device", login)
    p.add_argument("server", metavar="URL", help="tau's HTTP base URL, e.g. https://mail.example.org")
    p.add_argument("user", metavar="ADDRESS")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--device-id", type=int, metavar="N", help="re-install this device id (new keys: your "
                   "contacts see a safety-number change)")
    _common(p)
    p = add_action(sub, "send", "send a message to a user or a conversation (#ID)", send)
    p.add_argument("recipient", metavar="ADDRESS|#CONVERSATION")
    p.add_argument("text", nargs="*", help="the message (default: read from stdin)")
    p.add_argument("--plain", action="store_true", help="unencrypted conversation (bots, integrations)")
    p.add_argument("--file", metavar="PATH", help="attach this file, end-to-end encrypted (the text may be empty)")
    _common(p)
    p = add_action(sub, "listen", "print messages as they arrive (queued ones first)", listen)
    p.add_argument("--count", type=int, metavar="N", help="exit after N messages")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="exit after this long without a message")
    p.add_argument("--json", action="store_true", help="one JSON object per message")
    p.add_argument("--save", metavar="DIR", help="download, verify and decrypt attached files into DIR")
    _common(p)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state", metavar="PATH", help="device state file (default: $TAU_CHAT_STATE or "
                   "~/.config/tau/chat.json)")
    p.add_argument("--insecure", action="store_true", help="do not verify the server's TLS certificate")


def _state_path(args: argparse.Namespace) -> Path:
    return Path(args.state or default_state())


def _client(args: argparse.Namespace) -> Any:
    from tau.client import Client

    path = _state_path(args)
    if not path.exists():
        raise CliError(f"no device state at {path}: run `tau chat login URL ADDRESS` first")
    return Client.from_file(path, verify_tls=not args.insecure)


def _run(coro: Any) -> int:
    from tau.client import ApiError, Closed

    try:
        return int(asyncio.run(coro))
    except ApiError as exc:
        raise CliError(f"server said {exc.status} {exc.error}: {exc.body.get('message', '')}")
    except (Closed, OSError, TimeoutError) as exc:
        raise CliError(f"connection failed: {exc}")


def login(args: argparse.Namespace) -> int:
    from tau.client import Client

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.user}: ")
    path = _state_path(args)

    async def run() -> int:
        client = await Client.login(args.server, args.user, password, device_id=args.device_id, state_path=path,
                                    verify_tls=not args.insecure)
        print(f"logged in as {client.user}, device {client.device_id} (keys in {path})")
        return EXIT_OK

    return _run(run())


def send(args: argparse.Namespace) -> int:
    client = _client(args)
    data = None
    if args.file:
        if args.plain:
            raise CliError("--file needs an end-to-end encrypted conversation (not --plain)")
        try:
            data = Path(args.file).read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read {args.file}: {exc.strerror}")
    text = " ".join(args.text) if args.text else "" if data is not None else sys.stdin.read().rstrip("\n")
    if not text and data is None:
        raise CliError("nothing to send")
    target = {"conversation": args.recipient[1:]} if args.recipient.startswith("#") else {"to": args.recipient}

    async def run() -> int:
        if data is not None:
            conv = target.get("conversation") or (await asyncio.to_thread(
                client.rest.create_conversation, [target["to"].lower()], "", True, "direct"))["id"]
            result = await client.send_file(data, Path(args.file).name, str(conv), text)
        elif args.plain:
            result = await client.send_plain(text, **target)
        else:
            result = await client.send(text, **target)
        for notice in result.get("identity_changes", []):
            print(f"[{notice}]")
        print(f"sent #{result['id']} in conversation #{result['conversation']} at {result['timestamp']}")
        return EXIT_OK

    return _run(run())


def listen(args: argparse.Namespace) -> int:
    from tau.client import Closed

    client = _client(args)

    async def run() -> int:
        loop = asyncio.get_running_loop()
        seen, idle_until, backoff = 0, None, 1.0
        for msg in client.take_held():  # decrypted by an earlier listen that stopped at --count
            client.inbox.put_nowait(msg)
        await client.connect()
        try:
            while args.count is None or seen < args.count:
                if args.timeout is not None and idle_until is None:
                    idle_until = loop.time() + args.timeout
                if client.socket is None or client.socket.closed.is_set():  # server restarted: resume
                    await client.disconnect()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                    try:
                        await client.connect()
                    except (OSError, Closed, TimeoutError):
                        continue
                try:
                    msg = await client.next_message(timeout=1.0)
                except TimeoutError:
                    if idle_until is not None and loop.time() >= idle_until:
                        return EXIT_OK
                    continue
                if msg.notice is not None:  # a safety-number change: shown, not counted as a message
                    print(json.dumps(msg.__dict__, ensure_ascii=False) if args.json
                          else f"{msg.timestamp} #{msg.conversation} [{msg.notice}]", flush=True)
                    continue
                seen, idle_until, backoff = seen + 1, None, 1.0
                saved = await _save_attachments(client, msg, args.save) if args.save else []
                if args.json:
                    shown = {**msg.__dict__, "saved": saved} if args.save else msg.__dict__
                    print(json.dumps(shown, ensure_ascii=False), flush=True)
                else:
                    text = msg.text if msg.error is None else f"[could not decrypt: {msg.error}]"
                    print(f"{msg.timestamp} #{msg.conversation} {msg.sender}: {text}", flush=True)
                    for line in saved or _attachment_lines(msg):
                        print(f"  {line}", flush=True)
            return EXIT_OK
        finally:
            await client.disconnect()
            client.hold_unread()  # shown by the next listen, never lost

    return _run(run())


def _attachment_lines(msg: Any) -> list[str]:
    from tau.client.attachments import is_pointer, safe_name

    return [f"[file {safe_name(a.get('name'))}, {a.get('size')} bytes: listen --save DIR to get it]"
            for a in msg.attachments if is_pointer(a)]


async def _save_attachments(client: Any, msg: Any, folder: str) -> list[str]:
    """Each attached file of ``msg`` downloaded, verified, decrypted and written under ``folder``
    (a name already there gets a number); one line per file to print."""
    from tau.client import ApiError
    from tau.client.attachments import AttachmentError, is_pointer, safe_name

    out = []
    for pointer in [a for a in msg.attachments if is_pointer(a)]:
        name = safe_name(pointer.get("name"))
        try:
            data = await client.download(pointer)
        except (AttachmentError, ApiError) as exc:
            out.append(f"[file {name} not saved: {exc}]")
            continue
        target = Path(folder) / name
        stem, n = target, 1
        while target.exists():
            target = stem.with_name(f"{stem.stem} ({n}){stem.suffix}")
            n += 1
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        out.append(f"[file {name} saved to {target}]")
    return out
