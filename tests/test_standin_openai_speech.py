"""The OpenAI speech stand-in speaks `POST /v1/audio/speech` to raw HTTP and to pipecat's client."""

import asyncio
import json

import aiohttp
import pytest
from pipecat.frames.frames import ErrorFrame, TTSAudioRawFrame, TTSSpeakFrame
from pipecat.services.openai.tts import OpenAITTSService
from pipecat.tests.utils import SleepFrame, run_test

from standins.openai_speech import OpenAISpeechStandIn
from standins.speech import synthesize

AUTH = {"Authorization": "Bearer test-key"}
TEXT = "Thanks for calling. How can I help you today?"
BODY = {"model": "gpt-4o-mini-tts", "input": TEXT, "voice": "coral", "response_format": "pcm"}


async def post(stand_in: OpenAISpeechStandIn, body: dict, headers=AUTH) -> tuple[int, dict, bytes]:
    async with aiohttp.ClientSession() as http:
        url = f"{stand_in.http_url}/v1/audio/speech"
        async with http.post(url, json=body, headers=headers) as response:
            return response.status, dict(response.headers), await response.read()


async def test_pcm_is_24khz_16_bit_mono_streamed_in_chunks_and_the_request_is_recorded():
    async with OpenAISpeechStandIn(chunk_ms=40) as stand_in:
        status, headers, audio = await post(stand_in, {**BODY, "instructions": "Warmly."})
    assert status == 200
    assert headers["Content-Type"] == "audio/pcm"
    assert headers["Transfer-Encoding"] == "chunked"
    assert audio == synthesize(TEXT, sample_rate=24000).pcm
    (request,) = stand_in.requests
    assert (request.authorization, request.model, request.voice) == (
        "Bearer test-key",
        "gpt-4o-mini-tts",
        "coral",
    )
    assert request.text == TEXT and request.instructions == "Warmly."
    assert request.completed and not request.cancelled and request.audio_bytes == len(audio)


async def test_wav_is_the_same_audio_behind_a_streaming_header():
    async with OpenAISpeechStandIn() as stand_in:
        status, headers, audio = await post(stand_in, {**BODY, "response_format": "wav"})
    assert status == 200 and headers["Content-Type"] == "audio/wav"
    assert audio[:4] == b"RIFF" and audio[8:16] == b"WAVEfmt "
    assert int.from_bytes(audio[24:28], "little") == 24000
    assert audio[44:] == synthesize(TEXT, sample_rate=24000).pcm


@pytest.mark.parametrize(
    ("body", "headers", "status", "param"),
    [
        (BODY, {}, 401, None),
        (BODY, {"Authorization": "Bearer wrong"}, 401, None),
        ({**BODY, "voice": "thalia"}, AUTH, 400, "voice"),
        ({**BODY, "model": "gpt-4.1-mini"}, AUTH, 400, "model"),
        ({**BODY, "input": "x" * 4097}, AUTH, 400, "input"),
        ({**BODY, "speed": 5.0}, AUTH, 400, "speed"),
        ({**BODY, "response_format": "mp3"}, AUTH, 400, "response_format"),
        ({k: v for k, v in BODY.items() if k != "input"}, AUTH, 400, "input"),
    ],
)
async def test_a_bad_request_gets_openais_error_body(body, headers, status, param):
    async with OpenAISpeechStandIn(api_key="test-key") as stand_in:
        got, _, raw = await post(stand_in, body, headers)
    assert got == status
    error = json.loads(raw)["error"]
    assert error["message"] and error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert stand_in.requests[0].status == status and stand_in.requests[0].audio_bytes == 0


async def test_fail_next_answers_500_then_recovers():
    async with OpenAISpeechStandIn(fail_next=1) as stand_in:
        first, _, _ = await post(stand_in, BODY)
        second, _, audio = await post(stand_in, BODY)
    assert (first, second) == (500, 200) and audio


async def test_ttfb_and_pace_shape_the_stream():
    audio_s = synthesize(TEXT, sample_rate=24000).duration_s
    async with OpenAISpeechStandIn(ttfb=0.3, realtime_factor=4.0) as stand_in:
        started = asyncio.get_running_loop().time()
        await post(stand_in, BODY)
        took = asyncio.get_running_loop().time() - started
    request = stand_in.requests[0]
    assert request.first_byte_at - request.at >= 0.3
    assert 0.3 + audio_s / 4 - 0.05 <= took <= 0.3 + audio_s / 4 + 0.5


async def test_a_client_that_stops_reading_is_recorded_as_cancelled():
    async with OpenAISpeechStandIn(realtime_factor=1.0) as stand_in, aiohttp.ClientSession() as h:
        url = f"{stand_in.http_url}/v1/audio/speech"
        async with h.post(url, json=BODY, headers=AUTH) as response:
            await response.content.read(4800)
        (request,) = await stand_in.wait_for_requests(1)
    assert request.cancelled and not request.completed
    assert request.audio_bytes < len(synthesize(TEXT, sample_rate=24000).pcm) // 2


# run_test's default start_timeout (1 s) can be missed on a cold start: every one gets 5 s.


async def test_pipecat_openai_tts_at_24khz_gets_exactly_the_stand_in_voice():
    async with OpenAISpeechStandIn() as stand_in:
        tts = OpenAITTSService(
            api_key="test-key",
            base_url=f"{stand_in.http_url}/v1",
            sample_rate=24000,
            settings=OpenAITTSService.Settings(voice="coral", instructions="Speak warmly."),
        )
        down, _ = await run_test(
            tts, frames_to_send=[TTSSpeakFrame(TEXT), SleepFrame(0.3)], start_timeout=5
        )
        await tts._client.close()  # stock pipecat leaves its HTTP client open
    audio = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    assert b"".join(f.audio for f in audio) == synthesize(TEXT, sample_rate=24000).pcm
    assert {f.sample_rate for f in audio} == {24000}
    (request,) = stand_in.requests
    assert request.authorization == "Bearer test-key"
    assert request.body == {
        "input": TEXT,
        "model": "gpt-4o-mini-tts",
        "voice": "coral",
        "response_format": "pcm",
        "instructions": "Speak warmly.",
    }


async def test_pipecat_openai_tts_asked_for_8khz_labels_24khz_audio_as_8khz(log_lines):
    """Why processors/resampled_openai_tts.py exists: stock pipecat only warns."""
    async with OpenAISpeechStandIn() as stand_in:
        tts = OpenAITTSService(api_key="k", base_url=f"{stand_in.http_url}/v1", sample_rate=8000)
        down, _ = await run_test(
            tts, frames_to_send=[TTSSpeakFrame("Hello."), SleepFrame(0.3)], start_timeout=5
        )
        await tts._client.close()  # stock pipecat leaves its HTTP client open
    audio = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    assert {f.sample_rate for f in audio} == {8000}
    assert b"".join(f.audio for f in audio) == synthesize("Hello.", sample_rate=24000).pcm
    assert any("only supports 24000Hz" in line for line in log_lines)


async def test_pipecat_openai_tts_reports_a_refused_voice_as_an_error():
    async with OpenAISpeechStandIn() as stand_in:
        tts = OpenAITTSService(
            api_key="k",
            base_url=f"{stand_in.http_url}/v1",
            sample_rate=24000,
            settings=OpenAITTSService.Settings(voice="thalia"),
        )
        _, up = await run_test(
            tts, frames_to_send=[TTSSpeakFrame("Hello."), SleepFrame(0.2)], start_timeout=5
        )
        await tts._client.close()  # stock pipecat leaves its HTTP client open
    assert any(isinstance(f, ErrorFrame) and "thalia" in f.error for f in up)
    assert stand_in.requests == []  # pipecat checks its voice list before asking
