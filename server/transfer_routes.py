"""What Twilio tells the server about a transfer: a cold dial's outcome, a warm dial's status.

Both are signed webhooks whose URLs the server gave Twilio (the call, pipeline and target in
the query), so any of its processes can answer them. Nobody answering → `fallback`.
"""

import secrets

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from loguru import logger
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

from pipelines.declaration import Declaration
from pipelines.transfer import TransferTarget
from server import transfer_twiml
from server.transfer import DIALED_PATH, STATUS_PATH, back_to_bot_url
from server.twilio_urls import webhook_url

ANSWERED = ("answered", "completed", "in-progress")  # a dial's or a call's status once answered


def transfer_routes(
    public_url: str, validator: RequestValidator, declarations: dict[str, Declaration]
) -> APIRouter:
    """The two webhooks; Twilio REST through `request.app.state.twilio`."""
    router = APIRouter()

    async def signed(request: Request, key: str) -> tuple[str, TransferTarget] | None:
        """The form's `key` (a status) and the target of a signed webhook naming a declared one."""
        form = {name: str(value) for name, value in (await request.form()).items()}
        url = webhook_url(public_url, request.url.path, request.url.query)
        if not validator.validate(url, form, request.headers.get("X-Twilio-Signature", "")):
            logger.warning(f"rejected POST {request.url.path}: missing or wrong signature")
            return None
        declaration = declarations.get(request.query_params.get("pipeline", ""))
        name = request.query_params.get("target")
        targets = declaration.transfers if declaration else ()
        target = next((t for t in targets if t.name == name), None)
        return (form.get(key, ""), target) if target else None

    def on_no_answer(request: Request, target: TransferTarget, status: str) -> str:
        pipeline = request.query_params["pipeline"]
        logger.info(f"the transfer to {target.name} ended {status}: fallback {target.fallback!r}")
        back = back_to_bot_url(public_url, pipeline, target.name, secrets.token_hex(4))
        return transfer_twiml.fallback(target, back, declarations[pipeline].bot.language)

    @router.post(DIALED_PATH)
    async def dialed(request: Request) -> Response:
        if not (checked := await signed(request, "DialCallStatus")):
            return _refused()
        status, target = checked
        if status in ANSWERED:  # they talked; the caller's call ends with the dial
            twiml = VoiceResponse().to_xml()
        else:
            twiml = on_no_answer(request, target, status)
        return Response(content=twiml, media_type="application/xml")

    @router.post(STATUS_PATH)
    async def status(request: Request) -> Response:
        if not (checked := await signed(request, "CallStatus")):
            return _refused()
        status, target = checked
        if status in ANSWERED:
            logger.info(f"{target.name} answered the transfer ({status})")
        else:
            caller = request.query_params.get("call", "")
            twiml = on_no_answer(request, target, status)
            await request.app.state.twilio.redirect(caller, twiml)
        return Response(status_code=204)

    return router


def _refused() -> JSONResponse:
    return JSONResponse({"error": "invalid signature or transfer target"}, status_code=403)
