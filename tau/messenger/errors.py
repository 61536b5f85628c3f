"""The one exception the messenger's domain code raises for a refused request."""

from __future__ import annotations


class MessengerError(Exception):
    """A refused operation: HTTP ``status`` and snake_case ``code`` for the API or an error frame."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
