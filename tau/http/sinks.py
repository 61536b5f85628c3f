"""What every streamed request-body sink shares (``request.content`` replaced by a site hook).

twisted.web treats ``request.content`` as a file: after the body it seeks to 0, reads it back to
parse a form, and closes it. A sink consumes the body as it is written, so it reads as empty:
no form parsing, nothing kept for it.
"""

from __future__ import annotations


class WriteOnlyBody:
    """Base of body sinks: subclasses implement ``write``; reading gives nothing back."""

    def tell(self) -> int:
        return 0  # keeps twisted.web from parsing the body as a form

    def seek(self, offset: int, whence: int = 0) -> None:
        pass

    def read(self, size: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        pass
