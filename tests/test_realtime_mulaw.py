"""μ-law passthrough: the caller's bytes reach OpenAI as Twilio sent them, 0x7F included."""

from pipecat.tests.utils import SleepFrame, run_test
from test_realtime_llm import service

from standins.openai_realtime import OpenAIRealtimeStandIn
from telephony.frames import MulawAudioFrame
from telephony.mulaw import ulaw_to_pcm

EVERY_BYTE = bytes(range(256))


async def test_openai_receives_every_byte_twilio_sent_negative_zero_too():
    ulaw = EVERY_BYTE * 25  # 6.4 kB: 0.8 s of every μ-law value, 0x7F among them
    frames = [
        MulawAudioFrame(ulaw_to_pcm(chunk), 8000, 1, ulaw=chunk)
        for chunk in (ulaw[i : i + 160] for i in range(0, len(ulaw), 160))
    ]
    async with OpenAIRealtimeStandIn() as stand_in:
        await run_test(service(stand_in), frames_to_send=[*frames, SleepFrame(0.5)])
    assert bytes(stand_in.connections[0].audio) == ulaw
