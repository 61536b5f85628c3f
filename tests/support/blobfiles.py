"""What a local blob folder stores, whichever way: blob files, and live records of the packs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tau.blobs.pack import PackStore


def stored_blobs(root: Any) -> list[str]:
    """Paths of blob files (``tmp/`` included: a leftover there counts) and ``packs:KEY`` for each
    blob live in a pack, as a process opening the folder now would find them."""
    root = Path(root)
    files = [os.path.join(d, f) for d, _, names in os.walk(root) for f in names
             if Path(d) != root / "packs"]
    return sorted(files + [f"packs:{key}" for key in PackStore(root / "packs").live_keys()])
