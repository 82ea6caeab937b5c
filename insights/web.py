"""`clickstream dashboard`: the live page and its JSON, under uvicorn.

The page is ours and self-contained (HTML, CSS, and a script that draws its chart as SVG):
nothing is loaded from elsewhere, and the Content-Security-Policy says so to the browser.
Bound to loopback by default; any other address requires a token, given once as `?token=`
(which opens a session: a same-site cookie of its own, expiring) or as `Authorization:
Bearer`. On loopback, without a token, only requests naming a loopback host are answered: a
page on another site cannot reach it by pointing its own name at 127.0.0.1 (DNS rebinding).
"""

from __future__ import annotations

import hmac
import secrets
import time
import unicodedata
from importlib import resources
from typing import Any, Final
from urllib.parse import urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from clickstream.kernel.logging import get_logger
from insights.dashboard import READ_ERRORS, Dashboard
from insights.heatmap import WIDTH_CLASSES
from insights.report import RequestError
from insights.world_map import world_map

log = get_logger(component="dashboard")

COOKIE: Final = "clickstream_dashboard"
SESSION_SECONDS: Final = 12 * 3600
"""How long a session the token opened lasts; then the printed URL opens a new one."""
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
ASSETS: Final = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "site.js": "text/javascript; charset=utf-8",
    "site.css": "text/css; charset=utf-8",
}
SECURITY_HEADERS: Final = {
    # Everything from this server; images may be the heatmap's blob URLs.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _asset(name: str) -> bytes:
    return resources.files("insights").joinpath(f"static/{name}").read_bytes()


class TokenGate(BaseHTTPMiddleware):
    """Every request but `/health` carries the token (a header) or a session's cookie. The
    token in `?token=` opens a session: its cookie is a random id of its own, never the
    token, expiring after SESSION_SECONDS, and the redirect takes the token out of the
    address bar."""

    def __init__(self, app: Any, token: str) -> None:
        super().__init__(app)
        self._token = token
        self._sessions: dict[str, float] = {}

    def _matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self._token.encode())

    def _in_session(self, cookie: str | None) -> bool:
        if cookie is None:
            return False
        now = time.monotonic()
        self._sessions = {sid: ends for sid, ends in self._sessions.items() if ends > now}
        return any(hmac.compare_digest(cookie.encode(), sid.encode()) for sid in self._sessions)

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.url.path == "/health":
            return await call_next(request)
        bearer = request.headers.get("authorization", "")
        if self._matches(bearer.removeprefix("Bearer ")) or self._in_session(
            request.cookies.get(COOKIE)
        ):
            return await call_next(request)
        if self._matches(request.query_params.get("token")):
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + ("?" + urlencode(rest) if rest else "")
            redirect = RedirectResponse(target, status_code=303)
            session = secrets.token_urlsafe(32)
            self._sessions[session] = time.monotonic() + SESSION_SECONDS
            redirect.set_cookie(
                COOKIE, session, max_age=SESSION_SECONDS, httponly=True, samesite="strict"
            )
            return redirect
        return PlainTextResponse(
            "a token is required: open the URL `clickstream dashboard` printed", status_code=401
        )


class LoopbackHostsOnly(BaseHTTPMiddleware):
    """Requests whose Host is not a loopback name are refused (DNS rebinding)."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if host_name(request.headers.get("host", "")) not in LOOPBACK_HOSTS:
            return PlainTextResponse("unknown host", status_code=421)
        return await call_next(request)


def host_name(header: str) -> str:
    """The name in a Host header, without its port (`[::1]:8050` is `::1`)."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def has_control_characters(text: str) -> bool:
    return any(unicodedata.category(character) == "Cc" for character in text)


def create_app(dashboard: Dashboard, *, token: str | None) -> Starlette:
    pages = {"/": _asset("site.html"), "/operator": _asset("dashboard.html")}
    assets = {name: _asset(name) for name in ASSETS}

    async def index(request: Request) -> Response:
        return Response(
            pages[request.url.path], media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS
        )

    async def site_report(request: Request) -> Response:
        params: dict[str, list[str]] = {}
        for name, value in request.query_params.multi_items():
            params.setdefault(name, []).append(value)
        try:
            figures = await run_in_threadpool(dashboard.report, params)
        except RequestError as exc:  # what was asked is wrong: say what, in its own words
            return _problem(400, str(exc))
        except READ_ERRORS as exc:
            log.warning("report failed", error=str(exc)[:1000])
            return _problem(502, "reading the archive failed; the dashboard's log says why")
        return JSONResponse(figures, headers=SECURITY_HEADERS)

    async def flow(request: Request) -> Response:
        kind = request.url.path.removeprefix("/api/")
        params: dict[str, list[str]] = {}
        for name, value in request.query_params.multi_items():
            params.setdefault(name, []).append(value)
        try:
            figures = await run_in_threadpool(dashboard.flow, kind, params)
        except RequestError as exc:
            return _problem(400, str(exc))
        except READ_ERRORS as exc:
            log.warning(f"{kind} failed", error=str(exc)[:1000])
            return _problem(502, "reading the archive failed; the dashboard's log says why")
        return JSONResponse(figures, headers=SECURITY_HEADERS)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in assets:
            return PlainTextResponse("not found", status_code=404)
        return Response(assets[name], media_type=ASSETS[name], headers=SECURITY_HEADERS)

    async def snapshot(request: Request) -> Response:
        figures = await run_in_threadpool(dashboard.snapshot)
        return JSONResponse(figures, headers=SECURITY_HEADERS)

    async def heatmap(request: Request) -> Response:
        page = request.query_params.get("page", "").strip()
        width = request.query_params.get("width") or None
        if not page:
            return _problem(400, "page: which page's heatmap? (?page=/path)")
        if has_control_characters(page) or len(page) > 4096:
            return _problem(400, "page: not a page's address")
        if width is not None and width not in {name for name, _ in WIDTH_CLASSES}:
            return _problem(400, f"width {width!r}: expected small, medium or large")
        try:
            figures, png = await run_in_threadpool(dashboard.heatmap, page, width)
        except READ_ERRORS as exc:
            # The why names SQL, buckets and endpoints: the log has it, the answer does not.
            log.warning("heatmap failed", page=page, error=str(exc)[:1000])
            return _problem(502, "reading the archive failed; the dashboard's log says why")
        if request.url.path.endswith(".png"):
            if not png:
                return _problem(404, f"no clicks on {figures['page']} in the window")
            return Response(png, media_type="image/png", headers=SECURITY_HEADERS)
        return JSONResponse(figures, headers=SECURITY_HEADERS)

    async def world(request: Request) -> Response:
        shapes = world_map()
        if shapes is None:
            return _problem(404, "the world map is not installed: scripts/bootstrap.sh installs it")
        # The same bytes until the package is bumped: the browser may keep them a day.
        headers = {**SECURITY_HEADERS, "Cache-Control": "private, max-age=86400"}
        return Response(shapes, media_type="application/json", headers=headers)

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    # With a token, a rebound name gets nowhere (the session's cookie belongs to the real
    # name); without one, only loopback names are answered.
    middleware = [Middleware(TokenGate, token=token)] if token else [Middleware(LoopbackHostsOnly)]
    return Starlette(
        routes=[
            Route("/", index),
            Route("/operator", index),
            Route("/api/report", site_report),
            Route("/api/funnel", flow),
            Route("/api/paths", flow),
            Route("/api/retention", flow),
            Route("/static/world.json", world),
            Route("/static/{name}", asset),
            Route("/api/snapshot", snapshot),
            Route("/api/heatmap", heatmap),
            Route("/api/heatmap.png", heatmap),
            Route("/health", health),
        ],
        middleware=middleware,
    )


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=SECURITY_HEADERS)


def serve(dashboard: Dashboard, *, host: str, port: int, token: str | None) -> None:
    config = uvicorn.Config(
        create_app(dashboard, token=token),
        host=host,
        port=port,
        lifespan="off",
        access_log=False,
        log_config=None,  # our structlog set-up owns logging (JSON on stderr)
        server_header=False,
    )
    # The site owner's view's reading opens while the server starts: the first look at it
    # finds its figures ready (`insights.readings`).
    dashboard.keep_readings()
    try:
        uvicorn.Server(config).run()
    finally:
        dashboard.close()
