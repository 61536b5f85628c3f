"""Shared plumbing for the atheris fuzz targets in this folder (not collected by pytest).

A target module defines ``setup()``, ``one_input(data)`` and ``SEEDS`` and calls ``main()``.
``main`` writes the seeds into ``/tmp/fuzz/<name>/corpus`` (unless a corpus folder is given),
starts atheris with crash artifacts in ``/tmp/fuzz/<name>/`` and passes libFuzzer options on.

A crash is an exception escaping ``one_input`` or a ``log.failure`` / critical log event from
tau while the input ran (the protocols turn unexpected exceptions into ``NO [SERVERBUG]``, 451 or
500 and log them; the fuzzer has to see those). ``TAU_FUZZ_COLLECT=1`` keeps going after a crash
and saves one input per distinct crash site instead (``collected-*`` files), so one 10-minute
run finds more than the first bug.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from twisted.logger import LogLevel, globalLogPublisher

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # the targets run as scripts: ``tests.support`` is imported from the checkout

_failures: list[Any] = []
_seen: set[str] = set()


class LoggedFailure(Exception):
    """A failure tau logged (and answered as an internal error) while an input ran."""


def _observer(event: dict[str, Any]) -> None:
    failure = event.get("log_failure")
    if failure is not None:
        _failures.append(failure)
    elif event.get("log_level") in (LogLevel.critical,):
        _failures.append(RuntimeError(str(event.get("log_format"))))


globalLogPublisher.addObserver(_observer)


def check_logged() -> None:
    """Raise the first failure logged since the last call (and forget the others)."""
    if not _failures:
        return
    first = _failures[0]
    _failures.clear()
    if hasattr(first, "getTraceback"):
        raise LoggedFailure(first.getTraceback())
    raise LoggedFailure(repr(first))


def header(data: bytes, n: int) -> tuple[bytes, bytes]:
    """The first ``n`` bytes (zero-padded: the target's switches) and the rest (the protocol bytes)."""
    return data[:n].ljust(n, b"\0"), data[n:]


def new_registry(**limits: str) -> Any:
    """A migrated SQLite registry in a fresh temporary folder; all work completes synchronously.
    ``limits``: extra ``[limits]`` keys (e.g. a small ``quota_bytes``)."""
    from tests.support.databases import sqlite_url
    from tests.support.harness import make_registry

    folder = Path(tempfile.mkdtemp(prefix="taufuzz-"))
    return make_registry(folder / "tau", sqlite_url(str(folder)),
                         limits={"requests_per_minute_ip": "0", "requests_per_hour_user": "0", **limits})


def _site(exc: BaseException) -> str:
    """Where a crash happened: the innermost tau frame (or the last frame) and the type."""
    frames = traceback.extract_tb(exc.__traceback__)
    text = str(exc)
    if isinstance(exc, LoggedFailure):
        lines = [ln for ln in text.splitlines() if ln.strip().startswith("File ")]
        tau_lines = [ln for ln in lines if "/tau/" in ln]
        where = (tau_lines or lines or [""])[-1].strip()
        return where + " " + (text.strip().splitlines() or [""])[-1].split(":")[0]
    tau_frames = [f for f in frames if "/tau/" in f.filename] or frames
    f = tau_frames[-1] if tau_frames else None
    return f"{f.filename}:{f.lineno} {type(exc).__name__}" if f else type(exc).__name__


def wrap(one_input: Callable[[bytes], None], outdir: Path) -> Callable[[bytes], None]:
    collect = os.environ.get("TAU_FUZZ_COLLECT") == "1"

    def test_one_input(data: bytes) -> None:
        try:
            one_input(data)
            check_logged()
        except Exception as exc:
            _failures.clear()
            if not collect:
                raise
            site = _site(exc)
            key = hashlib.sha1(site.encode()).hexdigest()[:12]
            if key in _seen:
                return
            _seen.add(key)
            (outdir / f"collected-{key}").write_bytes(data)
            (outdir / f"collected-{key}.txt").write_text(
                site + "\n\n" + "".join(traceback.format_exception(exc)))
            print(f"== collected crash {key}: {site}", file=sys.stderr, flush=True)

    return test_one_input


def main(name: str, setup: Callable[[], None], one_input: Callable[[bytes], None], seeds: Iterable[bytes]) -> None:
    import atheris

    outdir = Path(os.environ.get("TAU_FUZZ_DIR", f"/tmp/fuzz/{name}"))
    corpus = outdir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        (corpus / ("seed-" + hashlib.sha1(seed).hexdigest()[:16])).write_bytes(seed)
    setup()
    args = list(sys.argv)
    if not any(not a.startswith("-") for a in args[1:]):
        args.append(str(corpus))
    if not any(a.startswith("-artifact_prefix=") for a in args):
        args.insert(1, f"-artifact_prefix={outdir}/")
    atheris.Setup(args, wrap(one_input, outdir))
    atheris.Fuzz()
