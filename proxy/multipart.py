"""Find one text field of a multipart/form-data body, so it can be read or replaced in place.

Uploads (audio to transcribe, images to edit) name their model in a form field. The gateway
only needs that field: it locates its value without decoding the other parts, so a body whose
model needs no rewrite goes upstream byte for byte, and one that does changes only there.
(mitmproxy's own multipart decoder re-joins lines and drops part headers, so it cannot.)
"""

from __future__ import annotations

import re

BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
FIELD_NAME = re.compile(rb'^content-disposition:[^\r\n]*;\s*name="([^"]*)"', re.I | re.M)
FILE_PART = re.compile(rb";\s*filename\*?=", re.IGNORECASE)


def is_multipart(content_type: str) -> bool:
    """Tell whether a Content-Type header is multipart/form-data."""
    return content_type[:19].lower() == "multipart/form-data"


def find_field(content_type: str, body: bytes, name: bytes) -> tuple[int, int] | None:
    """Return where the value of the text field `name` lies in the body, or None.

    Parts are walked in order and the walk stops at the field: clients send form fields before
    files (httpx, and so the openai client, always do), so a large upload is not scanned.
    """
    match = BOUNDARY.search(content_type)
    if match is None:
        return None
    boundary = (match.group(1) or match.group(2)).encode("latin-1")
    delimiter = b"\r\n--" + boundary
    # The first delimiter may open the body, without the CRLF the others have.
    position = body.find(delimiter[2:])
    while position != -1:
        after = position + len(delimiter) - 2
        if body[after : after + 2] == b"--":  # the closing delimiter
            return None
        line_end = body.find(b"\r\n", after)
        headers_end = body.find(b"\r\n\r\n", line_end) if line_end != -1 else -1
        if headers_end == -1:
            return None
        value_start = headers_end + 4
        value_end = body.find(delimiter, value_start)
        if value_end == -1:
            return None
        headers = body[line_end + 2 : headers_end]
        field = FIELD_NAME.search(headers)
        if field is not None and field.group(1) == name and not FILE_PART.search(headers):
            return value_start, value_end
        position = value_end + 2
    return None


def replace_span(body: bytes, span: tuple[int, int], value: bytes) -> bytes:
    """Return the body with the bytes in `span` replaced by `value`."""
    start, end = span
    return body[:start] + value + body[end:]
