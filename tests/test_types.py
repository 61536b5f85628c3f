"""The typed core stays ``mypy --strict`` clean (settings in setup.cfg ``[mypy]``).

``STRICT_PATHS`` grows as more of tau is typed: imported modules are read for their types but
only these paths are reported (``follow_imports = silent``), so each must be clean on its own.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

STRICT_PATHS = [
    "tau/app",
    "tau/registry",
    "tau/auth",
    "tau/storage",
    "tau/config.py",
    "tau/config_sections.py",
    "tau/clock.py",
    "tau/net",
    "tau/bus",
    "tau/blobs",
    "tau/atrest",
    "tau/privacy.py",
    "tau/mail/errors.py",
    "tau/mail/compose.py",
    "tau/mail/send.py",
    "tau/mail/smime.py",
    "tau/mail/smime_api.py",
    "tau/mail/smime_cms.py",
    "tau/mail/smime_inbound.py",
    "tau/mail/smime_read.py",
    "tau/mail/smime_send.py",
    "tau/mail/smime_store.py",
    "tau/calendar/domain.py",
    "tau/contacts/domain.py",
    "tau/contacts/store.py",
    "tau/contacts/cardstore.py",
    "tau/contacts/vcard.py",
    "tau/contacts/search.py",
    "tau/messenger/domain.py",
    "tau/files/service_tree.py",
    "tau/connect/calls.py",
    "tau/flows/service.py",
    "tau/clientsetup",
    "tau/client/sessions.py",
    "tau/client/device.py",
    "tau/cli/dnsrecords.py",
    "tau/cli/dnslive.py",
    "tau/cli/check_links.py",
]


def test_mypy_strict_finds_nothing(tmp_path: Path) -> None:
    mypy = shutil.which("mypy", path=str(Path(sys.executable).parent)) or shutil.which("mypy")
    if mypy is None:
        pytest.skip("mypy is not installed (it is in the dev extra)")
    result = subprocess.run([mypy, "--strict", "--cache-dir", str(tmp_path / "mypy"), *STRICT_PATHS], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
