"""WordTimedCartesiaTTSService: each word's end marked in its audio, from Cartesia's timestamps."""

import asyncio

from pipecat.frames.frames import (
    ErrorFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSTextFrame,
)
from pipecat.tests.utils import SleepFrame, run_test

from services.cartesia_tts import WordTimedCartesiaTTSService
from standins.cartesia_tts import CartesiaTTSStandIn
from standins.speech import synthesize
from telephony.frames import SentenceEndFrame

TEXT = "Hello there. How are you?"
LONG = "We also have a vegetarian risotto with wild mushrooms that our regulars love."


def reply(*sentences: str) -> list:
    frames = [LLMFullResponseStartFrame()]
    frames += [LLMTextFrame(f"{sentence} ") for sentence in sentences]
    return [*frames, LLMFullResponseEndFrame()]


def service(stand_in: CartesiaTTSStandIn) -> WordTimedCartesiaTTSService:
    return WordTimedCartesiaTTSService(
        api_key="test-key",
        url=f"{stand_in.ws_url}/tts/websocket",
        sample_rate=8000,
        settings=WordTimedCartesiaTTSService.Settings(voice="voice-1"),
    )


def timeline(frames) -> list[tuple[str, str, int]]:
    """("text" or "end", text, audio bytes of the reply before it) of each word frame and end."""
    events, audio = [], 0
    for frame in frames:
        if isinstance(frame, TTSStartedFrame):
            events, audio = [], 0  # the last reply's
        elif isinstance(frame, TTSAudioRawFrame):
            audio += len(frame.audio)
        elif isinstance(frame, TTSTextFrame | SentenceEndFrame):
            kind = "text" if isinstance(frame, TTSTextFrame) else "end"
            events.append((kind, frame.text.strip(), audio))
    return events


def exact(text: str) -> list[tuple[str, str, int]]:
    """Each word's frame where its audio starts, its end where the next word's starts."""
    speech = synthesize(text)
    starts = [round(w.start_s * 8000) * 2 for w in speech.words]
    ends = [*starts[1:], len(speech.pcm)]
    events = []
    for i, word in enumerate(speech.words):
        events.append(("text", word.word, starts[i]))
        if i:
            events.append(("end", speech.words[i - 1].word, starts[i]))
    return [*events, ("end", speech.words[-1].word, ends[-1])]


async def test_each_word_ends_exactly_where_the_next_one_starts():
    async with CartesiaTTSStandIn() as stand_in:
        frames = [*reply("Hello there.", "How are you?"), SleepFrame(0.5)]
        down, _ = await run_test(service(stand_in), frames_to_send=frames, start_timeout=5)
    assert timeline(down) == exact(TEXT)
    audio = b"".join(f.audio for f in down if isinstance(f, TTSAudioRawFrame))
    assert audio == synthesize(TEXT).pcm
    # Cartesia joins a context's transcripts verbatim: the sentences need their space.
    assert stand_in.contexts[0].text == "Hello there. How are you? "


async def test_timestamps_that_follow_their_audio_mark_words_late_never_early():
    async with CartesiaTTSStandIn(timestamps="after") as stand_in:
        frames = [*reply("Hello there.", "How are you?"), SleepFrame(0.5)]
        down, _ = await run_test(service(stand_in), frames_to_send=frames, start_timeout=5)
    got = [(text, at) for kind, text, at in timeline(down) if kind == "end"]
    truth = [(text, at) for kind, text, at in exact(TEXT) if kind == "end"]
    assert [text for text, _ in got] == [text for text, _ in truth]
    assert all(at >= true_at for (_, at), (_, true_at) in zip(got, truth, strict=True))
    assert got[-1] == truth[-1]


async def test_without_timestamps_each_sentence_is_one_unit_ending_with_the_audio():
    async with CartesiaTTSStandIn(timestamps=None) as stand_in:
        frames = [*reply("Hello there.", "How are you?"), SleepFrame(0.5)]
        down, _ = await run_test(service(stand_in), frames_to_send=frames, start_timeout=5)
    end = len(synthesize(TEXT).pcm)
    assert timeline(down) == [
        ("text", "Hello there.", end),
        ("text", "How are you?", end),
        ("end", "Hello there.", end),
        ("end", "How are you?", end),
    ]


async def test_an_interruption_cancels_the_context_and_the_next_reply_is_timed_afresh():
    frames = [*reply(LONG), SleepFrame(0.6), InterruptionFrame(), SleepFrame(0.2)]
    frames += [*reply("Hello there.", "How are you?"), SleepFrame(3.0)]
    async with CartesiaTTSStandIn(realtime_factor=2.0) as stand_in:
        down, _ = await run_test(service(stand_in), frames_to_send=frames, start_timeout=5)
    first, second = stand_in.contexts
    assert stand_in.connections[0].cancels == [first.context_id]
    assert first.cancelled and not first.done and second.done
    assert timeline(down) == exact(TEXT)


async def test_the_pipeline_starts_without_waiting_for_the_handshake():
    async with CartesiaTTSStandIn(connect_delay=1.5) as stand_in:
        started = asyncio.get_running_loop().time()
        await run_test(service(stand_in), frames_to_send=[], start_timeout=5)
        # Stock CartesiaTTSService would have held the pipeline's start for the handshake.
        assert asyncio.get_running_loop().time() - started < 1.0
        frames = [*reply("Hello there."), SleepFrame(2.5)]
        down, _ = await run_test(service(stand_in), frames_to_send=frames, start_timeout=5)
    audio = sum(len(f.audio) for f in down if isinstance(f, TTSAudioRawFrame))
    assert audio == len(synthesize("Hello there.").pcm), "the first sentence waited for the socket"


async def test_a_request_cartesia_refuses_is_an_error_naming_its_reason():
    async with CartesiaTTSStandIn() as stand_in:
        tts = WordTimedCartesiaTTSService(
            api_key="test-key", url=f"{stand_in.ws_url}/tts/websocket", sample_rate=8000
        )  # no voice
        frames = [*reply("Hello there."), SleepFrame(0.3)]
        down, up = await run_test(tts, frames_to_send=frames, start_timeout=5)
    errors = [f.error for f in up if isinstance(f, ErrorFrame)]
    assert any("Invalid voice" in error for error in errors), errors
    assert not any(isinstance(f, TTSAudioRawFrame) for f in down)


async def test_a_wrong_key_is_an_error_naming_http_401():
    async with CartesiaTTSStandIn(api_key="right") as stand_in:
        tts = WordTimedCartesiaTTSService(
            api_key="wrong",
            url=f"{stand_in.ws_url}/tts/websocket",
            sample_rate=8000,
            settings=WordTimedCartesiaTTSService.Settings(voice="voice-1"),
        )
        frames = [*reply("Hello there."), SleepFrame(0.3)]
        down, up = await run_test(tts, frames_to_send=frames, start_timeout=5)
    assert [f for f in up if isinstance(f, ErrorFrame) and "HTTP 401" in f.error]
    assert not any(isinstance(f, TTSAudioRawFrame) for f in down)
    assert stand_in.refused == [401]
