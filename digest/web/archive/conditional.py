"""Conditional GET for the feeds and the snippet: a strong ETag (a hash of the body, so it
changes whenever what is shown changes: a new change, an edited title or note, a hidden
one), Last-Modified from the latest time that changed what is shown (the caller's), and
304 with no body when the client has it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from starlette.datastructures import Headers
from starlette.responses import Response

MAX_AGE = 300  # seconds a feed reader or a proxy may reuse an answer without asking


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)


def _matches(header: str, etag: str) -> bool:
    """If-None-Match holds `etag` (compared weakly, as RFC 9110 says for this header)."""
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header[:4000].split(","))


def settled(last_modified: datetime | None, now: datetime) -> datetime | None:
    """`last_modified` if its second is over, else None: an edit later in the same second
    would leave an HTTP date (whole seconds) unmoved, so none is given or trusted then."""
    if last_modified is None:
        return None
    second = last_modified.astimezone(UTC).replace(microsecond=0)
    return last_modified if second < now.astimezone(UTC).replace(microsecond=0) else None


def _unchanged_since(header: str, last_modified: datetime | None) -> bool:
    if last_modified is None:
        return False
    try:
        since = parsedate_to_datetime(header[:100])
    except (TypeError, ValueError, IndexError):
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    if since > datetime.now(UTC):  # a date in the future is invalid (RFC 9110, 13.1.3)
        return False
    return last_modified.replace(microsecond=0) <= since


def not_modified(headers: Headers, etag: str, last_modified: datetime | None) -> bool:
    """Whether the client's copy is current: If-None-Match decides when sent, else
    If-Modified-Since (RFC 9110, 13.2.2)."""
    if "if-none-match" in headers:
        return _matches(headers["if-none-match"], etag)
    if "if-modified-since" in headers:
        return _unchanged_since(headers["if-modified-since"], last_modified)
    return False


def cached_response(
    request_headers: Headers,
    body: bytes,
    media_type: str,
    last_modified: datetime | None,
    extra: dict[str, str] | None = None,
) -> Response:
    """`body` for anyone to cache a few minutes and fetch from any origin, or a 304."""
    etag = etag_of(body)
    last_modified = settled(last_modified, datetime.now(UTC))
    headers = {
        "ETag": etag,
        "Cache-Control": f"public, max-age={MAX_AGE}",
        "Access-Control-Allow-Origin": "*",
        **(extra or {}),
    }
    if last_modified is not None:
        headers["Last-Modified"] = http_date(last_modified)
    if not_modified(request_headers, etag, last_modified):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)
