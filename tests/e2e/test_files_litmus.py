"""litmus (Debian package) against the real daemon: basic, copymove, props and locks must all pass."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.daemon import TauDaemon

pytestmark = pytest.mark.e2e
ALICE, PASSWORD = "alice@example.test", "secret-Pa55"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):
    d = TauDaemon(tmp_path_factory.mktemp("litmus"), listeners=("http",),
                  extra={"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0"}).init()
    d.add_user(ALICE, PASSWORD)
    d.start()
    yield d
    d.stop()


@pytest.mark.skipif(shutil.which("litmus") is None, reason="litmus not installed (apt-get install litmus)")
def test_litmus_suites_pass(daemon: TauDaemon, tmp_path: Path) -> None:
    url = f"{daemon.url}/dav/files/{ALICE}/"
    result = subprocess.run(["litmus", "-k", url, ALICE, PASSWORD], capture_output=True, text=True, timeout=240,
                            cwd=tmp_path, env={"TESTS": "basic copymove props locks", "PATH": "/usr/bin:/bin"})
    out = result.stdout + result.stderr
    found = re.findall(r"summary for `(\w+)': of (\d+) tests run: \d+ passed, (\d+) failed", out)
    summaries = {suite: (int(run), int(failed)) for suite, run, failed in found}
    for suite in ("basic", "copymove", "props", "locks"):
        assert suite in summaries, out[-3000:]
        run, failed = summaries[suite]
        assert failed == 0 and run > 0, f"{suite}: {failed} of {run} failed\n{out[-3000:]}"
    assert "WARNING" not in out, out
