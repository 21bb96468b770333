"""Twilio's reports on calls: an outbound call's progress, who answered it, its recording."""

import re

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from loguru import logger
from twilio.request_validator import RequestValidator

from server.answered_by import AnsweredByBox
from server.signed_requests import signed_form
from server.twilio_urls import AMD_PATH, RECORDING_PATH, STATUS_PATH

_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")


def twilio_callbacks(
    validator: RequestValidator, public_url: str, answers: AnsweredByBox
) -> APIRouter:
    """The routes Twilio posts its reports to; each is signed, else refused with 403."""
    router = APIRouter()

    async def report(request: Request) -> dict[str, str] | Response:
        form = await signed_form(request, validator, public_url)
        if form is None:
            return JSONResponse({"error": "invalid X-Twilio-Signature"}, status_code=403)
        if not _CALL_SID.match(form.get("CallSid", "")):
            logger.warning(f"rejected POST {request.url.path}: no valid CallSid")
            return JSONResponse({"error": "no valid CallSid"}, status_code=400)
        return form

    @router.post(STATUS_PATH)
    async def status(request: Request) -> Response:
        form = await report(request)
        if isinstance(form, Response):
            return form
        with logger.contextualize(call_sid=form["CallSid"]):
            logger.info(f"outbound call to {form.get('To', '?')}: {_progress(form)}")
        return Response(status_code=204)

    @router.post(AMD_PATH)
    async def answered_by(request: Request) -> Response:
        form = await report(request)
        if isinstance(form, Response):
            return form
        verdict = form.get("AnsweredBy") or "unknown"
        answers.post(form["CallSid"], verdict)
        with logger.contextualize(call_sid=form["CallSid"]):
            took = form.get("MachineDetectionDuration", "?")
            logger.info(f"answered by {verdict} (machine detection took {took} ms)")
        return Response(status_code=204)

    @router.post(RECORDING_PATH)
    async def recording(request: Request) -> Response:
        form = await report(request)
        if isinstance(form, Response):
            return form
        with logger.contextualize(call_sid=form["CallSid"]):
            logger.info(
                f"recording {form.get('RecordingSid', '?')} {form.get('RecordingStatus', '?')}: "
                f"{form.get('RecordingDuration', '?')} s, {form.get('RecordingChannels', '?')} "
                f"channel(s), {form.get('RecordingUrl', 'no URL')}"
            )
        return Response(status_code=204)

    return router


def _progress(form: dict[str, str]) -> str:
    """e.g. `completed after 42 s, answered by human`."""
    text = form.get("CallStatus", "?")
    if form.get("CallDuration"):
        text += f" after {form['CallDuration']} s"
    if form.get("AnsweredBy"):
        text += f", answered by {form['AnsweredBy']}"
    return text
