"""The public archive of sent digests, its Atom feeds and the embeddable list of a topic's
latest changes: what anyone may read without giving an address."""

from __future__ import annotations

from fastapi import APIRouter

from digest.web.archive import feeds, pages, snippet

router = APIRouter()
# The feeds first: /arkiv/feed.atom is not a frequency's page.
router.include_router(feeds.router)
router.include_router(snippet.router)
router.include_router(pages.router)
