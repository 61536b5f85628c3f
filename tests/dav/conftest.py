"""The DAV tests drive the core through TauCloud's provider: reuse tests/files/conftest.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_FILES = Path(__file__).parent.parent / "files" / "conftest.py"
_spec = importlib.util.spec_from_file_location("tau_files_conftest", _FILES)
assert _spec is not None and _spec.loader is not None
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)

cloud = _mod.cloud
ALICE, BOB, PASSWORD = _mod.ALICE, _mod.BOB, _mod.PASSWORD
