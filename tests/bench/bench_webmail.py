"""By-hand webmail benchmark (not part of the test suite; issue 19 item 2).

Fills alice's INBOX with ``-n`` messages over IMAP APPEND (the corpus of bench_imap_sort), signs
in the way the web app does (``POST /api/session``, cookie) and times, ``--rounds`` times after
one untimed warm-up, what opening the mail view costs the server: the folder list with counts
(``GET /api/mailboxes``), the first page of INBOX (``GET /api/emails?mailbox=INBOX&limit=50``),
a page deep in the folder (cursor), one message and its conversation (``?thread=``: the server's
THREAD=REFERENCES over the folder, cached per mailbox state; timed again after each round changes a
flag, as opening a message marks it read) (loopback wall time ≈ server time); then, in
Chromium, from the "Sign in" click to the first INBOX row painted.
    .venv/bin/python tests/bench/bench_webmail.py --spawn -n 10000
Targets: opening INBOX of a 10,000-message folder ≤ 300 ms server time; sign-in to INBOX painted ≤ 1 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_imap import Client  # noqa: E402
from bench_imap_sort import corpus  # noqa: E402


def fill(args: argparse.Namespace, imap_port: int) -> None:
    c = Client("127.0.0.1", imap_port)
    c.command(b'LOGIN "%s" "%s"' % (args.user.encode(), args.password.encode()))
    exists = 0
    for line in c.command(b"SELECT INBOX"):
        if line.endswith(b"EXISTS\r\n"):
            exists = int(line.split()[1])
    t0 = time.perf_counter()
    for raw in corpus(args.n)[exists:]:
        c.append("INBOX", raw)
    print(f"# appended {max(0, args.n - exists)} in {time.perf_counter() - t0:.1f} s", flush=True)
    c.close()


def timed(base: str, path: str, cookie: str, rounds: int) -> tuple[list[float], bytes]:
    def once() -> tuple[float, bytes]:
        req = urllib.request.Request(base + path, headers={"Cookie": cookie})
        t = time.perf_counter()
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
        return (time.perf_counter() - t) * 1000, body

    _, body = once()
    return [once()[0] for _ in range(rounds)], body


def run(args: argparse.Namespace, base: str) -> None:
    req = urllib.request.Request(base + "/api/session", method="POST", headers={"Content-Type": "application/json"},
                                 data=json.dumps({"username": args.user, "password": args.password}).encode())
    with urllib.request.urlopen(req, timeout=30) as resp:
        cookie = "; ".join(v.split(";")[0] for k, v in resp.headers.items() if k.lower() == "set-cookie")
        csrf = json.loads(resp.read())["csrf_token"]
    first = json.loads(timed(base, "/api/emails?mailbox=INBOX&limit=50", cookie, 0)[1])
    deep_cursor = int(first["items"][-1]["id"].split(".")[1]) - args.n // 2
    paths = [("mailboxes", "/api/mailboxes"), ("inbox_first_page", "/api/emails?mailbox=INBOX&limit=50"),
             ("inbox_deep_page", f"/api/emails?mailbox=INBOX&limit=50&cursor={deep_cursor}"),
             ("message", f"/api/emails/{first['items'][0]['id']}"),
             ("message_body", f"/api/web/emails/{first['items'][0]['id']}/body"),
             ("message_thread_cached", f"/api/emails?thread={first['items'][0]['id']}")]
    for name, path in paths:
        times, body = timed(base, path, cookie, args.rounds)
        print(f"FIG webmail_{name} {statistics.median(times):.1f} ms  # min {min(times):.1f} max {max(times):.1f};"
              f" {len(body)} bytes", flush=True)
    thread_after_flag_change(base, first["items"][0]["id"], cookie, csrf, args.rounds)


def thread_after_flag_change(base: str, id: str, cookie: str, csrf: str, rounds: int) -> None:
    """The conversation of a message right after a flag changed (the thread cache's key moved)."""
    times = []
    for i in range(rounds):
        req = urllib.request.Request(f"{base}/api/emails/{id}", method="PATCH", data=json.dumps(
            {"starred": i % 2 == 0}).encode(), headers={"Cookie": cookie, "X-CSRF-Token": csrf,
                                                        "Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=30).read()
        times.append(_once(base, id, cookie))
    print(f"FIG webmail_message_thread_after_flag_change {statistics.median(times):.1f} ms  # min {min(times):.1f}"
          f" max {max(times):.1f}", flush=True)


def _once(base: str, id: str, cookie: str) -> float:
    req = urllib.request.Request(f"{base}/api/emails?thread={id}", headers={"Cookie": cookie})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()
    return (time.perf_counter() - t) * 1000


def paint(args: argparse.Namespace, base: str) -> None:
    """Sign-in click to the first INBOX row painted, in Chromium (Playwright, Debian's binary)."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        for _ in range(args.rounds):
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            page = context.new_page()
            page.goto(base + "/")
            page.get_by_label("Email").fill(args.user)
            page.get_by_label("Password").fill(args.password)
            t = time.perf_counter()
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("list", name="Messages").get_by_role("button").first.wait_for()
            times.append((time.perf_counter() - t) * 1000)
            context.close()
        browser.close()
    print(f"FIG webmail_signin_to_inbox_painted {statistics.median(times):.0f} ms  # min {min(times):.0f}"
          f" max {max(times):.0f}; includes the password hash", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--user", default="alice@example.test")
    ap.add_argument("--password", default="secret-Pa55")
    ap.add_argument("-n", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--spawn", action="store_true", help="start a private tau (tau init + twistd)")
    ap.add_argument("--url", default="http://127.0.0.1:18080")
    ap.add_argument("--imap-port", type=int, default=10143)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--folder", default=None, help="keep the spawned tau's data here (reused when it exists)")
    args = ap.parse_args()
    if not args.spawn:
        fill(args, args.imap_port)
        run(args, args.url)
        paint(args, args.url)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.support.daemon import TauDaemon

    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="tau-bench-"))
    fresh = not (folder / "data").exists()
    folder.mkdir(parents=True, exist_ok=True)
    d = TauDaemon(folder, database_url=args.database_url, listeners=("imap", "http"),
                  extra={"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0", "TAU_LIMITS_REQUESTS_PER_HOUR_USER": "0"})
    if fresh:
        d.init()
        d.add_user(args.user, args.password)
    d.start("imap")
    try:
        fill(args, d.ports["imap"])
        run(args, d.url)
        paint(args, d.url)
    finally:
        d.stop()


if __name__ == "__main__":
    main()
