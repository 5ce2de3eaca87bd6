"""Posted multipart forms (a file upload): read within a size limit, then checked for CSRF
exactly as `digest.web.forms.posted_form` checks an urlencoded one.

A body whose declared length is over the limit is refused with 413 before a byte of it is
read; the bytes are counted while reading too, since a client may not declare a length
(chunked) or declare a false one. Only then is the body parsed, at most one file and a few
fields, so the parser never sees more than the limit. Its errors' texts are bokmål
messages, shown in the page's language (`digest.web.admin.common.in_language`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from digest.core.i18n import N_
from digest.web.forms import Form, FormError, check_csrf, read_body

# A roster of 2 MB (`subscribers.ROSTER_LIMIT`) carried back compressed and in base64 is at
# most about 2.7 MB; the rest is room for the other fields and the multipart framing.
MAX_UPLOAD_BYTES = 3_000_000
MAX_FIELDS = 10


class TooLarge(FormError):
    title = N_("For stor fil")

    def __init__(self) -> None:
        super().__init__(413, N_("Filen er for stor. Del den opp i flere filer og prøv igjen."))


@dataclass(slots=True)
class Upload:
    """A posted multipart form: its fields (as `Form`) and the one file, if any was sent."""

    form: Form = field(default_factory=dict)
    file_name: str = ""
    file: bytes | None = None


async def _once(body: bytes) -> AsyncGenerator[bytes]:
    yield body


async def posted_upload(request: Request) -> Upload:
    """The multipart form, read within `MAX_UPLOAD_BYTES` and checked for CSRF."""
    body = await read_body(request, MAX_UPLOAD_BYTES, TooLarge())
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise FormError(400, N_("Skjemaet ble ikke sendt som et filopplastingsskjema."))
    parser = MultiPartParser(
        request.headers,
        _once(body),
        max_files=1,
        max_fields=MAX_FIELDS,
        max_part_size=MAX_UPLOAD_BYTES,
    )
    try:
        parsed = await parser.parse()
    except MultiPartException:
        raise FormError(
            400, N_("Skjemaet kunne ikke leses. Last siden på nytt og prøv igjen.")
        ) from None
    upload = Upload()
    try:
        for name, value in parsed.multi_items():
            if isinstance(value, UploadFile):
                upload.file_name = value.filename or ""
                upload.file = await value.read()
            else:
                upload.form.setdefault(name, []).append(value)
    finally:
        await parsed.close()
    check_csrf(request, (upload.form.get("csrf") or [""])[0])
    return upload


PostedUpload = Annotated[Upload, Depends(posted_upload)]
