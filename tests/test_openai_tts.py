"""ResampledOpenAITTSService: 8 kHz speech from OpenAI, each sentence's text and end in order."""

import pytest
from pipecat.frames.frames import (
    ErrorFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.tests.utils import SleepFrame, run_test

from services.downsampler import Downsampler
from services.openai_tts import ResampledOpenAITTSService
from services.tls import shared_tls
from standins.openai_speech import OpenAISpeechStandIn
from standins.speech import synthesize
from telephony.frames import SentenceEndFrame

LONG = "We also have a vegetarian risotto with wild mushrooms that our regulars love."


def reply(*sentences: str) -> list:
    frames = [LLMFullResponseStartFrame()]
    frames += [LLMTextFrame(f"{sentence} ") for sentence in sentences]
    return [*frames, LLMFullResponseEndFrame()]


def at_8khz(text: str) -> bytes:
    """The stand-in's 24 kHz voice for one sentence, as the service resamples it."""
    downsampler = Downsampler()
    return downsampler.process(synthesize(text, sample_rate=24000).pcm) + downsampler.flush()


def service(stand_in: OpenAISpeechStandIn, key="test-key", **settings):
    settings = ResampledOpenAITTSService.Settings(voice="coral", **settings)
    return ResampledOpenAITTSService(
        api_key=key, base_url=f"{stand_in.http_url}/v1", settings=settings
    )


def timeline(frames) -> list[tuple[str, str, int]]:
    """(kind, text, audio bytes before it) of each text frame and sentence boundary."""
    events, audio = [], 0
    for frame in frames:
        if isinstance(frame, TTSAudioRawFrame):
            audio += len(frame.audio)
        elif isinstance(frame, TTSTextFrame | SentenceEndFrame):
            events.append((type(frame).__name__, frame.text.strip(), audio))
    return events


async def test_each_sentence_is_spoken_at_8khz_its_text_first_and_its_end_marked(log_lines):
    async with OpenAISpeechStandIn(chunk_ms=40) as stand_in:
        tts = service(stand_in, instructions="Speak warmly.")
        frames = [*reply("Hello there.", "How are you?"), SleepFrame(0.5)]
        down, _ = await run_test(tts, frames_to_send=frames, start_timeout=5)
    first, second = at_8khz("Hello there."), at_8khz("How are you?")
    audio = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    assert b"".join(f.audio for f in audio) == first + second
    assert {(f.sample_rate, f.num_channels) for f in audio} == {(8000, 1)}
    assert timeline(down) == [
        ("TTSTextFrame", "Hello there.", 0),
        ("SentenceEndFrame", "Hello there.", len(first)),
        ("TTSTextFrame", "How are you?", len(first)),
        ("SentenceEndFrame", "How are you?", len(first) + len(second)),
    ]
    # All of the first 40 ms chunk but its last 3 ms left at once (24 samples at 8 kHz).
    assert len(audio[0].audio) == (960 - 72) // 3 * 2
    assert [r.text for r in stand_in.requests] == ["Hello there.", "How are you?"]
    assert {r.authorization for r in stand_in.requests} == {"Bearer test-key"}
    assert stand_in.requests[0].body["instructions"] == "Speak warmly."
    assert not [line for line in log_lines if "24000" in line], "no sample-rate warning"
    assert tts._client.is_closed(), "its HTTP client is closed at cleanup"


async def test_an_interruption_abandons_the_http_stream_of_the_sentence_being_fetched():
    async with OpenAISpeechStandIn(realtime_factor=1.0) as stand_in:
        tts = service(stand_in)
        frames = [*reply(LONG), SleepFrame(0.6), InterruptionFrame(), SleepFrame(0.3)]
        down, _ = await run_test(tts, frames_to_send=frames, start_timeout=5)
        (request,) = await stand_in.wait_for_requests(1)
    assert request.cancelled and not request.completed
    heard = sum(len(f.audio) for f in down if isinstance(f, TTSAudioRawFrame))
    assert 0 < heard < len(at_8khz(LONG)) // 2
    assert [kind for kind, _, _ in timeline(down)] == ["TTSTextFrame"], "no end: it never ended"


async def test_a_refused_sentence_is_an_error_and_not_said_and_the_next_one_is_spoken():
    async with OpenAISpeechStandIn(fail_next=2) as stand_in:  # the first try and its retry
        tts = service(stand_in)
        frames = [*reply("Hello there.", "How are you?"), SleepFrame(1.5)]
        down, up = await run_test(tts, frames_to_send=frames, start_timeout=5)
    errors = [f.error for f in up if isinstance(f, ErrorFrame)]
    assert any("HTTP 500" in error for error in errors), errors
    assert timeline(down) == [
        ("TTSTextFrame", "How are you?", 0),
        ("SentenceEndFrame", "How are you?", len(at_8khz("How are you?"))),
    ]


async def test_a_wrong_key_is_an_error_that_names_http_401():
    async with OpenAISpeechStandIn(api_key="right") as stand_in:
        tts = service(stand_in, key="wrong")
        frames = [*reply("Hello there."), SleepFrame(0.3)]
        down, up = await run_test(tts, frames_to_send=frames, start_timeout=5)
    assert [f.error for f in up if isinstance(f, ErrorFrame) and "HTTP 401" in f.error]
    assert not any(isinstance(f, TTSAudioRawFrame | TTSTextFrame) for f in down)


async def test_it_speaks_only_at_the_calls_rate():
    with pytest.raises(ValueError, match="8000 Hz, not 16000 Hz"):
        ResampledOpenAITTSService(api_key="k", sample_rate=16000)


async def test_three_sentences_are_three_requests_each_ended_in_turn():
    async with OpenAISpeechStandIn() as stand_in:
        tts = service(stand_in)
        frames = [*reply("One.", "Two.", "Three."), SleepFrame(0.5)]
        down, _ = await run_test(tts, frames_to_send=frames, start_timeout=5)
    ends = [e for e in timeline(down) if e[0] == "SentenceEndFrame"]
    assert [text for _, text, _ in ends] == ["One.", "Two.", "Three."]
    assert [r.status for r in stand_in.requests] == [200, 200, 200]


async def test_the_declared_options_reach_each_request():
    async with OpenAISpeechStandIn() as stand_in:
        tts = service(stand_in, model="tts-1", instructions="Speak warmly.", speed=1.25)
        await run_test(tts, frames_to_send=[*reply("Hello there."), SleepFrame(0.3)])
    [request] = stand_in.requests
    assert request.body == {
        "input": "Hello there.",
        "model": "tts-1",
        "voice": "coral",
        "response_format": "pcm",
        "instructions": "Speak warmly.",
        "speed": 1.25,
    }


async def test_a_speak_frame_kept_out_of_the_context_is_spoken_with_its_text_kept_out():
    async with OpenAISpeechStandIn() as stand_in:
        tts = service(stand_in)
        frames = [
            TTSSpeakFrame("One moment.", append_to_context=False),
            SleepFrame(0.3),
            TTSSpeakFrame("Here it is."),
            SleepFrame(0.3),
        ]
        down, _ = await run_test(tts, frames_to_send=frames, start_timeout=5)
    started = [f for f in down if isinstance(f, TTSStartedFrame)]
    assert [f.append_to_context for f in started] == [False, True]
    texts = [(f.text, f.append_to_context) for f in down if isinstance(f, TTSTextFrame)]
    assert texts == [("One moment.", False), ("Here it is.", True)]
    assert timeline(down)[1] == ("SentenceEndFrame", "One moment.", len(at_8khz("One moment.")))
    assert sum(isinstance(f, TTSStoppedFrame) for f in down) == 2


def test_its_http_client_uses_the_processs_tls_context():
    tts = ResampledOpenAITTSService(api_key="k", base_url="http://127.0.0.1:9/v1")
    assert tts._client._client._transport._pool._ssl_context is shared_tls()
