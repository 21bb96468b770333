"""DeepgramAuraTTSService: sentence boundaries in order with the audio, against the stand-in."""

import asyncio

import pytest
from pipecat.frames.frames import (
    CancelFrame,
    ErrorFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    TTSUpdateSettingsFrame,
)
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.utils.errors import ErrorCategory, extract_http_status_code

from pipelines.provider import ProviderAccess, ProviderContext
from pipelines.providers.deepgram import AuraOptions, make_aura
from services.deepgram_tts import DeepgramAuraTTSService
from standins.deepgram_tts import DeepgramTTSStandIn
from standins.speech import synthesize
from telephony.frames import SentenceEndFrame

BOOKING = ["Of course.", "A table for two tomorrow at seven.", "May I have a name?"]


class SlowUplink:
    """A TCP relay to `port` whose client-to-server bytes arrive `delay` seconds late.

    As over the internet: Deepgram reads a Clear only after sending more of the cut audio.
    """

    def __init__(self, port: int, delay: float) -> None:
        self.port, self.delay = port, delay
        self.server: asyncio.Server | None = None

    @property
    def ws_url(self) -> str:
        assert self.server
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> "SlowUplink":
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.server
        self.server.close()

    async def _relay(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter):
        server_in, server_out = await asyncio.open_connection("127.0.0.1", self.port)
        await asyncio.gather(
            self._pipe(client_in, server_out, self.delay),
            self._pipe(server_in, client_out, 0.0),
            return_exceptions=True,
        )

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, delay: float):
        try:
            while data := await source.read(65536):
                await asyncio.sleep(delay)  # in order: each read waits its turn
                sink.write(data)
                await sink.drain()
        finally:
            sink.close()


def pcm(text: str) -> bytes:
    return synthesize(text, sample_rate=8000).pcm


def reply(*sentences: str) -> list[Frame]:
    """An LLM reply streamed all at once, each sentence as one token."""
    tokens = [LLMTextFrame(f"{s} ") for s in sentences]
    return [LLMFullResponseStartFrame(), *tokens, LLMFullResponseEndFrame()]


def tts_for(stand_in: DeepgramTTSStandIn, **kwargs) -> DeepgramAuraTTSService:
    return DeepgramAuraTTSService(api_key="k", base_url=stand_in.ws_url, sample_rate=8000, **kwargs)


def outline(down) -> list[str]:
    """The reply's frames as labels, a run of audio frames as one "audio"."""
    labels: list[str] = []
    for frame in down:
        if isinstance(frame, TTSAudioRawFrame):
            label = "audio"
        elif isinstance(frame, TTSTextFrame):
            label = f"text {frame.text.strip()}"
        elif isinstance(frame, SentenceEndFrame):
            label = f"end {frame.text}"
        elif isinstance(frame, (TTSStartedFrame, TTSStoppedFrame, InterruptionFrame)):
            label = type(frame).__name__
        else:
            continue
        if not labels or label != "audio" or labels[-1] != "audio":
            labels.append(label)
    return labels


def audio_after(down, frame_type: type) -> bytes:
    """The audio pushed after the first frame of `frame_type`."""
    index = next(i for i, f in enumerate(down) if isinstance(f, frame_type))
    return b"".join(f.audio for f in down[index:] if isinstance(f, TTSAudioRawFrame))


async def test_each_sentence_ends_with_a_boundary_right_after_its_audio():
    frames = [LLMFullResponseStartFrame(), LLMTextFrame("Hello there. "), LLMTextFrame("How ")]
    frames += [LLMTextFrame("are you? "), LLMFullResponseEndFrame(), SleepFrame(1.0)]
    async with DeepgramTTSStandIn() as stand_in:
        down, _ = await run_test(tts_for(stand_in), frames_to_send=frames, start_timeout=5)
    audio_before: list[int] = []
    total = 0
    for frame in down:
        if isinstance(frame, TTSAudioRawFrame):
            total += len(frame.audio)
        elif isinstance(frame, SentenceEndFrame):
            audio_before.append(total)
    first = len(pcm("Hello there."))
    assert audio_before == [first, first + len(pcm("How are you?"))]
    assert [type(f) for f in down if isinstance(f, TTSStoppedFrame)] == [TTSStoppedFrame]
    (connection,) = stand_in.connections
    assert connection.flushes == 3  # one per sentence, one for the end of the reply


async def test_each_sentences_text_comes_after_the_audio_before_it_and_ahead_of_its_own():
    async with DeepgramTTSStandIn(realtime_factor=2.0) as stand_in:
        frames = [*reply(*BOOKING), SleepFrame(2.5)]
        down, _ = await run_test(tts_for(stand_in), frames_to_send=frames, start_timeout=5)
    one, two, three = BOOKING
    assert outline(down) == [
        "TTSStartedFrame",
        f"text {one}",
        "audio",
        f"end {one}",
        f"text {two}",
        "audio",
        f"end {two}",
        f"text {three}",
        "audio",
        f"end {three}",
        "TTSStoppedFrame",
    ]
    # Every sentence was sent before the first one's audio had ended: the text waited.
    (connection,) = stand_in.connections
    assert connection.speaks_at[-1] < connection.audio_at[1]


async def test_words_spoken_right_after_a_reply_show_their_text_after_the_replys_end():
    # An apology queued behind a reply whose end is not Flushed yet (a stream cut, say).
    async with DeepgramTTSStandIn(realtime_factor=2.0) as stand_in:
        frames = [*reply("Of course."), TTSSpeakFrame("Sorry, say that again?"), SleepFrame(2.0)]
        down, _ = await run_test(tts_for(stand_in), frames_to_send=frames, start_timeout=5)
    assert outline(down) == [
        "TTSStartedFrame",
        "text Of course.",
        "audio",
        "end Of course.",
        "TTSStoppedFrame",
        "TTSStartedFrame",
        "text Sorry, say that again?",
        "audio",
        "end Sorry, say that again?",
        "TTSStoppedFrame",
    ]


async def test_the_pipeline_starts_without_waiting_for_the_handshake():
    async with DeepgramTTSStandIn(connect_delay=3.0) as stand_in:
        started = asyncio.get_running_loop().time()
        await run_test(tts_for(stand_in), frames_to_send=[], start_timeout=5)
        # Stock DeepgramTTSService would have held the pipeline's start for the 3 s handshake.
        assert asyncio.get_running_loop().time() - started < 2.0
        frames = [*reply("Hello there."), SleepFrame(4.0)]
        down, _ = await run_test(tts_for(stand_in), frames_to_send=frames, start_timeout=5)
    audio = b"".join(f.audio for f in down if isinstance(f, TTSAudioRawFrame))
    assert audio == pcm("Hello there."), "the first sentence waited for the socket"


async def test_make_aura_puts_the_voice_and_the_calls_rate_in_the_url():
    async with DeepgramTTSStandIn(api_key="test-key") as stand_in:
        access = ProviderAccess(
            {"DEEPGRAM_API_KEY": "test-key", "DEEPGRAM_BASE_URL": stand_in.ws_url}
        )
        context = ProviderContext(access=access, system_prompt="…", language="en")
        tts = make_aura(AuraOptions(voice="aura-2-thalia-en"), context)
        down, _ = await run_test(tts, frames_to_send=[*reply("Hi."), SleepFrame(1.0)])
    (connection,) = stand_in.connections
    expected = {"model": "aura-2-thalia-en", "encoding": "linear16", "sample_rate": "8000"}
    assert connection.query == expected
    assert connection.authorization == "Token test-key"
    assert b"".join(f.audio for f in down if isinstance(f, TTSAudioRawFrame)) == pcm("Hi.")


async def test_an_interruption_clears_deepgram_and_drops_the_cut_replys_audio():
    frames = [*reply(*BOOKING), SleepFrame(0.6), InterruptionFrame(), *reply("Okay.")]
    async with (
        DeepgramTTSStandIn(realtime_factor=1.0) as stand_in,
        SlowUplink(stand_in.port, delay=0.1) as uplink,
    ):
        tts = DeepgramAuraTTSService(api_key="k", base_url=uplink.ws_url, sample_rate=8000)
        down, _ = await run_test(tts, frames_to_send=[*frames, SleepFrame(1.5)])
    (connection,) = stand_in.connections
    assert connection.clears == 1
    # Deepgram streamed 0.1 s more of the booking before it read the Clear, and the next
    # reply's Speak right after it: none of that audio reached the next reply.
    assert audio_after(down, InterruptionFrame) == pcm("Okay.")
    assert outline(down)[outline(down).index("InterruptionFrame") :] == [
        "InterruptionFrame",
        "TTSStartedFrame",
        "text Okay.",
        "audio",
        "end Okay.",
        "TTSStoppedFrame",
    ]


async def test_uninterruptible_speech_queued_behind_a_cut_reply_is_still_said_whole():
    farewell = TTSSpeakFrame("Goodbye!")
    farewell.interruptible = False
    frames = [*reply(*BOOKING), farewell, SleepFrame(0.6), InterruptionFrame(), SleepFrame(2.0)]
    async with (
        DeepgramTTSStandIn(realtime_factor=1.0) as stand_in,
        SlowUplink(stand_in.port, delay=0.1) as uplink,
    ):
        tts = DeepgramAuraTTSService(api_key="k", base_url=uplink.ws_url, sample_rate=8000)
        down, _ = await run_test(tts, frames_to_send=frames)
    (connection,) = stand_in.connections
    # The Clear cleared the farewell at Deepgram too: it was sent again after it.
    assert connection.clears == 1 and connection.speaks.count("Goodbye! ") == 2
    assert audio_after(down, InterruptionFrame) == pcm("Goodbye!")
    assert outline(down)[-3:] == ["audio", "end Goodbye!", "TTSStoppedFrame"]


async def test_a_refused_key_is_a_permanent_authentication_error_with_its_status():
    async with DeepgramTTSStandIn(api_key="right") as stand_in:
        tts = DeepgramAuraTTSService(api_key="wrong", base_url=stand_in.ws_url, sample_rate=8000)
        down, up = await run_test(tts, frames_to_send=[SleepFrame(0.3), *reply("Hi.")])
    (error,) = [f for f in up if isinstance(f, ErrorFrame)]
    assert error.category is ErrorCategory.AUTHENTICATION
    assert extract_http_status_code(error.exception) == 401
    assert "HTTP 401" in error.error and "Invalid credentials" in error.error
    assert not tts.is_usable
    assert stand_in.refused == [401], "a refused key is not tried again"
    assert not any(isinstance(f, TTSAudioRawFrame) for f in down)


async def test_a_connection_that_does_not_come_back_ends_the_reply_with_an_error(log_lines):
    stand_in = DeepgramTTSStandIn(drop_on_speak=1, drop_after_bytes=800, refuse_after_drop=9)
    async with stand_in:
        frames = [*reply("Hello there.", "How are you?"), SleepFrame(4.5)]
        down, up = await run_test(tts_for(stand_in), frames_to_send=frames)
    assert stand_in.refused == [503, 503, 503]  # at once, after 1 s, after 2 s
    (error,) = [f for f in up if isinstance(f, ErrorFrame)]
    assert error.category is ErrorCategory.SERVER and "2 sentence(s) unsaid" in error.error
    # The reply ended after what was heard, without the text of what was not.
    assert outline(down) == ["TTSStartedFrame", "text Hello there.", "audio", "TTSStoppedFrame"]
    assert (
        b"".join(f.audio for f in down if isinstance(f, TTSAudioRawFrame))
        == pcm("Hello there.")[:800]
    )
    assert any("trying again in 1 s" in line and "HTTP 503" in line for line in log_lines)


async def test_a_new_voice_takes_a_new_connection():
    voice = DeepgramAuraTTSService.Settings(voice="aura-2-thalia-en")
    frames = [*reply("Hi."), SleepFrame(0.5), TTSUpdateSettingsFrame(delta=voice)]
    async with DeepgramTTSStandIn() as stand_in:
        down, _ = await run_test(tts_for(stand_in), frames_to_send=[*frames, *reply("Bye.")])
    first, second = stand_in.connections
    assert first.query["model"] == "aura-2-helena-en" and first.speaks == ["Hi. "]
    assert second.query["model"] == "aura-2-thalia-en" and second.speaks == ["Bye. "]
    assert b"".join(f.audio for f in down if isinstance(f, TTSAudioRawFrame)) == pcm("Hi.") + pcm(
        "Bye."
    )


@pytest.mark.parametrize("ending", ["end", "cancel"])
async def test_the_socket_is_closed_when_the_pipeline_ends(ending):
    frames = [*reply("Hi."), SleepFrame(0.5)]
    async with DeepgramTTSStandIn() as stand_in:
        if ending == "end":
            await run_test(tts_for(stand_in), frames_to_send=frames)
        else:
            frames.append(CancelFrame())
            await run_test(tts_for(stand_in), frames_to_send=frames, send_end_frame=False)
        async with asyncio.timeout(2):
            while not stand_in.connections[0].closed:
                await asyncio.sleep(0.05)
    assert len(stand_in.connections) == 1


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="api_key"):
        DeepgramAuraTTSService(api_key="")
    with pytest.raises(ValueError, match="ws:// or wss://"):
        DeepgramAuraTTSService(api_key="k", base_url="https://api.deepgram.com")
