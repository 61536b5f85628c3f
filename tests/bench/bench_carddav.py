"""CardDAV benchmark (not a test): run by hand against a running server (tau, Radicale).

    python tests/bench/bench_carddav.py --home http://127.0.0.1:18080/dav/addressbooks/alice@example.test/ \\
        --user alice@example.test --password secret-Pa55
    python tests/bench/bench_carddav.py --home http://127.0.0.1:41232/alice@example.test/   # Radicale
    python tests/bench/bench_carddav.py --start          # its own tau daemon in a temp folder

The issue 17 workload: an address book (extended MKCOL) of 5,000 vCards (half 3.0, half 4.0,
each with FN, N, two EMAILs, a TEL, ORG, NICKNAME, NOTE) PUT over one keep-alive connection
(cards/s), then addressbook-query REPORTs (ms, median of 5): by exact EMAIL, by FN substring
(about 1 % match) and the same with address-data; an addressbook-multiget of 100 hrefs and an
initial sync-collection. Prints one JSON object. Radicale is started from /work/shared/bench
(``peers/radicale.sh start WORKDIR``) and driven with the same requests.
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

NS = 'xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:carddav"'
MKCOL = (f'<?xml version="1.0" encoding="utf-8"?><d:mkcol {NS}><d:set><d:prop><d:resourcetype><d:collection/>'
         "<c:addressbook/></d:resourcetype><d:displayname>Bench</d:displayname></d:prop></d:set></d:mkcol>")
QUERY = (f'<?xml version="1.0" encoding="utf-8"?><c:addressbook-query {NS}><d:prop><d:getetag/>{{data}}</d:prop>'
         '<c:filter><c:prop-filter name="{prop}"><c:text-match collation="i;unicode-casemap" match-type="{how}">'
         "{text}</c:text-match></c:prop-filter></c:filter></c:addressbook-query>")
MULTIGET = (f'<?xml version="1.0" encoding="utf-8"?><c:addressbook-multiget {NS}><d:prop><d:getetag/>'
            "<c:address-data/></d:prop>{hrefs}</c:addressbook-multiget>")
SYNC = ('<?xml version="1.0" encoding="utf-8"?><d:sync-collection xmlns:d="DAV:"><d:sync-token/>'
        "<d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>")
XML = {"Content-Type": "application/xml; charset=utf-8", "Depth": "1"}
FIRST = ["Anna", "Ben", "Clara", "David", "Eva", "Felix", "Greta", "Hugo", "Ida", "Jonas", "Karla", "Lukas"]
LAST = ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann"]


def card(i: int, rng: random.Random) -> tuple[str, str]:
    uid = f"bench-{i}-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}"
    first, last = rng.choice(FIRST), rng.choice(LAST)
    fn = f"{first} {i:05d} {last}"
    email = f"{first.lower()}.{i}@example{i % 50}.org"
    if i % 2:
        lines = ["BEGIN:VCARD", "VERSION:3.0", f"UID:{uid}", f"FN:{fn}", f"N:{last};{first};;;",
                 f"EMAIL;TYPE=INTERNET,HOME:{email}", f"EMAIL;TYPE=INTERNET,WORK:{first.lower()}@work{i}.example",
                 f"TEL;TYPE=CELL:+49 30 {i:07d}"]
    else:
        lines = ["BEGIN:VCARD", "VERSION:4.0", f"UID:urn:uuid:{uid}", f"FN:{fn}", f"N:{last};{first};;;",
                 f"EMAIL;TYPE=home:{email}", f"EMAIL;TYPE=work:{first.lower()}@work{i}.example",
                 f"TEL;VALUE=uri;TYPE=cell:tel:+49-30-{i:07d}"]
    lines += [f"ORG:Company {i % 200}", f"NICKNAME:{first[:3]}{i}", f"NOTE:benchmark contact number {i}",
              "END:VCARD"]
    return uid, "\r\n".join(lines) + "\r\n"


class Client:
    def __init__(self, url: str, user: str, password: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=600)
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


def responses(body: bytes) -> int:
    return body.count(b"<d:response>") + body.count(b"<D:response>") + body.count(b"<response>") + \
        body.count(b"<multistatus:response>")


def run(home: str, user: str, password: str, n: int = 5000,
        cpu: Callable[[], float] | None = None) -> dict[str, object]:
    """``cpu``: the server's CPU seconds so far (``--start``): adds its CPU per PUT and per query."""
    client = Client(home, user, password)
    book = urlsplit(home).path.rstrip("/") + f"/bench-{uuid.uuid4().hex[:8]}/"
    status, body = client.request("MKCOL", book, MKCOL, {"Content-Type": "application/xml; charset=utf-8"})
    assert status == 201, (status, body)
    rng = random.Random(7)
    cards = [card(i, rng) for i in range(n)]
    started, cpu0 = time.perf_counter(), cpu() if cpu else 0.0
    for uid, text in cards:
        status, body = client.request("PUT", book + uid + ".vcf", text,
                                      {"Content-Type": "text/vcard; charset=utf-8", "If-None-Match": "*"})
        assert status in (201, 204), (status, body)
    put_rate = n / (time.perf_counter() - started)
    put_cpu = (cpu() - cpu0) / n * 1000 if cpu else None
    target = cards[n // 3][1].split("EMAIL;TYPE=")[1].split(":", 1)[1].split("\r\n")[0]
    email_ms, hit = timed(lambda: client.request("REPORT", book, QUERY.format(
        data="", prop="EMAIL", how="equals", text=target), XML)[1])
    cpu1 = cpu() if cpu else 0.0
    fn_ms, found = timed(lambda: client.request("REPORT", book, QUERY.format(
        data="", prop="FN", how="contains", text="00 "), XML)[1])
    fn_cpu = (cpu() - cpu1) / 5 * 1000 if cpu else None
    fn_data_ms, _ = timed(lambda: client.request("REPORT", book, QUERY.format(
        data="<c:address-data/>", prop="FN", how="contains", text="00 "), XML)[1])
    hrefs = "".join(f"<d:href>{book}{cards[i][0]}.vcf</d:href>" for i in rng.sample(range(n), 100))
    multiget_ms, got = timed(lambda: client.request("REPORT", book, MULTIGET.format(hrefs=hrefs), XML)[1])
    sync_ms, _ = timed(lambda: client.request("REPORT", book, SYNC, XML)[1], repeat=3)
    return {"cards": n, "put_cards_per_s": round(put_rate, 1), "query_email_ms": round(email_ms, 2),
            "query_email_matches": responses(hit), "query_fn_ms": round(fn_ms, 2),
            "query_fn_matches": responses(found), "query_fn_with_data_ms": round(fn_data_ms, 2),
            "multiget_100_ms": round(multiget_ms, 2), "multiget_returned": got.count(b"BEGIN:VCARD"),
            "sync_initial_ms": round(sync_ms, 2),
            **({"server_cpu_ms_per_put": round(put_cpu, 3)} if put_cpu is not None else {}),
            **({"server_cpu_ms_query_fn": round(fn_cpu, 2)} if fn_cpu is not None else {})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="address-book home URL (the extended MKCOL target's parent)")
    parser.add_argument("--user", default="alice@example.test")
    parser.add_argument("--password", default="secret-Pa55")
    parser.add_argument("--cards", type=int, default=5000)
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
        args.home = f"{daemon.url}/dav/addressbooks/{args.user}/"
    try:
        print(json.dumps(run(args.home, args.user, args.password, args.cards,
                             meter(daemon.proc.pid if daemon and daemon.proc else None))))
    finally:
        if daemon is not None:
            daemon.stop()


if __name__ == "__main__":
    main()
