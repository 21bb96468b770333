"""The operator's console: its static pages, the session cookie, and browser calls.

The pages (`server/console/`, no build step, nothing from a CDN) read the call records from
`GET /calls` and `GET /calls/{call_sid}` with the same bearer token.
"""

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from loguru import logger

from server.browser_call import new_browser_call
from server.console_auth import COOKIE, COOKIE_MAX_AGE_SECS, ConsoleAuth
from server.stream_tokens import StreamTokens

CONSOLE_DIR = Path(__file__).parent / "console"
# The page's files, by URL name: only these are served.
_FILES = {path.name: path for path in CONSOLE_DIR.iterdir() if path.name != "index.html"}
_NO_TOKEN = {"error": "missing or wrong bearer token (API_TOKEN)"}


def console_routes(
    auth: ConsoleAuth,
    tokens: StreamTokens,
    pipelines: Callable[[], list[str]],
    refusal: Callable[[], Awaitable[str | None]] | None = None,
) -> APIRouter:
    """`/console` and its endpoints.

    `pipelines()`: the pipelines a browser call may choose; `refusal()`: why the server takes
    no new call now, if it does not (full, shutting down, or its database is down).
    """
    router = APIRouter()

    @router.get("/console")
    async def page() -> Response:
        if not auth.enabled:
            return PlainTextResponse("the console is off: set API_TOKEN", status_code=404)
        return FileResponse(CONSOLE_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @router.get("/console/static/{name}")
    async def static(name: str) -> Response:
        if not auth.enabled or name not in _FILES:
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(_FILES[name], headers={"Cache-Control": "no-cache"})

    @router.post("/console/session")
    async def log_in(request: Request) -> Response:
        """The token, given once as a bearer, kept in the console's cookie."""
        if not auth.bearer_ok(request):
            logger.warning("console log-in refused: wrong token")
            return JSONResponse(_NO_TOKEN, status_code=401)
        response = Response(status_code=204)
        token = request.headers["Authorization"].partition(" ")[2].strip()
        response.set_cookie(
            COOKIE,
            token,
            max_age=COOKIE_MAX_AGE_SECS,
            path="/",
            samesite="strict",
            secure=auth.secure_cookie,
        )
        return response

    @router.delete("/console/session")
    async def log_out() -> Response:
        response = Response(status_code=204)
        response.delete_cookie(COOKIE, path="/", samesite="strict", secure=auth.secure_cookie)
        return response

    @router.get("/console/pipelines")
    async def served(request: Request) -> JSONResponse:
        if not auth.bearer_ok(request):
            return JSONResponse(_NO_TOKEN, status_code=401)
        return JSONResponse({"pipelines": pipelines()})

    @router.post("/console/calls")
    async def browser_call(request: Request) -> JSONResponse:
        """A call from the page: its stream path, for the browser's WebSocket."""
        if not auth.bearer_ok(request):
            return JSONResponse(_NO_TOKEN, status_code=401)
        try:
            body = await request.json()
        except ValueError:
            body = None
        choices = pipelines()
        pipeline = body.get("pipeline") if isinstance(body, dict) else None
        if pipeline not in choices:
            error = f"'pipeline' must be one of {', '.join(choices)}; got {pipeline!r:.60}"
            return JSONResponse({"error": error}, status_code=400)
        if refusal and (reason := await refusal()):
            return JSONResponse({"error": f"no new calls now: {reason}"}, status_code=503)
        call = new_browser_call(tokens, pipeline)
        logger.info(f"browser call {call.call_sid} to pipeline {pipeline!r} issued")
        return JSONResponse(call.as_json(), status_code=201)

    return router
