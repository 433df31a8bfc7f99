"""The dashboard at ``/ui``: one static page that reads the API with the caller's own key.

The page holds no data: every figure on it comes from the API's read endpoints, called from
the browser with the key the user enters (kept in the tab's sessionStorage only), so the
dashboard sees exactly what that key may see. It never writes.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from service.errors import not_found

UI_DIR = Path(__file__).resolve().parents[2] / "ui"
# Only these files are served: a fixed map, so no request path ever reaches the file system.
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
# Scripts and styles from this origin only, no inline code: data the page shows (names,
# messages) can never run as script even if it contains markup.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(prefix="/ui", tags=["dashboard"], include_in_schema=False)


@router.get("")
def dashboard() -> FileResponse:
    return FileResponse(UI_DIR / "index.html", media_type="text/html", headers=HEADERS)


@router.get("/")
def dashboard_slash() -> RedirectResponse:
    return RedirectResponse("/ui", status_code=308)


@router.get("/{asset}")
def dashboard_asset(asset: str) -> FileResponse:
    if asset not in ASSETS:
        raise not_found(f"dashboard file {asset!r}")
    return FileResponse(UI_DIR / asset, media_type=ASSETS[asset], headers=HEADERS)
