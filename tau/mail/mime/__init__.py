"""Parse a message once, at delivery, into everything IMAP needs.

RFC 3501 (ENVELOPE, BODY, BODYSTRUCTURE, BODY[section]), RFC 5322, RFC 2045-2047,
RFC 2231.  Rendered strings (``envelope``, ``body``, ``bodystructure``) go on
the wire encoded as UTF-8; literal lengths inside them count UTF-8 octets.
"""

from .parse import (
    ParsedMessage,
    PartInfo,
    from_json,
    parse_message,
    part_by_section,
    to_json,
)
from .sections import filter_header_fields, section_range

__all__ = [
    "ParsedMessage",
    "PartInfo",
    "filter_header_fields",
    "from_json",
    "parse_message",
    "part_by_section",
    "section_range",
    "to_json",
]
