"""By-hand IMAP SORT / THREAD benchmark (not part of the test suite; issue 21 item 4).

Appends ``-n`` threaded messages (reply chains with References/In-Reply-To, "Re:"/"Fwd:"
subjects, shuffled Date: headers), then times each command ``--rounds`` times after one untimed
warm-up (Dovecot builds its sort/thread caches on first use; tau computed its keys at delivery):
SORT (DATE), SORT (SUBJECT), SORT (REVERSE ARRIVAL FROM), THREAD=REFERENCES, THREAD=ORDEREDSUBJECT,
SEARCH BODY, SEARCH SUBJECT and a header sync (UID FETCH 1:* ... ENVELOPE; "first" is the first
pass, the median the later ones). Prints ``FIG name median unit  # min–max, first`` lines.

Against a running server (tau or a Dovecot peer, e.g. /work/shared/bench/peers/dovecot.sh with
DOVECOT_STORAGE=mdbox):
    .venv/bin/python tests/bench/bench_imap_sort.py --port 21143 --user alice@example.test
Or let it start tau (tau init + twistd on free ports, SQLite unless --database-url):
    .venv/bin/python tests/bench/bench_imap_sort.py --spawn -n 10000
Target: SORT (DATE) and THREAD REFERENCES of 10,000 messages no slower than Dovecot mdbox, also
the first THREAD after a start (tau: ``--spawn --folder`` on a kept folder starts a new process).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_imap import WORDS, Client  # noqa: E402

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
COMMANDS = [
    ("sort_date", b"SORT (DATE) UTF-8 ALL"),
    ("sort_subject", b"SORT (SUBJECT) UTF-8 ALL"),
    ("sort_reverse_arrival_from", b"SORT (REVERSE ARRIVAL FROM) UTF-8 ALL"),
    ("thread_references", b"THREAD REFERENCES UTF-8 ALL"),
    ("thread_orderedsubject", b"THREAD ORDEREDSUBJECT UTF-8 ALL"),
    ("search_body", b'UID SEARCH BODY "quarterly invoice"'),
    ("search_subject", b'UID SEARCH SUBJECT "invoice deadline"'),
    ("fetch_envelope", b"UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)"),
]


def corpus(n: int, seed: int = 7) -> list[bytes]:
    """``n`` messages in about n/8 threads; each new message starts a thread or answers a random
    earlier message of a random thread (References = that message's References + its id)."""
    rng = random.Random(seed)
    threads: list[tuple[str, list[tuple[str, str]]]] = []  # (topic, [(message-id, references)])
    out = []
    for i in range(n):
        mid = f"<t{i}.{seed}@bench.test>"
        if not threads or rng.random() < 0.125:
            topic = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {len(threads)}"
            threads.append((topic, []))
            subject, refs = (f"[list] {topic}" if rng.random() < 0.3 else topic), ""
            members = threads[-1][1]
        else:
            topic, members = rng.choice(threads)
            parent_id, parent_refs = rng.choice(members)
            refs = (parent_refs + " " + parent_id).strip()
            subject = rng.choice(("Re: ", "RE: ", "Fwd: ", "Re: Re: ")) + topic
        members.append((mid, refs))
        day = rng.randrange(1, 29)
        date = f"{day} {MONTHS[rng.randrange(12)]} 2025 {rng.randrange(24):02d}:{rng.randrange(60):02d}:00 +0000"
        sender = rng.randrange(300)
        head = (f"From: Person {sender} <p{sender:03d}@remote.test>\r\nTo: alice@example.test\r\n"
                f"Subject: {subject}\r\nDate: {date}\r\nMessage-ID: {mid}\r\n")
        if refs:
            head += f"In-Reply-To: {refs.split()[-1]}\r\nReferences: {refs}\r\n"
        body = "\r\n".join(" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(rng.randrange(3, 30)))
        out.append((head + "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n" + body + "\r\n").encode())
    return out


def run(args: argparse.Namespace) -> None:
    login = b'LOGIN "%s" "%s"' % (args.user.encode(), args.password.encode())
    c = Client(args.host, args.port)
    c.command(login)
    box = args.mailbox.encode()
    if args.mailbox != "INBOX":
        c.command(b"CREATE " + box)
    exists = 0
    for line in c.command(b"SELECT " + box):
        if line.endswith(b"EXISTS\r\n"):
            exists = int(line.split()[1])
    if exists < args.n:
        t0 = time.perf_counter()
        for raw in corpus(args.n)[exists:]:
            c.append(args.mailbox, raw)
        print(f"# appended {args.n - exists} in {time.perf_counter() - t0:.1f} s", flush=True)
    c.close()
    c = Client(args.host, args.port)
    c.command(login)
    c.command(b"SELECT " + box)
    chosen = args.commands.split(",") if args.commands else [name for name, _ in COMMANDS]
    for name, cmd in sorted((c for c in COMMANDS if c[0] in chosen), key=lambda c: chosen.index(c[0])):
        t = time.perf_counter()
        lines = c.command(cmd)
        first = (time.perf_counter() - t) * 1000
        times = []
        for _ in range(args.rounds):
            t = time.perf_counter()
            c.command(cmd)
            times.append((time.perf_counter() - t) * 1000)
        size = sum(map(len, lines))
        print(f"FIG imap_{name} {statistics.median(times):.1f} ms  # min {min(times):.1f} max {max(times):.1f}"
              f" first {first:.1f}; {size} bytes answered", flush=True)
    c.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=10143)
    ap.add_argument("--user", default="alice@example.test")
    ap.add_argument("--password", default="secret-Pa55")
    ap.add_argument("--mailbox", default="INBOX")
    ap.add_argument("-n", type=int, default=10_000, help="messages in the mailbox")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--commands", default="", help="comma-separated names to time, in this order (default: all)")
    ap.add_argument("--spawn", action="store_true", help="start a private tau (tau init + twistd)")
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--folder", default=None, help="keep the spawned tau's data here (reused when it exists)")
    args = ap.parse_args()
    if not args.spawn:
        run(args)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.support.daemon import TauDaemon

    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="tau-bench-"))
    fresh = not (folder / "data").exists()
    folder.mkdir(parents=True, exist_ok=True)
    d = TauDaemon(folder, database_url=args.database_url, listeners=("imap", "http"))
    if fresh:
        d.init()
        d.add_user(args.user, args.password)
    d.start("imap")
    args.port = d.ports["imap"]
    try:
        run(args)
    finally:
        d.stop()
        if not args.folder:
            shutil.rmtree(d.folder, ignore_errors=True)


if __name__ == "__main__":
    main()
