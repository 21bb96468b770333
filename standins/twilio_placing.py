"""Calls the Twilio stand-in places: ringing the callee, connecting them, reporting on the call.

A call created with a local `Url` is placed: its callee (`standins/callee.py`) is busy, does
not answer, fails, or picks up as a person or a voicemail box. On pick-up the app hears of it
as from Twilio: the signed voice webhook, the media stream its TwiML names, asynchronous
answering machine detection (`AsyncAmdStatusCallback`) and call progress (`StatusCallback`).
"""

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from loguru import logger

from standins.callee import PERSON_DETECTED_SECS, Callee, converse, play_greeting
from standins.caller import DialError, SimulatedCall, answer_webhook, post_signed
from standins.caller import voice_webhook_form as webhook_form
from standins.twilio_wire import rfc2822, seconds, twilio_error

FINAL = ("completed", "busy", "no-answer", "failed", "canceled")
_PROGRESS_EVENTS = {"initiated", "ringing", "answered", "completed"}
_MACHINE_DETECTION = ("Enable", "DetectMessageEnd")


@dataclass
class Callback:
    """A signed request the stand-in made to the app, reporting on a call as Twilio does."""

    kind: str  # "status", "amd" (who answered) or "recording"
    url: str
    form: dict[str, str]
    status: int = 0  # what the app answered
    at: float = field(default_factory=time.monotonic)


def placing_refusal(form: dict[str, str]) -> web.Response | None:
    """The error a create-call form gets for detection or progress options Twilio refuses."""
    detection = form.get("MachineDetection")
    timeout = form.get("MachineDetectionTimeout", "30")
    bad = (detection is not None and detection not in _MACHINE_DETECTION) or not (
        timeout.isdigit() and 3 <= int(timeout) <= 59
    )
    if bad or form.get("AsyncAmd", "false") not in ("true", "false"):
        return twilio_error(400, 21234, "Invalid Machine Detection configuration value")
    events = form.get("StatusCallbackEvent", "completed")
    if not set(events.split()) <= _PROGRESS_EVENTS:
        return twilio_error(400, 21626, f"Invalid StatusCallbackEvent: {events}")
    return None


def placeable(url: str) -> bool:
    """Whether a call's voice URL is on this machine: a stand-in never reaches the network."""
    return urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


class CallPlacing:
    """The Twilio stand-in's placing of calls (a part of `TwilioRestStandIn`).

    Knobs: `callees` (number -> `Callee`; others get `default_callee`), `amd_callbacks`
    (False: the answering machine verdict is never posted). Records: `callbacks`, and the
    callee's side of each call placed (`await answered(sid)`, `callee_calls`).
    """

    account_sid: str
    calls: dict[str, str]
    _auth_token: str
    _details: dict[str, dict]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.callees: dict[str, Callee] = {}
        self.default_callee = Callee()
        self.amd_callbacks = True
        self.callbacks: list[Callback] = []
        self.callee_calls: dict[str, SimulatedCall] = {}  # placed call sid -> callee's side
        self._attempts: Counter[str] = Counter()  # calls placed, by number
        self._picked_up: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._tasks: set[asyncio.Task] = set()

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

    def lifetime(self, call_sid: str) -> tuple[float, float | None]:
        """When the call was created and when it ended (`time.monotonic()`; None: not yet)."""
        details = self._details[call_sid]
        return details["created_at"], details.get("ended_at")

    async def wait_ended(self, call_sid: str, timeout: float = 30.0) -> str:
        """Wait until call `call_sid` has ended and been reported; its final status."""
        async with asyncio.timeout(timeout):
            while not self._details.get(call_sid, {}).get("reported"):
                await asyncio.sleep(0.02)
        return self.calls[call_sid]

    def _spawn(self, work) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()):
            logger.opt(exception=error).error("Twilio stand-in: placing or reporting failed")

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
        if self.calls[call_sid] not in FINAL:
            self.calls[call_sid] = status
            self._details[call_sid] |= {"end": datetime.now(UTC), "ended_at": time.monotonic()}
        await self._reported(call_sid)

    async def _reported(self, call_sid: str) -> None:
        """Once per call: close the callee's stream, report the end and the recordings."""
        details = self._details[call_sid]
        if details.get("ending"):
            return
        details["ending"] = True
        if (call := self.callee_calls.get(call_sid)) and not call.closed.is_set():
            await call.hang_up()
        await self._recordings_done(call_sid)
        await self._report(call_sid, "completed")
        details["reported"] = True

    async def _recordings_done(self, call_sid: str) -> None:
        """The call's recordings are complete (`CallRecordings` reports them)."""

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
            "Timestamp": rfc2822(datetime.now(UTC)) or "",
        }
        if duration := seconds(details):
            report["CallDuration"] = duration
        if details.get("answered_by"):
            report["AnsweredBy"] = details["answered_by"]
        await self._post("status", form["StatusCallback"], report)

    async def _post(self, kind: str, url: str, form: dict[str, str]) -> None:
        callback = Callback(kind, url, form)
        self.callbacks.append(callback)
        try:
            callback.status, _ = await post_signed(url, form, auth_token=self._auth_token)
        except (OSError, aiohttp.ClientError) as e:  # Twilio logs a failed callback, goes on
            logger.warning(f"Twilio stand-in: {kind} callback to {url} failed: {e!r}")
