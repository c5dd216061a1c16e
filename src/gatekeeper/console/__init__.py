"""The admin console: a static web page on the admin listener, under /console/.

The page is only files (HTML, CSS, ES modules, and uPlot in `static/vendor/`, copied from
npm by `make console-assets`). It holds no data and no secret, so it is served without an
admin key, like the OpenAPI document; everything it shows comes from the documented admin
API, called by the browser with the key the operator pasted (kept in `sessionStorage`,
sent as `Authorization: Bearer`).

Only GET (and HEAD) of the files under `static/` are served, each with a strict Content
Security Policy (no inline script or style, no other origin), `X-Frame-Options: DENY`,
`nosniff` and no referrer. A path that leaves `static/` (`..`, an encoded `..`, a
symlink), names a hidden file or a type not in `CONTENT_TYPES` is a 404.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from gatekeeper.observability import REQUEST_ID
from gatekeeper.replies import error_response

STATIC = Path(__file__).resolve().parent / "static"
PREFIX = "/console"

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# The only file types served; anything else under static/ is a 404.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


def _secured(response: web.StreamResponse, html: bool) -> web.StreamResponse:
    response.headers.update(SECURITY_HEADERS)
    # The page itself is never stored; the assets are revalidated (ETag, Last-Modified).
    response.headers["Cache-Control"] = "no-store" if html else "no-cache"
    return response


def _not_found(request: web.Request) -> web.StreamResponse:
    response = error_response(404, "not_found", f"Not Found: {request.method} {request.path}.",
                              request.get(REQUEST_ID, ""))
    return _secured(response, html=False)


def _file(name: str) -> Path | None:
    """The file under STATIC that `name` (the decoded path after /console/) names, or
    None when it leaves STATIC, is hidden, is not a file or is of a type not served."""
    if not name or "\\" in name or "\x00" in name:
        return None
    parts = name.split("/")
    if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        return None
    path = (STATIC / name).resolve()
    if not path.is_relative_to(STATIC) or not path.is_file():
        return None
    if path.suffix not in CONTENT_TYPES:
        return None
    return path


async def redirect(_request: web.Request) -> web.StreamResponse:
    """GET /console: to /console/ (relative URLs in the page resolve under it)."""
    raise web.HTTPFound(f"{PREFIX}/", headers=SECURITY_HEADERS)


async def serve(request: web.Request) -> web.StreamResponse:
    """GET /console/ and /console/{name}: the page and its files."""
    name = request.match_info.get("name", "") or "index.html"
    path = _file(name)
    if path is None:
        return _not_found(request)
    response = web.FileResponse(path, headers={"Content-Type": CONTENT_TYPES[path.suffix]})
    return _secured(response, html=path.suffix == ".html")


def add_routes(app: web.Application) -> None:
    """Install the console's routes on the admin listener's application."""
    app.router.add_get(PREFIX, redirect)
    app.router.add_get(f"{PREFIX}/", serve)
    app.router.add_get(PREFIX + "/{name:.+}", serve)
