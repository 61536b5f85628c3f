"""The SFU: ``supervisor`` (daemon side, no aiortc) and ``worker`` (the media process)."""
