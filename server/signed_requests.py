"""Requests Twilio makes to us, checked against their X-Twilio-Signature."""

from fastapi import Request
from loguru import logger
from twilio.request_validator import RequestValidator

from server.twilio_urls import webhook_url


async def signed_form(request: Request, validator: RequestValidator, public_url: str):
    """The request's form if Twilio signed it (the URL built from PUBLIC_URL), else None.

    A rejection is logged, naming the path.
    """
    form = {key: str(value) for key, value in (await request.form()).items()}
    url = webhook_url(public_url, request.url.path, request.url.query)
    if validator.validate(url, form, request.headers.get("X-Twilio-Signature", "")):
        return form
    logger.warning(f"rejected POST {request.url.path}: missing or wrong X-Twilio-Signature")
    return None
