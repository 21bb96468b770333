"""The operator API: place an outbound call, follow it. Bearer `API_TOKEN`; off without one."""

import hmac
import json
import re
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from loguru import logger
from pydantic import ValidationError

from pipelines.declaration import Declaration
from pipelines.routing import Routes
from pipelines.variables import VariablesError, check
from server.outbound import OutboundRequest, create_arguments, outcome, variables_json
from server.twilio_rest import TransientError, TwilioCalls, TwilioRefused

_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
_HOW_TO = {
    "to": "an E.164 number like +15551230000, or a sip: address",
    "pipeline": "the name of a pipeline file",
    "variables": 'an object of names to text, e.g. {"name": "Ada"}',
}


def calls_api(
    *,
    token: str,
    public_url: str,
    phone_number: str | None,
    declarations: dict[str, Declaration],
    routes: Routes,
    twilio: Callable[[], TwilioCalls],
    refusal: Callable[[], Awaitable[str | None]],
) -> APIRouter:
    """`POST /calls` and `GET /calls/{call_sid}/status`, for requests bearing `token`.

    Calls come from each pipeline's `[outbound] caller_id`, else `phone_number`
    (TWILIO_PHONE_NUMBER); `refusal()` says why no call can be placed now (a full server, a
    drain). A pipeline with no number to call from places no calls (the records and the
    console, which the same token opens, work all the same): said at start-up, and in the 503.
    """
    if not phone_number and (lacking := _without_caller_id(declarations)):
        logger.warning(f"outbound calls are off for pipelines {lacking}: {_NO_NUMBER}")
    router = APIRouter()
    expected = f"Bearer {token}".encode()

    def unauthorized(request: Request) -> JSONResponse | None:
        given = request.headers.get("Authorization", "").encode()
        if hmac.compare_digest(given, expected):
            return None
        logger.warning(f"rejected {request.method} {request.url.path}: missing or wrong token")
        headers = {"WWW-Authenticate": "Bearer"}
        return JSONResponse({"error": "missing or wrong bearer token"}, 401, headers=headers)

    @router.post("/calls")
    async def place(request: Request) -> JSONResponse:
        if denied := unauthorized(request):
            return denied
        try:
            call = OutboundRequest.model_validate(json.loads(await request.body() or b"null"))
            declaration = _pipeline(call, declarations, routes)
            check(declaration, call.variables)
            variables_json(call.variables)
        except (ValueError, ValidationError) as e:  # JSON, body, pipeline or variables
            return _bad_request(e)
        if reason := await refusal():
            return JSONResponse({"error": f"no call placed: {reason}"}, status_code=503)
        from_ = declaration.outbound.caller_id or phone_number
        if not from_:
            error = f"no call placed: pipeline {declaration.name!r}: {_NO_NUMBER}"
            return JSONResponse({"error": error}, status_code=503)
        arguments = create_arguments(call, pipeline=declaration, from_=from_, public_url=public_url)
        try:
            call_sid = await twilio().place(**arguments)
        except (TwilioRefused, TransientError) as e:
            logger.error(f"outbound call to {call.to} not placed: {e}")
            return JSONResponse({"error": str(e)}, status_code=502)
        with logger.contextualize(call_sid=call_sid):
            logger.info(f"placed an outbound call to {call.to} from {from_}: {declaration.name!r}")
        return JSONResponse({"call_sid": call_sid}, status_code=201)

    @router.get("/calls/{call_sid}/status")
    async def follow(request: Request, call_sid: str) -> JSONResponse:
        if denied := unauthorized(request):
            return denied
        if not _CALL_SID.match(call_sid):
            return JSONResponse({"error": "not a call SID (CA + 32 hex digits)"}, 400)
        try:
            state = await twilio().fetch(call_sid)
        except TwilioRefused as e:
            return JSONResponse({"error": str(e)}, 404 if e.status == 404 else 502)
        except TransientError as e:
            return JSONResponse({"error": str(e)}, status_code=502)
        return JSONResponse(
            {
                "call_sid": state.call_sid,
                "status": state.status,
                "answered_by": state.answered_by,
                "direction": state.direction,
                "to": state.to,
                "duration": state.duration,
                "outcome": outcome(state.status, state.answered_by),
            }
        )

    return router


def _pipeline(
    call: OutboundRequest, declarations: dict[str, Declaration], routes: Routes
) -> Declaration:
    """The pipeline asked for (or the default), if it can place calls; ValueError if not."""
    name = call.pipeline or routes.default
    if name not in routes.served:
        raise ValueError(
            f"pipeline: {name!r} is not a pipeline this server runs; choose one of: "
            f"{', '.join(sorted(routes.served))}"
        )
    declaration = declarations[name]
    if not declaration.bot.outbound_greeting:
        raise ValueError(
            f"pipeline: {name!r} cannot place calls: {declaration.path.name} declares no "
            "[bot] outbound_greeting"
        )
    return declaration


def _bad_request(error: Exception) -> JSONResponse:
    if isinstance(error, ValidationError):
        problems = [_describe(issue) for issue in error.errors()]
    elif isinstance(error, json.JSONDecodeError):
        problems = [f"the body is not JSON: {error.msg}"]
    elif isinstance(error, VariablesError):
        problems = [f"variables: {error}"]
    else:
        problems = [str(error)]
    return JSONResponse({"error": "; ".join(problems)}, status_code=400)


def _describe(issue: dict) -> str:
    key = ".".join(str(part) for part in issue["loc"]) or "body"
    if issue["type"] == "missing":
        return f"{key}: required, but missing"
    if issue["type"] == "extra_forbidden":
        return f"{key}: unknown field; the fields are: {', '.join(_HOW_TO)}"
    how = _HOW_TO.get(str(issue["loc"][0]) if issue["loc"] else "", "")
    return f"{key}: must be {how} (got {issue.get('input')!r})" if how else f"{key}: {issue['msg']}"


_NO_NUMBER = "TWILIO_PHONE_NUMBER is not set and [outbound] caller_id is not declared"


def _without_caller_id(declarations: dict[str, Declaration]) -> list[str]:
    return sorted(
        name
        for name, declaration in declarations.items()
        if declaration.bot.outbound_greeting and not declaration.outbound.caller_id
    )
