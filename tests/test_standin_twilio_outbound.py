"""The Twilio stand-in places calls and records them as Twilio does, through the real library."""

import pytest
from aiohttp import web
from test_standin_twilio_rest import CALL, TOKEN, standin, twilio_client
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from standins.callee import Callee
from standins.http_server import LocalServer


class Reports(LocalServer):
    """The app's side of Twilio's reports: every signed POST it gets, checked."""

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[tuple[str, dict[str, str], bool]] = []  # path, form, signature ok

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/{path:.*}", self._post)]

    async def _post(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        signed = RequestValidator(TOKEN).validate(
            str(request.url), form, request.headers.get("X-Twilio-Signature", "")
        )
        self.posts.append((request.path, form, signed))
        return web.Response(status=204)


async def test_machine_detection_that_twilio_does_not_take_is_refused_with_its_error_code():
    async with standin() as twilio, twilio_client(twilio) as client:
        with pytest.raises(TwilioRestException) as e:
            await client.calls.create_async(
                to="+15550123456", from_="+15550100000", url="https://bot.example.com/voice",
                machine_detection="Maybe",
            )  # fmt: skip
    assert (e.value.status, e.value.code) == (400, 21234)
    assert twilio.created == []


async def test_a_busy_number_is_reported_signed_to_the_status_callback_and_never_answered():
    async with standin() as twilio, Reports() as app, twilio_client(twilio) as client:
        twilio.callees["+15550123456"] = Callee(answers=("busy", "no-answer"), ring_secs=0)
        placed = [
            await client.calls.create_async(
                to="+15550123456",
                from_="+15550100000",
                url=f"{app.http_url}/voice",
                status_callback=f"{app.http_url}/status",
                status_callback_event=["answered", "completed"],
            )  # fmt: skip
            for _ in range(2)
        ]
        ended = [await twilio.wait_ended(call.sid, timeout=5) for call in placed]
        fetched = await client.calls(placed[0].sid).fetch_async()

    assert ended == ["busy", "no-answer"]
    assert fetched.status == "busy" and fetched.answered_by is None
    assert [(path, form["CallStatus"], ok) for path, form, ok in app.posts] == [
        ("/status", "busy", True),
        ("/status", "no-answer", True),
    ]
    assert app.posts[0][1]["Direction"] == "outbound-api"
    assert twilio.callee_calls == {}  # no voice webhook, no stream


async def test_a_recording_is_started_on_a_live_call_and_reported_when_the_call_ends():
    async with standin() as twilio, Reports() as app, twilio_client(twilio) as client:
        twilio.register_call(CALL)
        recording = await client.calls(CALL).recordings.create_async(
            recording_channels="dual",
            recording_status_callback=f"{app.http_url}/recording",
            recording_status_callback_event=["completed", "absent"],
        )
        await client.calls(CALL).update_async(status="completed")
        await twilio.wait_ended(CALL, timeout=5)

    assert recording.sid.startswith("RE") and recording.call_sid == CALL
    assert (recording.channels, recording.status, recording.source) == (
        2,
        "in-progress",
        "StartCallRecordingAPI",
    )
    [(path, form, signed)] = app.posts
    assert (path, signed, form["RecordingSid"], form["RecordingStatus"]) == (
        "/recording",
        True,
        recording.sid,
        "completed",
    )
    assert form["RecordingUrl"].endswith(f"/Recordings/{recording.sid}")
    assert form["RecordingChannels"] == "2" and form["CallSid"] == CALL


async def test_recording_a_call_that_has_ended_is_not_found():
    async with standin(auto_register=False) as twilio, twilio_client(twilio) as client:
        with pytest.raises(TwilioRestException) as e:
            await client.calls(CALL).recordings.create_async(recording_channels="dual")
    assert (e.value.status, e.value.code) == (404, 20404)
