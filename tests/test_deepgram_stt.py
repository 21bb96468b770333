"""DeepgramNovaSTTService: frames in, frames out, against the Deepgram stand-in."""

import asyncio

from pipecat.frames.frames import (
    InputAudioRawFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.tests.utils import SleepFrame, run_test

from services.audio_backlog import AudioBacklog
from services.deepgram_stt import DeepgramNovaSTTService
from standins.audio import read_wav
from standins.deepgram_stt import DeepgramSTTStandIn

OPENING_HOURS = "What time do you open on Saturday?"
BOOK_TABLE = "Hi, I'd like to book a table for two tomorrow at seven."


def audio_frames(pcm: bytes) -> list[InputAudioRawFrame]:
    return [InputAudioRawFrame(pcm[i : i + 320], 8000, 1) for i in range(0, len(pcm), 320)]


def stt(stand_in: DeepgramSTTStandIn, **kwargs) -> DeepgramNovaSTTService:
    return DeepgramNovaSTTService(
        api_key="k", base_url=stand_in.ws_url, sample_rate=8000, **kwargs
    )


async def test_audio_sent_before_the_socket_opens_is_held_and_transcribed(data):
    pcm = read_wav(data / "opening_hours.wav")
    async with DeepgramSTTStandIn(connect_delay=1.0) as stand_in:
        # All the speech and the end of the turn arrive while the handshake is still pending.
        frames = [VADUserStartedSpeakingFrame(), *audio_frames(pcm), VADUserStoppedSpeakingFrame()]
        frames += [SleepFrame(1.2), *audio_frames(bytes(1920)), SleepFrame(0.5)]
        down, _ = await run_test(stt(stand_in), frames_to_send=frames, start_timeout=5)
    assert [f.text for f in down if type(f) is TranscriptionFrame] == [OPENING_HOURS]
    (connection,) = stand_in.connections
    # The held audio and its Finalize went out as the socket opened: the transcript came
    # before any later audio, which then went in 100 ms batches (320 bytes still held).
    assert connection.audio_bytes == len(pcm) + 1600
    assert connection.controls[0] == "Finalize"
    (transcript_at,) = [i for i, f in enumerate(down) if type(f) is TranscriptionFrame]
    audio_at = [i for i, f in enumerate(down) if type(f) is InputAudioRawFrame]
    assert audio_at[-7] < transcript_at < audio_at[-6], "after the speech, before the rest"


async def test_the_call_starts_without_waiting_for_the_handshake():
    async with DeepgramSTTStandIn(connect_delay=2.0) as stand_in:
        started = asyncio.get_running_loop().time()
        await run_test(stt(stand_in), frames_to_send=[], start_timeout=5)
        # Stock DeepgramSTTService would have blocked its setup for the whole 2 s handshake.
        assert asyncio.get_running_loop().time() - started < 1.5


async def test_audio_during_a_reconnect_is_held_not_dropped(data):
    pcm = read_wav(data / "yes.wav")
    async with DeepgramSTTStandIn(reject_connections=1) as stand_in:
        # pipecat retries a refused handshake after a backoff of at least 4 s.
        frames = [*audio_frames(pcm), SleepFrame(5.0), *audio_frames(bytes(640))]
        frames += [VADUserStoppedSpeakingFrame(), SleepFrame(0.5)]
        down, _ = await run_test(stt(stand_in), frames_to_send=frames, start_timeout=5)
    assert stand_in.refused == [503]
    assert [f.text for f in down if type(f) is TranscriptionFrame] == ["Yes, that works."]


async def test_a_socket_that_never_opens_holds_at_most_the_configured_audio(data):
    pcm = read_wav(data / "book_table.wav")
    async with DeepgramSTTStandIn(connect_delay=5.0) as stand_in:
        service = stt(stand_in, max_buffer_secs=1.0)
        await run_test(service, frames_to_send=audio_frames(pcm), start_timeout=5)
        assert len(service._backlog.pcm) <= 8000 * 2


async def test_audio_goes_in_100_ms_batches_and_the_turn_end_flushes_the_rest(data):
    pcm = read_wav(data / "opening_hours.wav")
    async with DeepgramSTTStandIn() as stand_in:
        frames = [SleepFrame(0.3), *audio_frames(pcm), VADUserStoppedSpeakingFrame()]
        down, _ = await run_test(stt(stand_in), frames_to_send=[*frames, SleepFrame(0.5)])
    assert [f.text for f in down if type(f) is TranscriptionFrame] == [OPENING_HOURS]
    (connection,) = stand_in.connections
    assert connection.audio_bytes == len(pcm), "the tail went out before the Finalize"
    assert connection.audio_messages == -(-len(pcm) // 1600)  # 100 ms each, the last shorter
    assert connection.controls == ["Finalize", "CloseStream"]


async def test_a_cut_socket_gets_the_utterance_again_but_not_the_silence_before_it(data):
    speech = read_wav(data / "book_table.wav")
    silence = bytes(3 * 16000)
    async with DeepgramSTTStandIn(drop_after_speech_secs=1.2, drop_with=1011) as stand_in:
        frames = [SleepFrame(0.5), *audio_frames(silence), VADUserStartedSpeakingFrame()]
        frames += [*audio_frames(speech), SleepFrame(1.0), VADUserStoppedSpeakingFrame()]
        service = stt(stand_in, stable_secs=0.0)  # reopened at once
        down, _ = await run_test(service, frames_to_send=[*frames, SleepFrame(1.0)])
    first, second = stand_in.connections
    assert first.dropped and first.audio.startswith(silence + speech[:8000])
    # The VAD said speech started after the silence: 1 s of lead is re-sent, not 3 s.
    assert second.audio == silence[-16000:] + speech
    assert [f.text for f in down if type(f) is TranscriptionFrame] == [BOOK_TABLE]


def test_the_backlog_keeps_silence_until_a_vad_has_reported():
    backlog = AudioBacklog("test", batch_secs=0.1, max_secs=10.0)
    backlog.add(bytes(32000), 8000, connected=False)
    assert len(backlog.pcm) == 32000  # no VAD yet: perhaps there is none
    backlog.speech_stopped()
    backlog.add(bytes(320), 8000, connected=False)
    assert len(backlog.pcm) == 16000  # the VAD heard nothing: 1 s of lead stays
    backlog.speech_started(8000)
    backlog.add(bytes(64000), 8000, connected=False)
    assert len(backlog.pcm) == 16000 + 64000  # the speech and its lead, until transcribed
