"""A local Twilio REST API (2010-04-01 Calls): hang up, redirect and create calls, with knobs.

A call created with a `Url` is placed: its callee (`standins/callee.py`) is busy, does not
answer, or picks up as a person or a voicemail box, and the app hears of it as from Twilio:
the signed voice webhook, the media stream, asynchronous answering machine detection
(`AsyncAmdStatusCallback`) and call progress (`StatusCallback`). Recordings of live calls
(`Calls/{CallSid}/Recordings.json`) report to their `RecordingStatusCallback` when the call
ends.
"""

import asyncio
import base64
import binascii
import secrets
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import urlsplit

from aiohttp import web
from loguru import logger

from standins.callee import PERSON_DETECTED_SECS, Callee, converse, play_greeting
from standins.caller import DialError, SimulatedCall, answer_webhook, post_signed
from standins.caller import voice_webhook_form as webhook_form
from standins.http_server import LocalServer

API = "/2010-04-01"
_ENDED = ("completed", "canceled")
_SUBRESOURCES = ("notifications", "recordings", "payments", "events", "siprec", "streams")
# Call resource fields a stand-in has no value for; Twilio sends them as null too until known.
_NULL_FIELDS = ("parent_call_sid", "price", "forwarded_from")
_NULL_FIELDS += ("caller_name", "trunk_sid", "group_sid", "phone_number_sid")
_FINAL = ("completed", "busy", "no-answer", "failed", "canceled")
_PROGRESS_EVENTS = {"initiated", "ringing", "answered", "completed"}
_MACHINE_DETECTION = ("Enable", "DetectMessageEnd")


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
class Callback:
    """A signed request the stand-in made to the app, reporting on a call as Twilio does."""

    kind: str  # "status", "amd" (who answered) or "recording"
    url: str
    form: dict[str, str]
    status: int = 0  # what the app answered
    at: float = field(default_factory=time.monotonic)


@dataclass
class Redirect:
    """A live call told to run new instructions (a transfer): inline `twiml` or a TwiML `url`."""

    call_sid: str
    twiml: str | None = None
    url: str | None = None


def _twilio_error(status: int, code: int, message: str) -> web.Response:
    info = f"https://www.twilio.com/docs/errors/{code}"
    body = {"code": code, "message": message, "more_info": info, "status": status}
    return web.json_response(body, status=status)


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
    return _detection_refusal(form) or _events_refusal(form)


def _detection_refusal(form: dict[str, str]) -> web.Response | None:
    """The error for answering machine detection parameters Twilio does not take."""
    detection = form.get("MachineDetection")
    timeout = form.get("MachineDetectionTimeout", "30")
    bad = (detection is not None and detection not in _MACHINE_DETECTION) or not (
        timeout.isdigit() and 3 <= int(timeout) <= 59
    )
    if form.get("AsyncAmd", "false") not in ("true", "false"):
        bad = True
    if bad:
        return _twilio_error(400, 21234, "Invalid Machine Detection configuration value")
    return None


def _events_refusal(form: dict[str, str]) -> web.Response | None:
    if set(form.get("StatusCallbackEvent", "completed").split()) <= _PROGRESS_EVENTS:
        return None
    return _twilio_error(400, 21626, f"Invalid StatusCallbackEvent: {form['StatusCallbackEvent']}")


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


class TwilioRestStandIn(LocalServer):
    """Serves the Calls resource of api.twilio.com for one account.

    Knobs are plain attributes: `auto_register` (an unknown CallSid is taken as a live inbound
    call on first sight), `fail_next` (answer the next N requests with `fail_status`: 500
    Internal Server Error, or 429 Too Many Requests, in Twilio's error JSON) and `hang_next`
    (accept the next N requests and answer nothing for `hang_secs`), `callees` (number ->
    `Callee`: who answers the calls placed to it; others get `default_callee`) and
    `amd_callbacks` (False: the answering machine verdict is never posted). Tests read
    `requests`, `calls` (sid -> status), `hangups`, `redirects`, `created`, `callbacks`,
    `recordings` and, for the calls placed, the callee's side of each (`await answered(sid)`).
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
        self.callees: dict[str, Callee] = {}
        self.default_callee = Callee()
        self.amd_callbacks = True
        self.callbacks: list[Callback] = []
        self.recordings: dict[str, dict] = {}  # sid -> the recording's state
        self.callee_calls: dict[str, SimulatedCall] = {}  # placed call sid -> callee's side
        self._attempts: Counter[str] = Counter()  # calls placed, by number
        self._details: dict[str, dict] = {}
        self._hung_up: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._picked_up: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._tasks: set[asyncio.Task] = set()

    def routes(self) -> list[web.RouteDef]:
        """The Calls list and Call instance routes."""
        calls = API + "/Accounts/{account_sid}/Calls"
        return [
            web.post(calls + ".json", self._create),
            web.post(calls + "/{call_sid}.json", self._update),
            web.get(calls + "/{call_sid}.json", self._fetch),
            web.post(calls + "/{call_sid}/Recordings.json", self._record),
        ]

    async def stop(self) -> None:
        """End the calls still up, stop placing and reporting, stop serving."""
        for call in self.callee_calls.values():
            await call.hang_up()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await super().stop()

    async def answered(self, call_sid: str, timeout: float = 10.0) -> SimulatedCall:
        """The callee's side of placed call `call_sid`, once it has picked up."""
        async with asyncio.timeout(timeout):
            await self._picked_up[call_sid].wait()
        return self.callee_calls[call_sid]

    async def wait_ended(self, call_sid: str, timeout: float = 30.0) -> str:
        """Wait until call `call_sid` has ended and been reported; its final status."""
        async with asyncio.timeout(timeout):
            while not self._details.get(call_sid, {}).get("reported"):
                await asyncio.sleep(0.02)
        return self.calls[call_sid]

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
            self._details[call_sid]["end"] = datetime.now(UTC)
            self.hangups.append(call_sid)
            self._hung_up[call_sid].set()
            self._spawn(self._reported(call_sid))
            logger.debug(f"Twilio stand-in: call {call_sid} {status}")
        elif "Twiml" in form or "Url" in form:
            self.redirects.append(Redirect(call_sid, form.get("Twiml"), form.get("Url")))
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
        if _loopback(form.get("Url", "")):  # a stand-in never reaches the real network
            self._spawn(self._place(call_sid, form))
        elif "Url" in form:
            logger.warning(f"Twilio stand-in: {call_sid} stays queued: {form['Url']} is remote")
        return self._resource(call_sid)

    def _spawn(self, work) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _place(self, call_sid: str, form: dict[str, str]) -> None:
        """Ring the callee; on pick-up, connect them to the app as Twilio does."""
        callee = self.callees.get(form["To"], self.default_callee)
        answer = callee.answer(self._attempts[form["To"]])
        self._attempts[form["To"]] += 1
        self.calls[call_sid] = "ringing"
        await asyncio.sleep(callee.ring_secs)
        if answer not in ("person", "voicemail"):
            return await self._end(call_sid, answer)
        self.calls[call_sid] = "in-progress"
        self._details[call_sid]["start"] = datetime.now(UTC)
        await self._report(call_sid, "answered")
        webhook = webhook_form(
            self.account_sid, call_sid, form["From"], form["To"], direction="outbound-api"
        )
        try:
            answered = await answer_webhook(form["Url"], webhook, auth_token=self._auth_token)
            call = await SimulatedCall.join(answered, account_sid=self.account_sid)
        except (DialError, OSError) as e:  # Twilio: "an application error has occurred"
            logger.warning(f"Twilio stand-in: call {call_sid} could not connect: {e}")
            return await self._end(call_sid, "completed")
        self.callee_calls[call_sid] = call
        self._picked_up[call_sid].set()
        if answer == "person":
            self._spawn(self._detected(call_sid, "human", after=PERSON_DETECTED_SECS))
            await (converse(call, callee.says) if callee.says else call.closed.wait())
        else:
            await play_greeting(call)
            await self._detected(call_sid, "machine_end_beep")
            await call.closed.wait()
        await self._end(call_sid, "completed")

    async def _detected(self, call_sid: str, answered_by: str, *, after: float = 0.0) -> None:
        """Answering machine detection's verdict, posted to `AsyncAmdStatusCallback`."""
        await asyncio.sleep(after)
        details = self._details[call_sid]
        form = details["form"]
        if "MachineDetection" not in form:
            return
        details["answered_by"] = answered_by
        took = (datetime.now(UTC) - details["start"]).total_seconds()
        url = form.get("AsyncAmdStatusCallback")
        if form.get("AsyncAmd") == "true" and url and self.amd_callbacks:
            report = {"AccountSid": self.account_sid, "CallSid": call_sid}
            report |= {"AnsweredBy": answered_by, "MachineDetectionDuration": str(int(took * 1000))}
            await self._post("amd", url, report)

    async def _end(self, call_sid: str, status: str) -> None:
        """The call is over at Twilio (`status`): report it, and its recordings."""
        if self.calls[call_sid] not in _FINAL:
            self.calls[call_sid] = status
            self._details[call_sid]["end"] = datetime.now(UTC)
        await self._reported(call_sid)

    async def _reported(self, call_sid: str) -> None:
        """Once per call: close the callee's stream, report the end and the recordings."""
        details = self._details[call_sid]
        if details.get("ending"):
            return
        details["ending"] = True
        if (call := self.callee_calls.get(call_sid)) and not call.closed.is_set():
            await call.hang_up()
        for sid, recording in self.recordings.items():
            if recording["call_sid"] == call_sid:
                await self._recording_done(sid, recording)
        await self._report(call_sid, "completed")
        details["reported"] = True

    async def _report(self, call_sid: str, event: str) -> None:
        """Post call progress `event` to the call's `StatusCallback`, if it asked for it."""
        details = self._details[call_sid]
        form = details.get("form", {})
        if "StatusCallback" not in form:
            return
        if event not in form.get("StatusCallbackEvent", "completed").split():
            return
        details["sequence"] = details.get("sequence", -1) + 1
        report = webhook_form(
            self.account_sid, call_sid, details["from"], details["to"], direction="outbound-api"
        ) | {
            "CallStatus": self.calls[call_sid],
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(details["sequence"]),
            "Timestamp": _rfc2822(datetime.now(UTC)) or "",
        }
        if duration := _seconds(details):
            report["CallDuration"] = duration
        if details.get("answered_by"):
            report["AnsweredBy"] = details["answered_by"]
        await self._post("status", form["StatusCallback"], report)

    async def _post(self, kind: str, url: str, form: dict[str, str]) -> None:
        callback = Callback(kind, url, form)
        self.callbacks.append(callback)
        try:
            callback.status, _ = await post_signed(url, form, auth_token=self._auth_token)
        except OSError as e:  # Twilio logs a failed callback and goes on
            logger.warning(f"Twilio stand-in: {kind} callback to {url} failed: {e!r}")

    async def _record(self, request: web.Request) -> web.Response:
        recorded, response = await self._admit(request)
        call_sid = request.match_info["call_sid"]
        if response is None and not self._live(call_sid):
            response = _twilio_error(
                404, 20404, f"The requested resource {request.path} was not found"
            )
        channels = recorded.form.get("RecordingChannels", "mono")
        if response is None and channels not in ("mono", "dual"):
            response = _twilio_error(400, 21215, f"Invalid RecordingChannels: {channels}")
        if response is None:
            sid = "RE" + secrets.token_hex(16)
            self.recordings[sid] = {
                "call_sid": call_sid,
                "channels": 2 if channels == "dual" else 1,
                "callback": recorded.form.get("RecordingStatusCallback"),
                "events": recorded.form.get("RecordingStatusCallbackEvent", "completed").split(),
                "start": datetime.now(UTC),
                "status": "in-progress",
            }
            response = web.json_response(self._recording(sid), status=201)
        recorded.status = response.status
        return response

    async def _recording_done(self, sid: str, recording: dict) -> None:
        recording["status"] = "completed"
        recording["duration"] = int((datetime.now(UTC) - recording["start"]).total_seconds())
        if not recording["callback"] or "completed" not in recording["events"]:
            return
        url = f"{self.http_url}{API}/Accounts/{self.account_sid}/Recordings/{sid}"
        await self._post(
            "recording",
            recording["callback"],
            {
                "AccountSid": self.account_sid,
                "CallSid": recording["call_sid"],
                "RecordingSid": sid,
                "RecordingUrl": url,
                "RecordingStatus": "completed",
                "RecordingDuration": str(recording["duration"]),
                "RecordingChannels": str(recording["channels"]),
                "RecordingStartTime": _rfc2822(recording["start"]) or "",
                "RecordingSource": "StartCallRecordingAPI",
                "RecordingTrack": "both",
                "ErrorCode": "0",
            },
        )

    def _recording(self, sid: str) -> dict:
        """The Recording resource JSON."""
        recording = self.recordings[sid]
        call_uri = f"{API}/Accounts/{self.account_sid}/Calls/{recording['call_sid']}"
        return {
            "sid": sid,
            "account_sid": self.account_sid,
            "call_sid": recording["call_sid"],
            "conference_sid": None,
            "api_version": "2010-04-01",
            "date_created": _rfc2822(recording["start"]),
            "date_updated": _rfc2822(datetime.now(UTC)),
            "start_time": _rfc2822(recording["start"]),
            "duration": str(recording.get("duration", -1)),
            "channels": recording["channels"],
            "status": recording["status"],
            "source": "StartCallRecordingAPI",
            "track": "both",
            "price": None,
            "price_unit": "USD",
            "error_code": None,
            "encryption_details": None,
            "uri": f"{call_uri}/Recordings/{sid}.json",
        }

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
        "start": started and now,
    }


def _loopback(url: str) -> bool:
    return urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


def _seconds(details: dict) -> str | None:
    """A call's duration in whole seconds once it has ended (Twilio's `duration`)."""
    if not (details.get("start") and details.get("end")):
        return None
    return str(int((details["end"] - details["start"]).total_seconds()))


def _rfc2822(moment: datetime | None) -> str | None:
    return format_datetime(moment) if moment else None
