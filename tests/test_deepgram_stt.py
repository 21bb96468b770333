"""DeepgramNovaSTTService: frames in, frames out, against the Deepgram stand-in."""

import asyncio
from urllib.parse import parse_qsl

import pytest
from aiohttp import web
from pipecat.frames.frames import (
    CancelFrame,
    ErrorFrame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    MetricsFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import TTFBMetricsData
from pipecat.pipeline.worker import PipelineParams
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.utils.errors import ErrorCategory, extract_http_status_code

from pipelines.provider import ProviderContext
from pipelines.providers.deepgram import NovaOptions, make_nova
from services.audio_backlog import AudioBacklog
from services.deepgram_stt import DeepgramNovaSTTService
from standins.audio import read_wav
from standins.deepgram_stt import DeepgramSTTStandIn
from standins.script import BOOK_TABLE
from standins.speech import is_speech
from turns.frames import CallerPausedFrame

OPENING_HOURS = "What time do you open on Saturday?"


def audio_frames(pcm: bytes) -> list[InputAudioRawFrame]:
    return [InputAudioRawFrame(pcm[i : i + 320], 8000, 1) for i in range(0, len(pcm), 320)]


def stt(stand_in: DeepgramSTTStandIn, **kwargs) -> DeepgramNovaSTTService:
    return DeepgramNovaSTTService(api_key="k", base_url=stand_in.ws_url, sample_rate=8000, **kwargs)


async def test_audio_sent_before_the_socket_opens_is_held_and_transcribed(data):
    pcm = read_wav(data / "opening_hours.wav")
    async with DeepgramSTTStandIn(connect_delay=1.0) as stand_in:
        # All the speech and the end of the turn arrive while the handshake is still pending.
        frames = [VADUserStartedSpeakingFrame(), *audio_frames(pcm), VADUserStoppedSpeakingFrame()]
        later = audio_frames(bytes(9600))  # 0.6 s, the caller quiet
        frames += [SleepFrame(1.2), *later, SleepFrame(0.5)]
        down, _ = await run_test(stt(stand_in), frames_to_send=frames, start_timeout=5)
    assert [f.text for f in down if type(f) is TranscriptionFrame] == [OPENING_HOURS]
    (connection,) = stand_in.connections
    # The held audio and its Finalize went out as the socket opened: the transcript came
    # before any later audio, which then went in 0.25 s batches, the VAD saying the caller was
    # quiet: two of 13 packets (the 13th takes a batch past 0.25 s), 4 packets still held.
    assert connection.audio_bytes == len(pcm) + 2 * 13 * 320
    assert connection.controls[0] == "Finalize"
    (transcript_at,) = [i for i, f in enumerate(down) if type(f) is TranscriptionFrame]
    audio_at = [i for i, f in enumerate(down) if type(f) is InputAudioRawFrame]
    n = len(later)
    assert audio_at[-n - 1] < transcript_at < audio_at[-n], "after the speech, before the rest"


async def test_the_call_starts_without_waiting_for_the_handshake():
    async with DeepgramSTTStandIn(connect_delay=4.0) as stand_in:
        started = asyncio.get_running_loop().time()
        await run_test(stt(stand_in), frames_to_send=[], start_timeout=5)
        # Stock DeepgramSTTService would have blocked its setup for the whole 4 s handshake.
        assert asyncio.get_running_loop().time() - started < 3.0


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
        frames = [SleepFrame(0.3), VADUserStartedSpeakingFrame(), *audio_frames(pcm)]
        frames += [VADUserStoppedSpeakingFrame()]
        down, _ = await run_test(stt(stand_in), frames_to_send=[*frames, SleepFrame(0.5)])
    assert [f.text for f in down if type(f) is TranscriptionFrame] == [OPENING_HOURS]
    (connection,) = stand_in.connections
    assert connection.audio_bytes == len(pcm), "the tail went out before the Finalize"
    assert connection.audio_messages == -(-len(pcm) // 1600)  # 100 ms each, the last shorter
    assert connection.controls == ["Finalize", "CloseStream"]


async def test_a_quiet_line_goes_in_quarter_second_batches_and_the_speech_start_sends_them():
    async with DeepgramSTTStandIn() as stand_in:
        # 1.2 s of the caller's line before they speak, then the VAD's start.
        frames = [SleepFrame(0.3), *audio_frames(bytes(19200))]
        frames += [SleepFrame(0.2), VADUserStartedSpeakingFrame(), SleepFrame(0.3)]
        await run_test(stt(stand_in), frames_to_send=frames)
    (connection,) = stand_in.connections
    # Four 0.25 s batches (not twelve of 0.1 s); the VAD's start sent the 0.2 s kept.
    assert (connection.audio_messages, connection.audio_bytes) == (5, 19200)


async def test_a_pause_mid_turn_finalizes_what_was_said_so_far(data):
    opening, yes = read_wav(data / "opening_hours.wav"), read_wav(data / "yes.wav")
    async with DeepgramSTTStandIn() as stand_in:
        frames = [SleepFrame(0.3), *audio_frames(opening), CallerPausedFrame(), SleepFrame(0.3)]
        frames += [*audio_frames(yes), VADUserStoppedSpeakingFrame()]
        down, _ = await run_test(stt(stand_in), frames_to_send=[*frames, SleepFrame(0.5)])
    finals = [f for f in down if type(f) is TranscriptionFrame]
    assert [f.text for f in finals] == [OPENING_HOURS, "Yes, that works."]
    assert finals[0].finalized, "the pause's Finalize answered"
    (connection,) = stand_in.connections
    assert connection.controls == ["Finalize", "Finalize", "CloseStream"]


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


async def test_the_log_says_audio_was_kept_only_when_the_socket_was_down(debug_lines):
    backlog, sent = AudioBacklog("test", batch_secs=0.1, max_secs=10.0), []

    async def send(chunk: bytes) -> None:
        sent.append(chunk)

    for _ in range(3):  # 40 ms frames on an open socket: batches of 120 ms
        backlog.add(bytes(640), 8000, connected=True)
    await backlog.drain(8000, send)
    backlog.add(bytes(3200), 8000, connected=False)
    await backlog.drain(8000, send)
    assert [len(c) for c in sent] == [1920, 1600, 1600]  # the 120 ms batch went whole
    kept = [line for line in debug_lines if "kept while down" in line]
    assert kept == ["test: sending 200 ms of audio kept while down"]


class QueryRecordingStandIn(DeepgramSTTStandIn):
    """The Deepgram stand-in, also keeping each upgrade's query as sent (repeated keys too)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.queries: list[list[tuple[str, str]]] = []

    async def _listen(self, request: web.Request) -> web.StreamResponse:
        self.queries.append(parse_qsl(request.query_string))
        return await super()._listen(request)


def speech_secs(pcm: bytes) -> float:
    """Seconds of `pcm` the stand-in counts as speech (20 ms frames at 8 kHz)."""
    return sum(is_speech(pcm[i : i + 320]) for i in range(0, len(pcm) - 319, 320)) * 0.02


async def test_the_providers_settings_reach_the_url_as_pipecats_deepgram_client_sends_them():
    async with QueryRecordingStandIn() as stand_in:
        access = {"DEEPGRAM_API_KEY": "k", "DEEPGRAM_BASE_URL": stand_in.ws_url}
        context = ProviderContext(
            access=access, system_prompt="", language="en-US", sample_rate=8000
        )
        service = make_nova(NovaOptions(keyterms=["Luigi", "tiramisu cake"]), context)
        await run_test(service, frames_to_send=[SleepFrame(0.3)])
    # What pipecat's DeepgramSTTService (deepgram-sdk 7.17) sent for the same options.
    stock = (
        "channels=1&detect_entities=false&diarize=false&dictation=false&encoding=linear16&"
        "interim_results=true&keyterm=Luigi&keyterm=tiramisu+cake&language=en-US&"
        "model=nova-3-general&multichannel=false&numerals=false&punctuate=true&"
        "sample_rate=8000&smart_format=false"
    )
    assert sorted(stand_in.queries[0]) == sorted(parse_qsl(stock))
    assert stand_in.connections[0].authorization == "Token k"


@pytest.mark.parametrize(
    ("status", "category"),
    [(401, ErrorCategory.AUTHENTICATION), (403, ErrorCategory.AUTHORIZATION)],
)
async def test_a_refused_handshake_is_a_permanent_error_and_never_retried(status, category):
    async with DeepgramSTTStandIn(reject_with_status=status) as stand_in:
        service = stt(stand_in)
        frames = [SleepFrame(0.5), *audio_frames(bytes(3200))]
        _, up = await run_test(service, frames_to_send=frames)
    (error,) = [f for f in up if isinstance(f, ErrorFrame)]
    assert error.category is category and extract_http_status_code(error.exception) == status
    assert f"(HTTP {status})" in error.error
    assert not service.is_usable
    assert stand_in.refused == [status] and stand_in.connections == []


async def test_interim_then_final_results_and_the_finalized_transcript_reports_ttfb(data):
    pcm = read_wav(data / "opening_hours.wav")
    async with DeepgramSTTStandIn() as stand_in:
        frames = [SleepFrame(0.3), VADUserStartedSpeakingFrame(), *audio_frames(pcm)]
        frames += [VADUserStoppedSpeakingFrame(stop_secs=0.2), SleepFrame(0.5)]
        params = PipelineParams(enable_metrics=True)
        down, _ = await run_test(stt(stand_in), frames_to_send=frames, pipeline_params=params)
    texts = [f for f in down if isinstance(f, InterimTranscriptionFrame | TranscriptionFrame)]
    *interims, final = texts
    assert interims and all(type(f) is InterimTranscriptionFrame for f in interims)
    assert type(final) is TranscriptionFrame and final.text == OPENING_HOURS and final.finalized
    assert final.result["from_finalize"] is True
    # (pipecat reports a zero for every metric at start; the measured one is the final's.)
    ttfb = [
        (i, d)
        for i, f in enumerate(down)
        if isinstance(f, MetricsFrame)
        for d in f.data
        if isinstance(d, TTFBMetricsData) and d.value > 0
    ]
    ((at, measured),) = ttfb
    assert measured.model == "nova-3-general" and down[at + 1] is final


async def test_a_finalize_unanswered_when_the_socket_fails_is_sent_again_after_the_audio(data):
    pcm = read_wav(data / "yes.wav")
    half = len(pcm) // 2 // 320 * 320
    # The socket is cut during the second half, with the first half's Finalize unanswered.
    drop_at = speech_secs(pcm[:half]) + 0.1
    async with DeepgramSTTStandIn(
        final_delay=1.0, drop_after_speech_secs=drop_at, drop_with=1011
    ) as stand_in:
        frames = [SleepFrame(0.3), VADUserStartedSpeakingFrame(), *audio_frames(pcm[:half])]
        frames += [VADUserStoppedSpeakingFrame(), *audio_frames(pcm[half:]), SleepFrame(1.5)]
        down, _ = await run_test(stt(stand_in, stable_secs=0.0), frames_to_send=frames)
    first, second = stand_in.connections
    assert first.dropped and first.controls == ["Finalize"] and first.sent_of("Results") == []
    assert second.controls[0] == "Finalize" and second.audio.endswith(pcm)
    (answer,) = [r for r in second.sent_of("Results") if r["from_finalize"]]
    heard = len(second.audio) // 320 * 0.02  # (the stand-in reads whole 20 ms frames)
    assert answer["start"] + answer["duration"] == pytest.approx(heard), "after all the audio"
    assert [f.text for f in down if type(f) is TranscriptionFrame] == ["Yes, that works."]


async def test_keepalive_holds_an_idle_socket_open():
    async with DeepgramSTTStandIn(idle_timeout=1.0) as stand_in:
        await run_test(stt(stand_in, keepalive_secs=0.3), frames_to_send=[SleepFrame(2.0)])
    (connection,) = stand_in.connections  # the stand-in would have closed it after 1 s idle
    assert connection.controls.count("KeepAlive") >= 3
    assert connection.controls[-1] == "CloseStream"


async def test_a_cancelled_call_closes_the_socket(data):
    async with DeepgramSTTStandIn() as stand_in:
        frames = [SleepFrame(0.3), *audio_frames(read_wav(data / "yes.wav")), CancelFrame()]
        await run_test(stt(stand_in), frames_to_send=frames, send_end_frame=False)
        (connection,) = stand_in.connections
        for _ in range(50):
            if connection.closed:
                break
            await asyncio.sleep(0.02)
    assert connection.closed and connection.controls == ["CloseStream"]


def test_a_base_url_that_is_not_a_websocket_is_refused_by_name():
    with pytest.raises(ValueError, match="base_url must be a ws:// or wss:// URL"):
        DeepgramNovaSTTService(api_key="k", base_url="https://api.deepgram.com")
    with pytest.raises(ValueError, match="api_key"):
        DeepgramNovaSTTService(api_key="")
