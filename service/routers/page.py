"""GET /: one self-contained page for people (the study table and plot, a photo tried against every variant,
live load). It is static HTML, CSS and script with no external requests, and uses only the public API."""

from __future__ import annotations

import functools
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["page"])

PAGE = Path(__file__).resolve().parent.parent / "static" / "index.html"


@functools.lru_cache(maxsize=1)
def _page() -> str:
    return PAGE.read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse(_page(), headers={"Cache-Control": "no-cache"})
