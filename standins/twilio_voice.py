"""What the Twilio stand-in does with a call's TwiML: transfers, conferences, people who answer.

Twilio runs a call's TwiML verb by verb; a REST update replaces it at once, and a call that
was in `<Connect><Stream>` has its stream stopped (`stop`, then the socket closes). This
models the verbs a transfer uses — `<Say>`, `<Dial>` (a `<Number>`/`<Sip>` with `timeout`,
`callerId` and `action`, or a `<Conference>`), `<Redirect>`, `<Hangup>`, `<Connect><Stream>`
— and the people at the other end: each answers after `answer_secs`, hears what is said to
it, talks for `talk_secs` and hangs up, unless its number is in `unanswered` (it rings out).
"""

import asyncio
import secrets
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from loguru import logger
from twilio.request_validator import RequestValidator

from standins.caller import SimulatedCall, parse_stream


@dataclass
class Dialed:
    """A person a call's `<Dial>` rang: who, for which call, with which caller ID, and how."""

    call_sid: str
    to: str
    caller_id: str | None
    status: str = "ringing"  # then answered (then completed) or no-answer


@dataclass
class Conference:
    """A Twilio conference room, by its friendly name."""

    name: str
    sid: str = field(default_factory=lambda: "CF" + secrets.token_hex(16))
    status: str = "init"  # in-progress once a participant starting it joins; then completed
    participants: list[str] = field(default_factory=list)  # call SIDs in it now
    joined: list[str] = field(default_factory=list)  # every call SID that ever joined, in order
    hold_music: dict[str, str] = field(default_factory=dict)  # call SID → its waitUrl
    ended: asyncio.Event = field(default_factory=asyncio.Event, repr=False)


class TwilioVoice:
    """The call legs of one stand-in account and the TwiML they run.

    Tests read `said` (call SID → the `<Say>` texts its far end heard), `dialed`,
    `conferences` (by name) and `callbacks` (status callbacks and `<Dial action>`s posted).
    `phones` are the simulated callers on the line (`attach`).
    """

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        set_status: Callable[[str, str], None],
    ) -> None:
        """`set_status(sid, status)` changes a call in the Calls resource."""
        self.account_sid = account_sid
        self._validator = RequestValidator(auth_token)
        self._set_status = set_status
        self.unanswered: set[str] = set()
        self.answer_secs = 0.3
        self.talk_secs = 1.0
        self.phones: dict[str, SimulatedCall] = {}
        self.said: defaultdict[str, list[str]] = defaultdict(list)
        self.dialed: list[Dialed] = []
        self.conferences: dict[str, Conference] = {}
        self.callbacks: list[tuple[str, dict[str, str]]] = []
        self._legs: dict[str, asyncio.Task] = {}

    def attach(self, phone: SimulatedCall) -> None:
        """`phone` is on the line of its call: it follows what the call's TwiML does."""
        self.phones[phone.call_sid] = phone

    def redirected(self, call_sid: str, twiml: str | None, url: str | None) -> None:
        """A REST update gave the live call new TwiML (or a URL to fetch it from)."""
        self._run(call_sid, self._follow(call_sid, twiml, url))

    def created(self, call_sid: str, form: dict[str, str]) -> None:
        """A call was created through REST: ring it, and run its inline `Twiml` once answered.

        Such a call is a person dialled for a warm transfer; calls to a `Url` are left queued.
        """
        if "Twiml" in form:
            self._run(call_sid, self._place(call_sid, form))

    async def close(self) -> None:
        """Stop every leg."""
        for task in self._legs.values():
            task.cancel()
        await asyncio.gather(*self._legs.values(), return_exceptions=True)

    def routes(self, calls_path: str) -> list[web.RouteDef]:
        """Conferences and their participants, read-only, under the account's path."""
        conferences = calls_path.replace("/Calls", "/Conferences")
        return [
            web.get(conferences + ".json", self._list_conferences),
            web.get(conferences + "/{sid}/Participants.json", self._list_participants),
        ]

    # -- legs ---------------------------------------------------------------------------------

    def _run(self, call_sid: str, work) -> None:
        """Run `work` as the call's TwiML now, abandoning what it was doing (Twilio's update)."""
        if old := self._legs.get(call_sid):
            old.cancel()
        self._legs[call_sid] = asyncio.create_task(work, name=f"twilio-leg-{call_sid}")

    async def _follow(self, call_sid: str, twiml: str | None, url: str | None) -> None:
        phone = self.phones.get(call_sid)
        if phone and not phone.closed.is_set():
            await asyncio.sleep(0.05)  # Twilio answers the update, then stops the stream
            await phone.stream_stopped()
        if twiml is None and url:
            twiml = await self._fetch(url, call_sid)
        await self._execute(call_sid, twiml or "<Response/>")

    async def _place(self, call_sid: str, form: dict[str, str]) -> None:
        to, timeout = form["To"], int(form.get("Timeout", "60"))
        self._set_status(call_sid, "ringing")
        if not await self._rings(to, timeout):
            self._set_status(call_sid, "no-answer")
            await self._callback(form.get("StatusCallback"), call_sid, form, "no-answer")
            return
        self._set_status(call_sid, "in-progress")
        await self._execute(call_sid, form["Twiml"])
        self._set_status(call_sid, "completed")
        await self._callback(form.get("StatusCallback"), call_sid, form, "completed")

    async def _rings(self, to: str, timeout: float) -> bool:
        """Whether the person at `to` answers within `timeout` seconds."""
        if to in self.unanswered:
            await asyncio.sleep(timeout)
            return False
        await asyncio.sleep(self.answer_secs)
        return True

    # -- TwiML ----------------------------------------------------------------------------------

    async def _execute(self, call_sid: str, twiml: str) -> None:
        """Run `twiml` on the call verb by verb; the call completes when it runs out."""
        for verb in ET.fromstring(twiml):
            if verb.tag == "Say":
                self.said[call_sid].append((verb.text or "").strip())
            elif verb.tag == "Hangup":
                break
            elif verb.tag == "Redirect":
                await self._execute(call_sid, await self._fetch(verb.text or "", call_sid))
                return
            elif verb.tag == "Dial":
                if then := await self._dial(call_sid, verb):
                    await self._execute(call_sid, then)
                    return
            elif verb.tag == "Connect":
                await self._stream(call_sid, twiml)
        self._set_status(call_sid, "completed")

    async def _dial(self, call_sid: str, dial: ET.Element) -> str | None:
        """Ring or join what `<Dial>` names; the TwiML its `action` answers, if it has one."""
        noun = next(iter(dial), None)
        if noun is not None and noun.tag == "Conference":
            await self._confer(call_sid, noun)
            return None
        to = (noun.text if noun is not None else dial.text) or ""
        dialed = Dialed(call_sid, to.strip(), dial.get("callerId"))
        self.dialed.append(dialed)
        if await self._rings(dialed.to, float(dial.get("timeout", "30"))):
            dialed.status = "answered"
            await asyncio.sleep(self.talk_secs)
            dialed.status = "completed"
        else:
            dialed.status = "no-answer"
        action = dial.get("action")
        if not action:
            return None
        return await self._fetch(action, call_sid, DialCallStatus=dialed.status)

    async def _confer(self, call_sid: str, noun: ET.Element) -> None:
        """In conference `noun.text` until it ends or the call is sent elsewhere."""
        room = self.conferences.setdefault(noun.text or "", Conference(noun.text or ""))
        room.participants.append(call_sid)
        room.joined.append(call_sid)
        if noun.get("startConferenceOnEnter", "true") == "true":
            room.status = "in-progress"
        else:
            room.hold_music[call_sid] = noun.get("waitUrl", "Twilio's default hold music")
        try:
            if call_sid in self.phones:  # a caller stays until the conference ends
                await room.ended.wait()
            else:  # a person answering: talks, then hangs up
                await asyncio.sleep(self.talk_secs)
        finally:
            room.participants.remove(call_sid)
            if noun.get("endConferenceOnExit") == "true" and room.status != "completed":
                room.status = "completed"
                room.ended.set()

    async def _stream(self, call_sid: str, twiml: str) -> None:
        phone = self.phones.get(call_sid)
        if phone is None:
            return
        url, parameters = parse_stream(twiml)
        await phone.reconnect(url, self._validator.compute_signature(url, {}), parameters)
        await phone.closed.wait()

    # -- webhooks the stand-in makes, signed as Twilio signs them ---------------------------------

    async def _fetch(self, url: str, call_sid: str, **extra: str) -> str:
        """POST the call's webhook form (and `extra`) to `url`; the TwiML it answers."""
        form = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call_sid,
            "CallStatus": "in-progress",
            **extra,
        }
        phone = self.phones.get(call_sid)
        if phone:
            form |= {
                "From": phone.parameters.get("caller", ""),
                "To": phone.parameters.get("called", ""),
            }
        self.callbacks.append((url, form))
        return await self._post(url, form) or "<Response/>"

    async def _callback(
        self, url: str | None, call_sid: str, created: dict[str, str], status: str
    ) -> None:
        """A status callback of a call created through REST."""
        if not url:
            return
        form = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call_sid,
            "CallStatus": status,
            "Direction": "outbound-api",
            "From": created.get("From", ""),
            "To": created.get("To", ""),
            "CallbackSource": "call-progress-events",
            "Timestamp": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
        }
        self.callbacks.append((url, form))
        await self._post(url, form)

    async def _post(self, url: str, form: dict[str, str]) -> str:
        headers = {"X-Twilio-Signature": self._validator.compute_signature(url, form)}
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(url, data=form, headers=headers) as response,
            ):
                body = await response.text()
                if response.status >= 400:
                    logger.warning(f"Twilio stand-in: POST {url} → HTTP {response.status}")
                    return ""
                return body
        except aiohttp.ClientError as e:
            logger.warning(f"Twilio stand-in: POST {url} failed: {e!r}")
            return ""

    # -- the Conferences resource -------------------------------------------------------------

    async def _list_conferences(self, request: web.Request) -> web.Response:
        name = request.query.get("FriendlyName")
        rooms = [c for c in self.conferences.values() if name in (None, c.name)]
        return web.json_response(
            {
                "conferences": [
                    {"sid": c.sid, "friendly_name": c.name, "status": c.status} for c in rooms
                ]
            }
        )

    async def _list_participants(self, request: web.Request) -> web.Response:
        room = next(
            (c for c in self.conferences.values() if c.sid == request.match_info["sid"]), None
        )
        if room is None:
            return web.json_response({"code": 20404, "status": 404}, status=404)
        participants = [
            {"call_sid": sid, "conference_sid": room.sid, "status": "connected"}
            for sid in room.participants
        ]
        return web.json_response({"participants": participants})
