"""WebDAV benchmark (not a test): run by hand against a running server (tau or Apache mod_dav).

    python tests/bench/bench_webdav.py --url http://127.0.0.1:18080/dav/files/alice@example.test/ \\
        --user alice@example.test --password secret-Pa55 --pid $(pgrep -f 'twistd -n tau')

Measures: PUT and GET of a 256 MiB file (MiB/s, and the server's RSS growth while it runs when
``--pid`` is given), 1,000 small PUTs over one keep-alive connection (files/s) and again over
``--concurrency`` connections (rclone's default of 4 transfers; with ``--pid`` also the server's CPU
milliseconds per sequential PUT, steadier than files/s on a loaded machine), and PROPFIND
Depth 1 on the resulting 1,000-file folder (ms, median of 5) asking for the four properties a
sync client asks for (the body shared/bench uses) and with allprop. ``--start`` runs its own tau
daemon in a temp folder instead. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

MIB = 1024 * 1024
PROPFIND = (b'<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"><d:prop>'
            b"<d:resourcetype/><d:getcontentlength/><d:getlastmodified/><d:getetag/></d:prop></d:propfind>")


class Client:
    def __init__(self, url: str, user: str, password: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.base = parts.path.rstrip("/") + "/"
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=300)

    def request(self, method: str, path: str, body=None, headers: dict[str, str] | None = None,
                sink: bool = False) -> tuple[int, bytes, int]:
        hdrs = {"Authorization": self.auth, **(headers or {})}
        self.conn.request(method, self.base + path, body=body, headers=hdrs)
        resp = self.conn.getresponse()
        total = 0
        if sink:
            while chunk := resp.read(MIB):
                total += len(chunk)
            return resp.status, b"", total
        data = resp.read()
        return resp.status, data, len(data)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class RssSampler:
    def __init__(self, pid: int | None) -> None:
        self.pid, self.peak, self.start = pid, 0, 0
        self._stop = threading.Event()

    def __enter__(self) -> RssSampler:
        if self.pid:
            self.start = self.peak = rss_kib(self.pid)
            threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid or 0))
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    @property
    def growth_mib(self) -> float | None:
        return round((self.peak - self.start) / 1024, 1) if self.pid else None


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU the server process used so far: per-operation cost that the machine's
    load (other processes) does not inflate the way wall time is inflated."""
    if not pid:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def body(size: int):
    block = os.urandom(MIB)
    sent = 0
    while sent < size:
        piece = block[: min(MIB, size - sent)]
        sent += len(piece)
        yield piece


def run(url: str, user: str, password: str, pid: int | None, big_mib: int, small: int,
        concurrency: int = 4) -> dict[str, object]:
    c = Client(url, user, password)
    out: dict[str, object] = {"url": url}
    c.request("MKCOL", "bench/")
    size = big_mib * MIB
    with RssSampler(pid) as rss:
        t = time.perf_counter()
        status, _, _ = c.request("PUT", "bench/big.bin", body(size), {"Content-Length": str(size)})
        elapsed = time.perf_counter() - t
    out["put_big"] = {"status": status, "mib_s": round(big_mib / elapsed, 1), "rss_growth_mib": rss.growth_mib}
    with RssSampler(pid) as rss:
        t = time.perf_counter()
        status, _, got = c.request("GET", "bench/big.bin", sink=True)
        elapsed = time.perf_counter() - t
    out["get_big"] = {"status": status, "bytes": got, "mib_s": round(big_mib / elapsed, 1),
                      "rss_growth_mib": rss.growth_mib}
    c.request("MKCOL", "bench/many/")
    payload = b"x" * 1024
    t, cpu = time.perf_counter(), cpu_seconds(pid)
    statuses = set()
    for i in range(small):
        statuses.add(c.request("PUT", f"bench/many/f{i:04d}.txt", payload)[0])
    elapsed = time.perf_counter() - t
    out["small_puts"] = {"count": small, "statuses": sorted(statuses), "files_s": round(small / elapsed, 1),
                         "server_cpu_ms_per_put": round((cpu_seconds(pid) - cpu) / small * 1000, 2) if pid else None}
    if concurrency > 1:  # as rclone does (--transfers 4): one keep-alive connection per worker
        c.request("MKCOL", "bench/par/")
        clients = [Client(url, user, password) for _ in range(concurrency)]
        par: set[int] = set()

        def worker(n: int) -> None:
            for i in range(n, small, concurrency):
                par.add(clients[n].request("PUT", f"bench/par/f{i:04d}.txt", payload)[0])

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(concurrency)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.perf_counter() - t
        out["small_puts_parallel"] = {"connections": concurrency, "statuses": sorted(par),
                                      "files_s": round(small / elapsed, 1)}
    for label, propfind in (("propfind_depth1", PROPFIND), ("propfind_depth1_allprop", b"")):
        times = []
        for _ in range(5):
            t = time.perf_counter()
            status, data, _ = c.request("PROPFIND", "bench/many/", propfind,
                                        {"Depth": "1", "Content-Type": "application/xml"})
            times.append(time.perf_counter() - t)
        out[label] = {"status": status, "members": data.count(b"response>") // 2 - 1,
                      "median_ms": round(statistics.median(times) * 1000, 1)}
    c.request("DELETE", "bench/")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url")
    ap.add_argument("--user", default="alice@example.test")
    ap.add_argument("--password", default="secret-Pa55")
    ap.add_argument("--pid", type=int)
    ap.add_argument("--big-mib", type=int, default=256)
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=4, help="connections for the parallel small PUTs")
    ap.add_argument("--start", action="store_true", help="start a tau daemon in a temp folder")
    args = ap.parse_args()
    daemon = None
    if args.start:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from tests.support.daemon import TauDaemon

        daemon = TauDaemon(Path(tempfile.mkdtemp(prefix="tau-bench-")), listeners=("http",),
                           extra={"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0",
                                  "TAU_LIMITS_REQUESTS_PER_HOUR_USER": "0"}).init()
        daemon.add_user(args.user, args.password)
        daemon.start()
        args.url = f"{daemon.url}/dav/files/{args.user}/"
        args.pid = daemon.proc.pid if daemon.proc else None
    try:
        print(json.dumps(run(args.url, args.user, args.password, args.pid, args.big_mib, args.small,
                             args.concurrency), indent=2))
    finally:
        if daemon is not None:
            daemon.stop()


if __name__ == "__main__":
    main()
