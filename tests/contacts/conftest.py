"""In-process TauContacts for tests/contacts (helpers live in ``tests.support.contacts``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.contacts import make_book


@pytest.fixture
def book(tmp_path: Path, db_url: str) -> Any:
    b = make_book(tmp_path / "tau", db_url)
    yield b
    b.registry.db.close()
