"""A local Twilio REST API (2010-04-01 Calls): hang up, redirect and create calls, with knobs.

Calls created with a local `Url` are placed (`standins/twilio_placing.py`); live calls can
be recorded (`standins/twilio_recordings.py`).
"""

import asyncio
import base64
import binascii
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web
from loguru import logger

from standins.http_server import LocalServer
from standins.twilio_placing import CallPlacing, placeable, placing_refusal
from standins.twilio_recordings import CallRecordings
from standins.twilio_voice import TwilioVoice
from standins.twilio_wire import API
from standins.twilio_wire import rfc2822 as _rfc2822
from standins.twilio_wire import seconds as _seconds
from standins.twilio_wire import twilio_error as _twilio_error

_ENDED = ("completed", "canceled")
_SUBRESOURCES = ("notifications", "recordings", "payments", "events", "siprec", "streams")
# Call resource fields a stand-in has no value for; Twilio sends them as null too until known.
_NULL_FIELDS = ("parent_call_sid", "price", "forwarded_from")
_NULL_FIELDS += ("caller_name", "trunk_sid", "group_sid", "phone_number_sid")


@dataclass
class TwilioRequest:
    """One request as it reached the stand-in, and the HTTP status it got."""

    method: str
    path: str
    form: dict[str, str]
    auth_ok: bool
    status: int = 0
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass
class Redirect:
    """A live call told to run new instructions (a transfer): inline `twiml` or a TwiML `url`."""

    call_sid: str
    twiml: str | None = None
    url: str | None = None


_FAILURES = {
    500: lambda: _twilio_error(500, 20500, "Internal Server Error"),
    503: lambda: _twilio_error(503, 20503, "Service Unavailable"),
    429: lambda: _twilio_error(429, 20429, "Too Many Requests"),
}


def _create_refusal(form: dict[str, str]) -> web.Response | None:
    """The error a create-call form gets for a missing parameter, if any."""
    if "To" not in form:
        return _twilio_error(400, 21201, "No 'To' number is specified")
    if "From" not in form:
        return _twilio_error(400, 21213, "No 'From' number is specified")
    if not {"Url", "Twiml", "ApplicationSid"} & form.keys():
        return _twilio_error(400, 21205, "Url parameter is required.")
    return placing_refusal(form)


def _basic_auth(header: str) -> tuple[str, str] | None:
    """The (user, password) of an HTTP Basic `Authorization` header, or None."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


class TwilioRestStandIn(CallRecordings, CallPlacing, LocalServer):
    """Serves the Calls resource of api.twilio.com for one account.

    Knobs are plain attributes: `auto_register` (an unknown CallSid is taken as a live inbound
    call on first sight), `fail_next` (answer the next N requests with `fail_status`: 500
    Internal Server Error, or 429 Too Many Requests, in Twilio's error JSON) and `hang_next`
    (accept the next N requests and answer nothing for `hang_secs`); and those of placing
    calls (`CallPlacing`). Tests read `requests`, `calls` (sid -> status), `hangups`,
    `redirects` and `created`, and what placing and recording calls record. What calls do
    with inline TwiML (transfers, conferences, the people dialled) is `voice`'s
    (`standins.twilio_voice`).
    """

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        auto_register: bool = True,
        fail_next: int = 0,
        fail_status: int = 500,
        hang_next: int = 0,
        hang_secs: float = 3600.0,
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.auto_register = auto_register
        self.fail_next = fail_next
        self.fail_status = fail_status
        self.hang_next = hang_next
        self.hang_secs = hang_secs
        self.requests: list[TwilioRequest] = []
        self.calls: dict[str, str] = {}
        self.hangups: list[str] = []
        self.redirects: list[Redirect] = []
        self.created: list[str] = []
        self._details: dict[str, dict] = {}
        self._hung_up: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.voice = TwilioVoice(
            account_sid=account_sid, auth_token=auth_token, set_status=self.calls.__setitem__
        )

    def routes(self) -> list[web.RouteDef]:
        """The Calls list and Call instance routes."""
        calls = API + "/Accounts/{account_sid}/Calls"
        return [
            web.post(calls + ".json", self._create),
            web.post(calls + "/{call_sid}.json", self._update),
            web.get(calls + "/{call_sid}.json", self._fetch),
            web.post(calls + "/{call_sid}/Recordings.json", self._record),
            *self.voice.routes(calls),
        ]

    async def stop(self) -> None:
        """Stop the calls' TwiML, then serving."""
        await self.voice.close()
        await super().stop()

    def register_call(
        self, call_sid: str, from_: str = "+15550001111", to: str = "+15550002222"
    ) -> None:
        """Declare a live inbound call, as Twilio knows it once the caller is connected."""
        self.calls[call_sid] = "in-progress"
        self._details[call_sid] = _details(from_, to, "inbound", started=True)

    async def wait_for_hangup(
        self,
        call_sid: str,
        timeout: float = 5.0,  # noqa: ASYNC109 - a test helper's deadline
    ) -> bool:
        """Wait until `call_sid` is hung up through the API; False if `timeout` passes first."""
        try:
            await asyncio.wait_for(self._hung_up[call_sid].wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _admit(self, request: web.Request) -> tuple[TwilioRequest, web.Response | None]:
        """Record the request; return it with the error response it gets, if any."""
        posted = await request.post()
        # A parameter given several times (StatusCallbackEvent) reads as Twilio's space list.
        form = {key: " ".join(str(v) for v in posted.getall(key)) for key in set(posted.keys())}
        credentials = _basic_auth(request.headers.get("Authorization", ""))
        auth_ok = credentials == (self.account_sid, self._auth_token)
        recorded = TwilioRequest(request.method, request.path, form, auth_ok)
        self.requests.append(recorded)
        if self.hang_next > 0:
            self.hang_next -= 1
            await asyncio.sleep(self.hang_secs)  # a stuck API: the client's timeout must end it
        refusal = None
        if self.fail_next > 0:
            self.fail_next -= 1
            refusal = _FAILURES[self.fail_status]()
        elif not auth_ok or request.match_info["account_sid"] != self.account_sid:
            refusal = _twilio_error(401, 20003, "Authenticate")
        return recorded, refusal

    def _live(self, call_sid: str) -> bool:
        """Whether the call can still be changed; `auto_register` admits unknown calls."""
        if call_sid not in self.calls and self.auto_register and call_sid.startswith("CA"):
            self.register_call(call_sid)
        return self.calls.get(call_sid) not in (None, *_ENDED)

    async def _update(self, request: web.Request) -> web.Response:
        recorded, response = await self._admit(request)
        call_sid = request.match_info["call_sid"]
        if response is None and not self._live(call_sid):
            response = _twilio_error(
                404, 20404, f"The requested resource {request.path} was not found"
            )
        if response is None:
            response = self._apply(call_sid, recorded.form)
        recorded.status = response.status
        return response

    def _apply(self, call_sid: str, form: dict[str, str]) -> web.Response:
        """Change a live call as the form says: end it, or redirect it to new TwiML."""
        status = form.get("Status")
        if status is not None and status not in _ENDED:
            return _twilio_error(400, 20001, f"Invalid Status: {status}")
        if status:
            self.calls[call_sid] = status
            self._details[call_sid] |= {"end": datetime.now(UTC), "ended_at": time.monotonic()}
            self.hangups.append(call_sid)
            self._hung_up[call_sid].set()
            self._spawn(self._reported(call_sid))
            logger.debug(f"Twilio stand-in: call {call_sid} {status}")
        elif "Twiml" in form or "Url" in form:
            self.redirects.append(Redirect(call_sid, form.get("Twiml"), form.get("Url")))
            self.voice.redirected(call_sid, form.get("Twiml"), form.get("Url"))
        return web.json_response(self._resource(call_sid))

    async def _fetch(self, request: web.Request) -> web.Response:
        recorded, response = await self._admit(request)
        call_sid = request.match_info["call_sid"]
        if response is None and call_sid not in self.calls:
            response = _twilio_error(
                404, 20404, f"The requested resource {request.path} was not found"
            )
        if response is None:
            response = web.json_response(self._resource(call_sid))
        recorded.status = response.status
        return response

    async def _create(self, request: web.Request) -> web.Response:
        recorded, response = await self._admit(request)
        if response is None:
            response = _create_refusal(recorded.form)
        if response is None:
            response = web.json_response(self._new_call(recorded.form), status=201)
            self.voice.created(self.created[-1], recorded.form)
        recorded.status = response.status
        return response

    def _new_call(self, form: dict[str, str]) -> dict:
        """Queue an outbound call (placed at once if it has a `Url`); return its resource."""
        call_sid = "CA" + secrets.token_hex(16)
        self.calls[call_sid] = "queued"
        self._details[call_sid] = _details(form["From"], form["To"], "outbound-api") | {
            "form": form
        }
        self.created.append(call_sid)
        if placeable(form.get("Url", "")):
            self._spawn(self._place(call_sid, form))
        elif "Url" in form:
            logger.warning(f"Twilio stand-in: {call_sid} stays queued: {form['Url']} is remote")
        return self._resource(call_sid)

    def _resource(self, call_sid: str) -> dict:
        """The Call resource JSON, with the fields the `twilio` library's CallInstance reads."""
        details = self._details[call_sid]
        uri = f"{API}/Accounts/{self.account_sid}/Calls/{call_sid}"
        return {
            "sid": call_sid,
            "account_sid": self.account_sid,
            "date_created": _rfc2822(details["created"]),
            "date_updated": _rfc2822(datetime.now(UTC)),
            "to": details["to"],
            "to_formatted": details["to"],
            "from": details["from"],
            "from_formatted": details["from"],
            "status": self.calls[call_sid],
            "start_time": _rfc2822(details.get("start")),
            "end_time": _rfc2822(details.get("end")),
            "price_unit": "USD",
            "direction": details["direction"],
            "api_version": "2010-04-01",
            "queue_time": "0",
            "uri": uri + ".json",
            "answered_by": details.get("answered_by"),
            "duration": _seconds(details),
            **dict.fromkeys(_NULL_FIELDS),
            "subresource_uris": {
                name: f"{uri}/{name.title().replace('_', '')}.json" for name in _SUBRESOURCES
            },
        }


def _details(from_: str, to: str, direction: str, *, started: bool = False) -> dict:
    now = datetime.now(UTC)
    return {
        "from": from_,
        "to": to,
        "direction": direction,
        "created": now,
        "created_at": time.monotonic(),
        "start": started and now,
    }
