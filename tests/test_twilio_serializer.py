import asyncio
import base64
import json

import pytest
from pipecat.frames.frames import (
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputTransportMessageUrgentFrame,
)
from pipecat.processors.frame_processor import FrameProcessorSetup

from processors.frames import PlayoutPauseFrame
from processors.twilio_serializer import TwilioSerializer
from telephony.mulaw import pcm_to_ulaw


def media(payload: str) -> str:
    return json.dumps({"event": "media", "streamSid": "MZ1", "media": {"payload": payload}})


async def test_media_becomes_8khz_pcm_without_resampling():
    pcm = bytes(range(0, 256, 2)) * 2 + b"\x00" * 64  # 160 samples
    ulaw = pcm_to_ulaw(pcm)
    frame = await TwilioSerializer("MZ1").deserialize(media(base64.b64encode(ulaw).decode()))
    assert isinstance(frame, InputAudioRawFrame)
    assert (frame.sample_rate, frame.num_channels, len(frame.audio)) == (8000, 1, 320)


async def test_bot_audio_becomes_a_media_message_for_the_stream():
    pcm = b"\x10\x00" * 320
    message = json.loads(await TwilioSerializer("MZ9").serialize(OutputAudioRawFrame(pcm, 8000, 1)))
    assert message["event"] == "media" and message["streamSid"] == "MZ9"
    assert base64.b64decode(message["media"]["payload"]) == pcm_to_ulaw(pcm)


async def test_audio_of_before_a_clear_is_not_sent_after_it():
    serializer = TwilioSerializer("MZ9")
    stale = OutputAudioRawFrame(bytes(320), 8000, 1)
    await serializer.serialize(PlayoutPauseFrame())
    just_cut = OutputAudioRawFrame(bytes(320), 8000, 1)  # cut by the output as the clear went
    assert await serializer.serialize(stale) is None
    assert await serializer.serialize(just_cut) is None
    await asyncio.sleep(0.12)
    fresh = OutputAudioRawFrame(bytes(320), 8000, 1)
    assert json.loads(await serializer.serialize(fresh))["event"] == "media"


@pytest.mark.parametrize("frame", [InterruptionFrame(), PlayoutPauseFrame()])
async def test_an_interruption_or_a_playout_pause_becomes_clear(frame):
    text = await TwilioSerializer("MZ9").serialize(frame)
    assert json.loads(text) == {"event": "clear", "streamSid": "MZ9"}


async def test_transport_messages_pass_verbatim():
    mark = {"event": "mark", "streamSid": "MZ9", "mark": {"name": "m1"}}
    text = await TwilioSerializer("MZ9").serialize(OutputTransportMessageUrgentFrame(message=mark))
    assert json.loads(text) == mark


async def test_dtmf_becomes_a_keypad_frame():
    message = json.dumps({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": "5"}})
    frame = await TwilioSerializer("MZ1").deserialize(message)
    assert isinstance(frame, InputDTMFFrame) and frame.button.value == "5"


async def test_stop_is_remembered_as_the_caller_leaving():
    serializer = TwilioSerializer("MZ1")
    assert await serializer.deserialize(json.dumps({"event": "stop", "stop": {}})) is None
    assert serializer.stopped


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        ("not json at all", "not JSON"),
        (json.dumps({"no": "event"}), "without an 'event'"),
        (json.dumps({"event": "surprise"}), "unknown event 'surprise'"),
        (media("!!!not base64!!!"), "not valid base64"),
        (json.dumps({"event": "media", "media": {}}), "without media.payload"),
        (json.dumps({"event": "dtmf", "dtmf": {"digit": "x"}}), "digit 'x'"),
        ("x" * 1_000_000, "1000000-byte message"),
        (b"\x00\x01", "binary message"),
    ],
)
async def test_malformed_input_is_dropped_with_a_warning_naming_the_problem(
    message, complaint, log_lines
):
    assert await TwilioSerializer("MZ1").deserialize(message) is None
    assert len(log_lines) == 1 and complaint in log_lines[0]


async def test_a_flood_of_bad_messages_logs_a_few_lines_not_thousands(log_lines):
    serializer = TwilioSerializer("MZ1")
    for _ in range(1000):
        await serializer.deserialize("garbage")
    assert 3 < len(log_lines) <= 13
    assert "(1000 so far)" in log_lines[-1]


async def test_a_pipeline_that_is_not_8khz_is_refused():
    setup = FrameProcessorSetup(
        clock=None, task_manager=None, pipeline_worker=None, audio_in_sample_rate=16000
    )
    with pytest.raises(ValueError, match="8000 Hz"):
        await TwilioSerializer("MZ1").setup(setup)


async def test_audio_at_another_rate_is_dropped_not_sent(log_lines):
    frame = OutputAudioRawFrame(b"\x00\x00" * 480, 24000, 1)
    assert await TwilioSerializer("MZ1").serialize(frame) is None
    assert "24000 Hz" in log_lines[0]
