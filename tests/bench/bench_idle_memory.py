"""By-hand measurement (not part of the test suite): memory of an idle ``twistd -n tau`` with every
service enabled (``tau init --dev-ports``, all listeners on free ports), main process and its
children (the SFU media workers) reported separately.

    .venv/bin/python tests/bench/bench_idle_memory.py [--starts 3] [--settle 8]

Prints ``FIG`` lines: median (min-max) of PSS, RSS and USS (private pages) per process kind, read
from /proc/PID/smaps_rollup ``--settle`` seconds after the listeners answer. PSS shares library
pages among every process mapping them, so it drops when other Python processes run from the
same files; USS is the steadier figure. Target (issue 15): main process PSS ≤ 50 MiB.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def rollup(pid: int) -> dict[str, float]:
    """PSS, RSS and USS of ``pid`` in MiB."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    return {"pss": fields["Pss"] / 1024, "rss": fields["Rss"] / 1024,
            "uss": (fields["Private_Clean"] + fields["Private_Dirty"]) / 1024}


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--settle", type=float, default=8.0)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.support.daemon import TauDaemon

    seen: dict[str, dict[str, list[float]]] = {"main": {}, "children": {}}
    for _ in range(args.starts):
        d = TauDaemon(Path(tempfile.mkdtemp(prefix="tau-idle-"))).init()
        try:
            d.start("http", timeout=60)
            time.sleep(args.settle)
            assert d.proc is not None
            kids = children(d.proc.pid)
            for kind, pids in (("main", [d.proc.pid]), ("children", kids)):
                if not pids:
                    continue
                totals = [rollup(p) for p in pids]
                for key in ("pss", "rss", "uss"):
                    seen[kind].setdefault(key, []).append(sum(t[key] for t in totals))
            seen["children"].setdefault("count", []).append(float(len(kids)))
        finally:
            d.stop()
            shutil.rmtree(d.folder, ignore_errors=True)
    for kind, figures in seen.items():
        for key, values in figures.items():
            print(f"FIG idle_{kind}_{key} {statistics.median(values):.1f} {'MiB' if key != 'count' else ''}"
                  f"  # min {min(values):.1f} max {max(values):.1f} n={len(values)}", flush=True)


if __name__ == "__main__":
    main()
