"""Resumable upload benchmark (not a test): a file sent in one ``POST /api/files`` against the same
file sent as a resumable upload (``/api/uploads``, ``--chunk`` MiB a request), in MiB/s, with the
server's RSS growth (chunks stream to the blob store; assembling them copies blob to blob).

    python tests/bench/bench_uploads.py --size 128 --chunk 8

Starts its own tau daemon (SQLite) in a temp folder. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.daemon import TauDaemon  # noqa: E402

MIB = 1024 * 1024
ALICE = "alice@example.test"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def request(port: int, token: str, method: str, path: str, body: bytes = b"",
            headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request(method, path, body=body, headers={"Authorization": f"Bearer {token}", **(headers or {})})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=128, help="MiB")
    parser.add_argument("--chunk", type=int, default=8, help="MiB a chunk")
    args = parser.parse_args()
    data = os.urandom(args.size * MIB)
    with tempfile.TemporaryDirectory() as folder:
        d = TauDaemon(Path(folder), listeners=("http",),
                      extra={"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0", "TAU_LIMITS_REQUESTS_PER_HOUR_USER": "0"})
        d.init()
        d.add_user(ALICE)
        d.start()
        try:
            port, token = d.ports["http"], d.token(ALICE)
            assert d.proc is not None
            pid = d.proc.pid
            before = rss_kib(pid)
            t0 = time.monotonic()
            status, _ = request(port, token, "POST", "/api/files?path=/single.bin", data)
            single = time.monotonic() - t0
            assert status == 201, status
            rss_single = rss_kib(pid) - before
            status, body = request(port, token, "POST", "/api/uploads",
                                   json.dumps({"path": "/chunked.bin", "size": len(data)}).encode(),
                                   {"Content-Type": "application/json"})
            assert status == 201, body
            url = json.loads(body)["url"]
            step = args.chunk * MIB
            t0 = time.monotonic()
            for start in range(0, len(data), step):
                status, body = request(port, token, "PUT", f"{url}?offset={start}", data[start:start + step])
                assert status in (200, 201), body
            chunked = time.monotonic() - t0
            rss_chunked = rss_kib(pid) - before
        finally:
            d.stop()
    print(json.dumps({"size_mib": args.size, "chunk_mib": args.chunk, "load": os.getloadavg()[0],
                      "single_post_mib_s": round(args.size / single, 1),
                      "chunked_mib_s": round(args.size / chunked, 1),
                      "rss_growth_kib_single": rss_single, "rss_growth_kib_after_chunked": rss_chunked}))


if __name__ == "__main__":
    main()
