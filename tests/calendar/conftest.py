"""In-process TauCalendar for tests/calendar (helpers live in ``tests.support.calendars``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.calendars import make_cal


@pytest.fixture
def cal(tmp_path: Path, db_url: str) -> Any:
    c = make_cal(tmp_path / "tau", db_url)
    yield c
    c.registry.db.close()
