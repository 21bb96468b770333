"""Fuzzed Twilio Media Streams messages: nothing crashes, nothing leaks, other calls go on."""

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.faults.hostile import (
    fuzz_live_call,
    heard_the_reply,
    hostile_batches,
    hostile_messages,
)
from server.stream_start import StreamStart, StreamStartError, read_stream_start
from telephony.media_streams import Dtmf, MarkEcho, Media, MediaStreamMessages, Stop

STREAM, CALL = "MZ" + "a" * 32, "CA" + "b" * 32
MANY = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


@MANY
@given(message=hostile_messages(STREAM, CALL))
async def test_any_message_is_read_as_an_event_or_nothing(message):
    event = MediaStreamMessages(STREAM).read(message)
    assert event is None or isinstance(event, (Media, Dtmf, MarkEcho, Stop))


class FakeWebSocket:
    """Hands out the given frames as Starlette's ASGI messages, then a disconnect."""

    def __init__(self, frames: list[str | bytes]) -> None:
        self.frames = list(frames)

    async def receive(self) -> dict:
        if not self.frames:
            return {"type": "websocket.disconnect", "code": 1000}
        frame = self.frames.pop(0)
        key = "bytes" if isinstance(frame, bytes) else "text"
        return {"type": "websocket.receive", key: frame}


@MANY
@given(frames=hostile_batches(STREAM, CALL))
async def test_the_opening_of_a_stream_starts_a_call_or_refuses_it_cleanly(frames):
    try:
        start = await read_stream_start(FakeWebSocket(frames))
    except StreamStartError:
        return
    assert isinstance(start, StreamStart)
    assert start.stream_sid.startswith("MZ") and start.call_sid.startswith("CA")


# Regressions the fuzzer found.


def start_message(**start) -> str:
    body = {"streamSid": STREAM, "callSid": CALL} | start
    return json.dumps({"event": "start", "streamSid": STREAM, "start": body})


@pytest.mark.parametrize(
    ("start", "complaint"),
    [
        ({"customParameters": ["a"]}, "customParameters that are not an object"),
        ({"customParameters": "x"}, "customParameters that are not an object"),
        ({"mediaFormat": ["audio/x-mulaw"]}, "unsupported media format"),
        ({"callSid": {"sid": CALL}}, "malformed streamSid or callSid"),
        ({"callSid": "CA/../../Accounts"}, "malformed streamSid or callSid"),  # goes into a URL
    ],
)
async def test_a_start_of_the_wrong_shape_is_refused_not_raised(start, complaint):
    with pytest.raises(StreamStartError, match=complaint):
        await read_stream_start(FakeWebSocket([start_message(**start)]))


async def test_a_valid_start_after_junk_starts_the_call():
    frames = [b"\x00", "[[[", json.dumps({"event": "media", "media": {"payload": "//8="}})]
    start = await read_stream_start(FakeWebSocket([*frames, start_message()]))
    assert (start.stream_sid, start.call_sid) == (STREAM, CALL)


@settings(max_examples=200, deadline=None, database=None)
@given(ulaw=st.binary(max_size=999))
async def test_any_length_of_mulaw_decodes_to_twice_as_many_pcm_bytes(ulaw):
    payload = base64.b64encode(ulaw).decode()
    message = json.dumps({"event": "media", "streamSid": STREAM, "media": {"payload": payload}})
    event = MediaStreamMessages(STREAM).read(message)
    assert (event is None) if not ulaw else len(event.pcm) == 2 * len(ulaw)


# Against the real server.


async def test_a_fuzzed_live_call_crashes_nothing_leaks_nothing_and_spares_the_other_call():
    run = await fuzz_live_call(examples=30, openings=12)
    assert run.failures == [], run.failures[:3]

    assert run.examples == 30 and run.openings == 12
    assert run.errors == [], run.errors[:3]
    assert run.fuzzed_call_alive, "the fuzzed call was dropped"
    assert heard_the_reply(run.other_call_heard), run.other_call_heard
    assert run.tasks_after is not None, f"tasks never back to {run.tasks_before}"
    assert run.outcome.survived, run.outcome.problems
