"""HTTP core benchmark (issue 2, Performance). Not a test: run it by hand.

Throughput: N keep-alive connections hammering ``GET /api/health`` and an authenticated
``GET /api/me`` (JWT verified from cache, user record from the per-request cache); prints req/s
and latency. Uses ``wrk`` when installed (``apt-get install -y wrk``), else an asyncio client.

Stall check (``--stall``): one open keep-alive connection probes ``GET /api/me`` (and
``/api/health``) every few milliseconds while 20 password logins run at once — each an argon2id
verification that must happen off the reactor thread. Prints the probe's worst latency.

Against a throwaway daemon of this checkout (SQLite by default, ``--database-url`` for PostgreSQL;
rate limits switched off)::

    .venv/bin/python tests/bench/bench_http.py --start
    .venv/bin/python tests/bench/bench_http.py --start --stall

Against a running daemon (disable its rate limits: ``TAU_LIMITS_REQUESTS_PER_MINUTE_IP=0``,
``TAU_LIMITS_REQUESTS_PER_HOUR_USER=0``)::

    .venv/bin/python tests/bench/bench_http.py --url http://127.0.0.1:18080 \\
        --user alice@example.test --password secret-Pa55 [--stall]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode, urlsplit

PASSWORD = "secret-Pa55"


# -- a minimal keep-alive HTTP/1.1 client ------------------------------------------------------

class Connection:
    def __init__(self, host: str, port: int, source: str | None = None) -> None:
        self.host, self.port, self.source = host, port, source
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> Connection:
        local = (self.source, 0) if self.source else None
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, local_addr=local)
        return self

    async def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                      body: bytes = b"") -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
        for name, value in (headers or {}).items():
            head += f"{name}: {value}\r\n"
        if body:
            head += f"Content-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        data = await self.reader.readexactly(length) if length else b""
        return int(status_line.split()[1]), data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# -- throughput --------------------------------------------------------------------------------

def run_wrk(url: str, path: str, connections: int, seconds: int, token: str | None) -> dict[str, float]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if token:
        argv += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run([*argv, url + path], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)

    def ms(label: str) -> float:
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {"rps": rps, "p50_ms": ms("50"), "p99_ms": ms("99"), "errors": int(non2xx.group(1)) if non2xx else 0}


async def run_python(url: str, path: str, connections: int, seconds: int, token: str | None) -> dict[str, float]:
    parts = urlsplit(url)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal errors
        conn = await Connection(parts.hostname or "127.0.0.1", parts.port or 80).open()
        try:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                status, _ = await conn.request("GET", path, headers)
                latencies.append(time.perf_counter() - started)
                errors += status != 200
        finally:
            conn.close()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.monotonic() - started
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000, "errors": errors}


def throughput(url: str, token: str, connections: int, seconds: int, client: str) -> None:
    use_wrk = client == "wrk" or (client == "auto" and shutil.which("wrk"))
    print(f"client: {'wrk -t1' if use_wrk else 'python asyncio'}, {connections} connections, {seconds} s each")
    for label, path, auth in (("GET /api/health", "/api/health", None), ("GET /api/me (Bearer)", "/api/me", token)):
        if use_wrk:
            result = run_wrk(url, path, connections, seconds, auth)
        else:
            result = asyncio.run(run_python(url, path, connections, seconds, auth))
        print(f"  {label:24} {result['rps']:9.0f} req/s   p50 {result['p50_ms']:6.2f} ms   "
              f"p99 {result['p99_ms']:6.2f} ms   non-2xx {result['errors']}")


# -- stall check -------------------------------------------------------------------------------

async def stall_check(url: str, token: str, users: list[tuple[str, str]], rounds: int) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    probe = await Connection(host, port).open()
    auth = {"Authorization": f"Bearer {token}"}

    failures: list[str] = []

    async def probe_loop(stop: asyncio.Event, path: str, headers: dict[str, str]) -> list[float]:
        samples = []
        while not stop.is_set():
            started = time.perf_counter()
            status, body = await probe.request("GET", path, headers)
            samples.append(time.perf_counter() - started)
            if status != 200:
                failures.append(f"{path} {status} {body[:200].decode(errors='replace')}")
            await asyncio.sleep(0.005)
        return samples

    async def login(address: str, password: str) -> float:
        # each login from its own loopback address: the per-IP throttle must not shortcut argon2
        source = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(1, 254)}"
        conn = await Connection(host, port, source).open()
        started = time.perf_counter()
        body = urlencode({"grant_type": "password", "username": address, "password": password}).encode()
        status, _ = await conn.request("POST", "/oauth2/token", {"Content-Type": "application/x-www-form-urlencoded"},
                                       body)
        conn.close()
        assert status in (200, 401), status
        return time.perf_counter() - started

    for path, headers in (("/api/me", auth), ("/api/health", {})):
        stop = asyncio.Event()
        baseline = asyncio.ensure_future(probe_loop(stop, path, headers))
        await asyncio.sleep(1.0)
        stop.set()
        base = await baseline
        worst, login_times = [], []
        for n in range(rounds):
            stop = asyncio.Event()
            task = asyncio.ensure_future(probe_loop(stop, path, headers))
            await asyncio.sleep(0.05)
            started = time.perf_counter()
            # a successful login is cached; wrong passwords (from fresh IPs, so the throttle never
            # shortcuts them) cost a full argon2id verification every round
            wrong = f"wrong-{path}-{n}"
            login_times += await asyncio.gather(*(login(a, wrong) for a, _ in users))
            wall = time.perf_counter() - started
            stop.set()
            samples = await task
            worst.append(max(samples))
        print(f"  probe GET {path:12} idle: p50 {statistics.median(base) * 1000:5.1f} ms,"
              f" max {max(base) * 1000:5.1f} ms"
              f" | during {len(users)} concurrent logins: max {max(worst) * 1000:6.1f} ms over {rounds} rounds"
              f" (logins took {wall:.2f} s wall, {statistics.median(login_times) * 1000:.0f} ms median each)")
        for failure in dict.fromkeys(failures):
            print(f"    probe failed: {failure}")
        failures.clear()
    probe.close()


# -- setup -------------------------------------------------------------------------------------

def get_token(url: str, user: str, password: str) -> str:
    body = urlencode({"grant_type": "password", "username": user, "password": password}).encode()
    with urllib.request.urlopen(urllib.request.Request(url + "/oauth2/token", data=body), timeout=30) as resp:
        return json.loads(resp.read())["access_token"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:18080")
    parser.add_argument("--user", default="alice@example.test")
    parser.add_argument("--password", default=PASSWORD)
    parser.add_argument("--start", action="store_true", help="start a throwaway daemon of this checkout")
    parser.add_argument("--database-url", help="with --start: PostgreSQL instead of SQLite")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=int, default=10, help="seconds per endpoint")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--stall", action="store_true", help="measure the stall caused by 20 concurrent logins")
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    daemon = None
    users = [(f"nobody{n}@example.test", "wrong-password") for n in range(args.logins)]
    if args.start:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from tests.support.daemon import TauDaemon

        daemon = TauDaemon(Path(tempfile.mkdtemp(prefix="tau-bench-")), database_url=args.database_url,
                           listeners=("http",), env={"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0",
                                                     "TAU_LIMITS_REQUESTS_PER_HOUR_USER": "0"})
        daemon.init()
        daemon.add_user(args.user, args.password)
        if args.stall:  # real accounts with real argon2id hashes, one per concurrent login
            users = [(f"bench{n}@example.test", f"bench-Passw0rd-{n}") for n in range(args.logins)]
            for address, password in users:
                daemon.add_user(address, password)
        daemon.start()
        args.url = daemon.url
        print(f"daemon: {daemon.url} ({args.database_url or 'sqlite'}), data in {daemon.folder}")
    try:
        token = get_token(args.url, args.user, args.password)
        if args.stall:
            print(f"stall check: {args.logins} concurrent password logins (argon2id each) vs one open connection")
            asyncio.run(stall_check(args.url, token, users, args.rounds))
        else:
            throughput(args.url, token, args.connections, args.duration, args.client)
    finally:
        if daemon is not None:
            daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
