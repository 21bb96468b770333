"""What Twilio's REST API and its reports look like on the wire: paths, errors, dates."""

from datetime import datetime
from email.utils import format_datetime

from aiohttp import web

API = "/2010-04-01"


def twilio_error(status: int, code: int, message: str) -> web.Response:
    """Twilio's error JSON, e.g. `{"code": 20404, "message": …, "status": 404}`."""
    info = f"https://www.twilio.com/docs/errors/{code}"
    body = {"code": code, "message": message, "more_info": info, "status": status}
    return web.json_response(body, status=status)


def rfc2822(moment: datetime | None) -> str | None:
    """A date as Twilio's resources give it (`Fri, 14 Oct 2016 21:56:34 +0000`)."""
    return format_datetime(moment) if moment else None


def seconds(details: dict) -> str | None:
    """A call's duration in whole seconds once it has ended (Twilio's `duration`)."""
    if not (details.get("start") and details.get("end")):
        return None
    return str(int((details["end"] - details["start"]).total_seconds()))
