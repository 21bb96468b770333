"""Twilio's reports on calls: an outbound call's progress, who answered it, its recording."""

import re
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from loguru import logger
from twilio.request_validator import RequestValidator

from server.answered_by import Verdicts
from server.shared_database import DatabaseUnavailable
from server.signed_requests import signed_form
from server.twilio_urls import AMD_PATH, RECORDING_PATH, STATUS_PATH

_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")


def twilio_callbacks(validator: RequestValidator, public_url: str, answers: Verdicts) -> APIRouter:
    """The routes Twilio posts its reports to; each is signed, else refused with 403.

    A report that cannot be kept (the shared database is down) is answered 503.
    """
    router = APIRouter()

    def report(path: str, take: Callable[[dict[str, str]], Awaitable[None]]) -> None:
        """At `path`, a signed report on a call is taken (logged as that call's) with `take`."""

        @router.post(path)
        async def receive(request: Request) -> Response:
            form = await signed_form(request, validator, public_url)
            if form is None:
                return JSONResponse({"error": "invalid X-Twilio-Signature"}, status_code=403)
            if not _CALL_SID.match(form.get("CallSid", "")):
                logger.warning(f"rejected POST {path}: no valid CallSid")
                return JSONResponse({"error": "no valid CallSid"}, status_code=400)
            with logger.contextualize(call_sid=form["CallSid"]):
                try:
                    await take(form)
                except DatabaseUnavailable as e:
                    logger.error(f"POST {path} answered 503, its report lost: {e}")
                    return JSONResponse({"error": str(e)}, status_code=503)
            return Response(status_code=204)

    async def answered_by(form: dict[str, str]) -> None:
        verdict = form.get("AnsweredBy") or "unknown"
        await answers.post(form["CallSid"], verdict)
        took = form.get("MachineDetectionDuration", "?")
        logger.info(f"answered by {verdict} (machine detection took {took} ms)")

    report(STATUS_PATH, _progress)
    report(AMD_PATH, answered_by)
    report(RECORDING_PATH, _recording)
    return router


async def _progress(form: dict[str, str]) -> None:
    """e.g. `outbound call to +1555…: completed after 42 s, answered by human`."""
    text = form.get("CallStatus", "?")
    if form.get("CallDuration"):
        text += f" after {form['CallDuration']} s"
    if form.get("AnsweredBy"):
        text += f", answered by {form['AnsweredBy']}"
    logger.info(f"outbound call to {form.get('To', '?')}: {text}")


async def _recording(form: dict[str, str]) -> None:
    logger.info(
        f"recording {form.get('RecordingSid', '?')} {form.get('RecordingStatus', '?')}: "
        f"{form.get('RecordingDuration', '?')} s, {form.get('RecordingChannels', '?')} "
        f"channel(s), {form.get('RecordingUrl', 'no URL')}"
    )
