"""The OpenAI transcription stand-in answers as api.openai.com does: raw HTTP, the SDK, pipecat."""

import io
import json
import wave

import aiohttp
import pytest
from openai import AsyncOpenAI
from pipecat.frames.frames import (
    InputAudioRawFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.services.openai.stt import OpenAISTTService
from pipecat.tests.utils import SleepFrame, run_test

from recordings import RECORDINGS
from standins.audio import read_wav
from standins.openai_transcription import OpenAITranscriptionStandIn
from standins.script import BOOK_TABLE

DATA = RECORDINGS
AUTH = {"Authorization": "Bearer sk-test"}


def wav(pcm: bytes, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return out.getvalue()


def form(file: bytes | None = None, **fields: str) -> aiohttp.FormData:
    data = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        data.add_field(name, value)
    if file is not None:
        data.add_field("file", file, filename="audio.wav", content_type="audio/wav")
    return data


async def post(stand_in, data: aiohttp.FormData, headers=AUTH) -> tuple[int, str]:
    url = f"{stand_in.http_url}/v1/audio/transcriptions"
    async with aiohttp.ClientSession() as http, http.post(url, data=data, headers=headers) as r:
        return r.status, await r.text()


async def test_the_sdk_gets_the_words_of_a_known_recording_and_its_usage():
    async with OpenAITranscriptionStandIn() as stand_in:
        client = AsyncOpenAI(api_key="sk-test", base_url=f"{stand_in.http_url}/v1")
        audio = wav(read_wav(DATA / "book_table.wav"))
        result = await client.audio.transcriptions.create(
            file=("audio.wav", audio, "audio/wav"),
            model="gpt-4o-transcribe",
            language="en",
            prompt="Luigi's",
            include=["logprobs"],
        )
        await client.close()
    assert result.text == BOOK_TABLE
    assert result.usage.type == "tokens" and result.usage.input_token_details.audio_tokens > 30
    assert [p.token for p in result.logprobs] == BOOK_TABLE.split()
    (request,) = stand_in.requests
    assert request.authorization == "Bearer sk-test" and request.status == 200
    assert request.fields == {
        "model": "gpt-4o-transcribe",
        "language": "en",
        "prompt": "Luigi's",
        "include[]": ["logprobs"],
    }
    assert request.filename == "audio.wav" and request.file_type == "audio/wav"


async def test_text_and_whisper_verbose_json_formats():
    audio = wav(read_wav(DATA / "yes.wav"))
    async with OpenAITranscriptionStandIn() as stand_in:
        text = await post(stand_in, form(audio, model="gpt-transcribe", response_format="text"))
        verbose = form(audio, model="whisper-1", response_format="verbose_json")
        status, body = await post(stand_in, verbose)
        refused = form(audio, model="gpt-transcribe", response_format="verbose_json")
        refused_status, _ = await post(stand_in, refused)
    assert text == (200, "Yes, that works.\n")
    assert status == 200
    verbose_body = json.loads(body)
    assert verbose_body["text"] == "Yes, that works." and verbose_body["segments"]
    assert verbose_body["usage"] == {"type": "duration", "seconds": 2}
    assert refused_status == 400


@pytest.mark.parametrize(
    ("headers", "fields", "audio", "status", "param", "code"),
    [
        ({}, {"model": "gpt-transcribe"}, True, 401, None, None),
        (AUTH, {"model": "gpt-transcribe"}, False, 400, "file", None),
        (AUTH, {}, True, 400, "model", None),
        (AUTH, {"model": "gpt-9-transcribe"}, True, 404, None, "model_not_found"),
    ],
)
async def test_bad_requests_get_openais_errors(headers, fields, audio, status, param, code):
    file = wav(read_wav(DATA / "yes.wav")) if audio else None
    async with OpenAITranscriptionStandIn() as stand_in:
        answer, body = await post(stand_in, form(file, **fields), headers=headers)
    error = json.loads(body)["error"]
    assert answer == status and error["message"]
    assert (error["param"], error["code"]) == (param, code)
    assert error["type"] == "invalid_request_error"


async def test_a_file_that_is_not_audio_or_too_short_is_refused():
    async with OpenAITranscriptionStandIn() as stand_in:
        junk = await post(stand_in, form(b"not a wav file", model="gpt-transcribe"))
        short = await post(stand_in, form(wav(bytes(800)), model="gpt-transcribe"))
    assert junk[0] == 400 and "Invalid file format" in junk[1]
    assert short[0] == 400 and "audio_too_short" in short[1]


async def test_a_wrong_key_is_refused_when_the_stand_in_knows_the_key():
    async with OpenAITranscriptionStandIn(api_key="sk-right") as stand_in:
        status, body = await post(stand_in, form(wav(bytes(16000)), model="gpt-transcribe"))
    assert status == 401 and "invalid_api_key" in body


def audio_frames(pcm: bytes) -> list[InputAudioRawFrame]:
    return [InputAudioRawFrame(pcm[i : i + 320], 8000, 1) for i in range(0, len(pcm), 320)]


async def test_pipecats_openai_stt_uploads_the_utterance_between_the_vad_frames():
    pcm = read_wav(DATA / "book_table.wav")
    async with OpenAITranscriptionStandIn(fail_next=1) as stand_in:
        service = OpenAISTTService(
            api_key="sk-test",
            base_url=f"{stand_in.http_url}/v1",
            sample_rate=8000,
            settings=OpenAISTTService.Settings(model="gpt-4o-transcribe", language="en"),
        )
        frames = [*audio_frames(bytes(16000)), VADUserStartedSpeakingFrame()]
        frames += [*audio_frames(pcm), VADUserStoppedSpeakingFrame(), SleepFrame(1.5)]
        down, _ = await run_test(service, frames_to_send=frames)
        await service._client.close()  # stock pipecat leaves it open (processors/openai_stt.py)
    assert [f.text for f in down if type(f) is TranscriptionFrame] == [BOOK_TABLE]
    failed, answered = stand_in.requests  # the SDK retried the 500
    assert (failed.status, answered.status) == (500, 200)
    assert answered.fields["model"] == "gpt-4o-transcribe" and answered.sample_rate == 8000
    # The upload is the utterance, 1 s kept from before the VAD's start, and pipecat's
    # 0.5 s of trailing silence.
    assert answered.duration == pytest.approx(len(pcm) / 16000 + 1.0 + 0.5, abs=0.03)
