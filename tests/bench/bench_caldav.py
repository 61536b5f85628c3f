"""CalDAV benchmark (not a test): run by hand against a running server (tau, Radicale, Xandikos).

    python tests/bench/bench_caldav.py --home http://127.0.0.1:18080/dav/calendars/alice@example.test/ \\
        --user alice@example.test --password secret-Pa55
    python tests/bench/bench_caldav.py --start          # its own tau daemon in a temp folder

The issue 6 workload: a calendar of 2,000 events (10% weekly recurring, the rest single events
spread over a year) PUT over one keep-alive connection (events/s), then a one-month
calendar-query REPORT with a time-range (ms, median of 5; with and without calendar-data),
a calendar-multiget of 100 hrefs (ms, median of 5) and an initial sync-collection. Prints one
JSON object. For side-by-side ratios use /work/shared/bench (``--suite caldav``), which drives
Radicale and Xandikos with the same requests.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from servercpu import meter

QUERY = ('<?xml version="1.0" encoding="utf-8"?><c:calendar-query xmlns:d="DAV:" '
         'xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/>{data}</d:prop><c:filter>'
         '<c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT"><c:time-range start="20260601T000000Z" '
         'end="20260701T000000Z"/></c:comp-filter></c:comp-filter></c:filter></c:calendar-query>')
MULTIGET = ('<?xml version="1.0" encoding="utf-8"?><c:calendar-multiget xmlns:d="DAV:" '
            'xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/><c:calendar-data/></d:prop>{hrefs}'
            "</c:calendar-multiget>")
SYNC = ('<?xml version="1.0" encoding="utf-8"?><d:sync-collection xmlns:d="DAV:"><d:sync-token/>'
        "<d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>")
XML = {"Content-Type": "application/xml; charset=utf-8", "Depth": "1"}


def event(i: int, rng: random.Random) -> tuple[str, str]:
    uid = f"bench-{i}-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}"
    start = 1767225600 + rng.randrange(365 * 24) * 3600          # 2026, on the hour
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start))
    end = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start + 3600))
    rule = "RRULE:FREQ=WEEKLY;COUNT=52\r\n" if i % 10 == 0 else ""
    text = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{stamp}\r\nDTEND:{end}\r\n{rule}"
            f"SUMMARY:Event {i}\r\nDESCRIPTION:benchmark event number {i}\r\nLOCATION:Room {i % 40}\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n")
    return uid, text


class Client:
    def __init__(self, url: str, user: str, password: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=120)
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def request(self, method: str, path: str, body: str = "", headers: dict[str, str] | None = None
                ) -> tuple[int, bytes]:
        self.conn.request(method, path, body=body.encode(), headers={"Authorization": self.auth, **(headers or {})})
        resp = self.conn.getresponse()
        return resp.status, resp.read()


def timed(fn, repeat: int = 5) -> tuple[float, bytes]:
    times, body = [], b""
    for _ in range(repeat):
        started = time.perf_counter()
        body = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, body


def run(home: str, user: str, password: str, n: int = 2000,
        cpu: Callable[[], float] | None = None) -> dict[str, object]:
    """``cpu``: the server's CPU seconds so far (``--start``): adds its CPU per PUT and per query."""
    client = Client(home, user, password)
    cal = urlsplit(home).path.rstrip("/") + f"/bench-{uuid.uuid4().hex[:8]}/"
    status, body = client.request("MKCALENDAR", cal)
    assert status == 201, (status, body)
    rng = random.Random(7)
    events = [event(i, rng) for i in range(n)]
    started, cpu0 = time.perf_counter(), cpu() if cpu else 0.0
    for uid, text in events:
        status, body = client.request("PUT", cal + uid + ".ics", text,
                                      {"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"})
        assert status in (201, 204), (status, body)
    put_rate = n / (time.perf_counter() - started)
    put_cpu = (cpu() - cpu0) / n * 1000 if cpu else None
    query_ms, found = timed(lambda: client.request("REPORT", cal, QUERY.format(data=""), XML)[1])
    data_ms, _ = timed(lambda: client.request("REPORT", cal, QUERY.format(data="<c:calendar-data/>"), XML)[1])
    hrefs = "".join(f"<d:href>{cal}{events[i][0]}.ics</d:href>" for i in rng.sample(range(n), 100))
    multiget_ms, got = timed(lambda: client.request("REPORT", cal, MULTIGET.format(hrefs=hrefs), XML)[1])
    sync_ms, _ = timed(lambda: client.request("REPORT", cal, SYNC, XML)[1], repeat=3)
    return {"events": n, "put_events_per_s": round(put_rate, 1), "query_month_ms": round(query_ms, 2),
            "query_month_matches": found.count(b"<d:response>") + found.count(b"<D:response>"),
            "query_month_with_data_ms": round(data_ms, 2), "multiget_100_ms": round(multiget_ms, 2),
            "multiget_returned": got.count(b"BEGIN:VCALENDAR"), "sync_initial_ms": round(sync_ms, 2),
            **({"server_cpu_ms_per_put": round(put_cpu, 3)} if put_cpu is not None else {})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="calendar home URL (MKCALENDAR target's parent)")
    parser.add_argument("--user", default="alice@example.test")
    parser.add_argument("--password", default="secret-Pa55")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--start", action="store_true", help="start a tau daemon in a temp folder")
    args = parser.parse_args()
    daemon = None
    if args.start:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from tests.support.daemon import TauDaemon

        daemon = TauDaemon(Path(tempfile.mkdtemp()), listeners=("http",),
                           extra={"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0",
                                  "TAU_LIMITS_REQUESTS_PER_HOUR_USER": "0"}).init()
        daemon.add_user(args.user, args.password)
        daemon.start()
        args.home = f"{daemon.url}/dav/calendars/{args.user}/"
    try:
        print(json.dumps(run(args.home, args.user, args.password, args.events,
                             meter(daemon.proc.pid if daemon and daemon.proc else None))))
    finally:
        if daemon is not None:
            daemon.stop()


if __name__ == "__main__":
    main()
