"""FluxSTTService: frames in, frames out, against the Deepgram Flux stand-in."""

import asyncio

from pipecat.frames.frames import InputAudioRawFrame, TranscriptionFrame
from pipecat.tests.utils import SleepFrame, run_test

from services.deepgram_flux import FluxSTTService
from standins.audio import read_wav
from standins.deepgram_flux import DeepgramFluxStandIn

OPENING_HOURS = "What time do you open on Saturday?"


def audio_frames(pcm: bytes) -> list[InputAudioRawFrame]:
    return [InputAudioRawFrame(pcm[i : i + 320], 8000, 1) for i in range(0, len(pcm), 320)]


def stt(stand_in: DeepgramFluxStandIn, **kwargs) -> FluxSTTService:
    url = f"{stand_in.ws_url}/v2/listen"
    return FluxSTTService(api_key="k", url=url, sample_rate=8000, **kwargs)


def transcripts(frames) -> list[str]:
    return [f.text for f in frames if type(f) is TranscriptionFrame]


async def test_audio_sent_before_the_socket_opens_is_held_and_transcribed(data):
    pcm = read_wav(data / "opening_hours.wav") + bytes(16000)
    async with DeepgramFluxStandIn(connect_delay=1.0) as stand_in:
        # The whole turn is spoken while the handshake is still pending.
        frames = [*audio_frames(pcm), SleepFrame(1.5)]
        down, _ = await run_test(stt(stand_in), frames_to_send=frames, start_timeout=5)
    assert transcripts(down) == [OPENING_HOURS]
    (connection,) = stand_in.connections
    assert connection.audio_bytes == len(pcm), "nothing was dropped"


async def test_the_call_starts_without_waiting_for_the_handshake():
    async with DeepgramFluxStandIn(connect_delay=2.0) as stand_in:
        started = asyncio.get_running_loop().time()
        await run_test(stt(stand_in), frames_to_send=[], start_timeout=5)
        # Stock DeepgramFluxSTTService would have blocked its setup for the whole 2 s handshake.
        assert asyncio.get_running_loop().time() - started < 1.5


async def test_audio_during_a_reconnect_is_held_not_dropped(data):
    pcm = read_wav(data / "yes.wav") + bytes(8000)
    async with DeepgramFluxStandIn(reject_connections=1) as stand_in:
        # pipecat retries a refused handshake after a backoff of at least 4 s.
        frames = [*audio_frames(pcm), SleepFrame(5.0), *audio_frames(bytes(6400)), SleepFrame(0.3)]
        down, _ = await run_test(stt(stand_in), frames_to_send=frames, start_timeout=5)
    assert stand_in.refused == [503]
    assert transcripts(down) == ["Yes, that works."]


async def test_a_socket_that_never_opens_holds_at_most_the_configured_audio(data):
    pcm = read_wav(data / "book_table.wav")
    async with DeepgramFluxStandIn(connect_delay=5.0) as stand_in:
        service = stt(stand_in, max_buffer_secs=1.0)
        await run_test(service, frames_to_send=audio_frames(pcm), start_timeout=5)
        assert len(service._backlog.pcm) <= 8000 * 2


async def test_audio_goes_in_80_ms_batches(data):
    pcm = read_wav(data / "opening_hours.wav") + bytes(16000)
    async with DeepgramFluxStandIn() as stand_in:
        frames = [SleepFrame(0.3), *audio_frames(pcm), SleepFrame(0.3)]
        down, _ = await run_test(stt(stand_in), frames_to_send=frames)
    assert transcripts(down) == [OPENING_HOURS]
    (connection,) = stand_in.connections
    assert connection.audio_messages == len(pcm) // 1280  # 80 ms each; the rest still held
    assert connection.audio_bytes == connection.audio_messages * 1280
