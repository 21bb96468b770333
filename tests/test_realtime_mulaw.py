"""μ-law passthrough: the caller's bytes reach OpenAI as Twilio sent them, 0x7F included."""

import base64
import json

from pipecat.tests.utils import SleepFrame, run_test
from test_realtime_llm import service

from processors.playback_state import Playback
from processors.twilio_serializer import TwilioSerializer
from standins.openai_realtime import OpenAIRealtimeStandIn
from telephony.frames import MulawAudioFrame
from telephony.mulaw import pcm_to_ulaw, ulaw_to_pcm

EVERY_BYTE = bytes(range(256))


def test_re_encoding_decoded_mulaw_loses_only_negative_zero():
    # Why the bytes travel with the PCM: G.711 decodes 0x7F ("negative zero") and 0xFF to 0.
    # The bot's own audio takes this path to Twilio, where 0x7F could only come back as 0xFF.
    assert pcm_to_ulaw(ulaw_to_pcm(EVERY_BYTE)) == EVERY_BYTE.replace(b"\x7f", b"\xff")


async def test_twilio_media_becomes_pcm_carrying_the_bytes_twilio_sent():
    payload = base64.b64encode(EVERY_BYTE).decode()
    message = {"event": "media", "streamSid": "MZ1", "media": {"payload": payload}}
    frame = await TwilioSerializer("MZ1").deserialize(json.dumps(message))
    assert isinstance(frame, MulawAudioFrame)
    assert frame.ulaw == EVERY_BYTE and frame.audio == ulaw_to_pcm(EVERY_BYTE)
    assert (frame.sample_rate, frame.num_channels) == (8000, 1)


async def test_openai_receives_every_byte_twilio_sent_negative_zero_too():
    ulaw = EVERY_BYTE * 25  # 6.4 kB: 0.8 s of every μ-law value, 0x7F among them
    frames = [
        MulawAudioFrame(ulaw_to_pcm(chunk), 8000, 1, ulaw=chunk)
        for chunk in (ulaw[i : i + 160] for i in range(0, len(ulaw), 160))
    ]
    async with OpenAIRealtimeStandIn() as stand_in:
        await run_test(service(stand_in, Playback()), frames_to_send=[*frames, SleepFrame(0.5)])
    assert bytes(stand_in.connections[0].audio) == ulaw
