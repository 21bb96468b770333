"""FluxSTTService: frames in, frames out, against the Deepgram Flux stand-in."""

import asyncio

from aiohttp import web
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    EagerTranscriptionFrame,
    ErrorFrame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    ProposedUserStartedSpeakingFrame,
    ProposedUserStoppedSpeakingFrame,
    STTMetadataFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
)
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.turns.user_turn_strategies import ExternalUserTurnStrategies
from pipecat.utils.errors import ErrorCategory, extract_http_status_code

from pipelines.provider import ProviderContext
from pipelines.providers.deepgram_flux import FluxOptions, make_flux
from services.deepgram_flux import FluxSTTService
from standins.audio import read_wav, voice_span
from standins.deepgram_flux import DeepgramFluxStandIn, FluxConnection, _Turns
from standins.script import BOOK_TABLE

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
    async with DeepgramFluxStandIn(connect_delay=4.0) as stand_in:
        started = asyncio.get_running_loop().time()
        await run_test(stt(stand_in), frames_to_send=[], start_timeout=5)
        # Stock DeepgramFluxSTTService would have blocked its setup for the whole 4 s handshake.
        assert asyncio.get_running_loop().time() - started < 3.0


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


class CuttingFluxStandIn(DeepgramFluxStandIn):
    """The Flux stand-in, cutting its first connection (1011) at `cut_after` bytes of audio.

    Nothing after that point is heard or answered, as when a network path fails.
    """

    def __init__(self, *, cut_after: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cut_after = cut_after

    async def _serve(self, ws: web.WebSocketResponse, conn: FluxConnection, turns: _Turns):
        if len(self.connections) > 1:
            return await super()._serve(ws, conn, turns)
        audio_in = turns.audio_in

        def until_cut(audio: bytes) -> list[dict]:
            if conn.audio_bytes + len(audio) > self.cut_after:
                raise ConnectionAbortedError
            return audio_in(audio)

        turns.audio_in = until_cut
        try:
            await super()._serve(ws, conn, turns)
        except ConnectionAbortedError:
            await ws.close(code=1011)


def of_type(frames, kind) -> list:
    return [f for f in frames if type(f) is kind]


async def test_the_providers_settings_reach_the_url_as_pipecats_flux_service_sends_them():
    async with DeepgramFluxStandIn() as stand_in:
        access = {"DEEPGRAM_API_KEY": "k", "DEEPGRAM_BASE_URL": stand_in.ws_url}
        context = ProviderContext(access=access, system_prompt="", language="es", sample_rate=8000)
        options = FluxOptions(
            model="flux-general-multi", keyterms=["Luigi"], eot_threshold=0.8, eot_timeout_ms=3000
        )
        await run_test(make_flux(options, context), frames_to_send=[SleepFrame(0.3)])
    (connection,) = stand_in.connections
    # What pipecat's DeepgramFluxSTTService sent for the same options.
    assert connection.query == {
        "model": "flux-general-multi",
        "sample_rate": "8000",
        "encoding": "linear16",
        "eot_threshold": "0.8",
        "eot_timeout_ms": "3000",
        "keyterm": "Luigi",
        "language_hint": "es",
    }
    assert connection.keyterms == ["Luigi"] and connection.authorization == "Token k"


async def test_flux_turns_become_proposed_turn_frames_around_the_transcript(data):
    pcm = read_wav(data / "opening_hours.wav") + bytes(16000)
    async with DeepgramFluxStandIn() as stand_in:
        frames = [SleepFrame(0.3), *audio_frames(pcm), SleepFrame(0.3)]
        down, up = await run_test(stt(stand_in), frames_to_send=frames)
    kinds = (
        ProposedUserStartedSpeakingFrame,
        InterimTranscriptionFrame,
        TranscriptionFrame,
        ProposedUserStoppedSpeakingFrame,
    )
    turn = [type(f) for f in down if type(f) in kinds]
    interims = turn.count(InterimTranscriptionFrame)
    assert interims > 0
    assert turn == [kinds[0], *[kinds[1]] * interims, kinds[2], kinds[3]]
    (final,) = of_type(down, TranscriptionFrame)
    assert final.text == OPENING_HOURS and final.finalized
    # Proposals go both ways, as pipecat's Flux service broadcasts them.
    assert len(of_type(up, ProposedUserStartedSpeakingFrame)) == 1
    assert len(of_type(up, ProposedUserStoppedSpeakingFrame)) == 1
    (metadata,) = of_type(down, STTMetadataFrame)
    assert isinstance(metadata.user_turn_strategies, ExternalUserTurnStrategies)
    assert metadata.ttfs_p99_latency == 0.0


def eager_stt(stand_in: DeepgramFluxStandIn, eot_threshold: float = 0.7) -> FluxSTTService:
    """Flux guessing at 0.5 (the stand-in's 0.2 s after a sentence), ending at `eot_threshold`."""
    thresholds = FluxSTTService.Settings(
        eager_eot_threshold=0.5, eot_threshold=eot_threshold, eot_timeout_ms=1000
    )
    return stt(stand_in, settings=thresholds)


async def test_an_eager_end_of_turn_comes_before_the_turns_transcript(data):
    pcm = read_wav(data / "opening_hours.wav") + bytes(16000)
    async with DeepgramFluxStandIn() as stand_in:
        frames = [SleepFrame(0.3), *audio_frames(pcm), SleepFrame(0.3)]
        down, _ = await run_test(eager_stt(stand_in), frames_to_send=frames)
    kinds = (EagerTranscriptionFrame, EagerEndOfTurnCancelFrame, TranscriptionFrame)
    assert [type(f) for f in down if type(f) in kinds] == [kinds[0], kinds[2]]
    (eager,) = of_type(down, EagerTranscriptionFrame)
    assert eager.text == OPENING_HOURS


async def test_a_caller_who_goes_on_after_an_eager_end_of_turn_withdraws_it(data):
    voice = read_wav(data / "opening_hours.wav")
    start, end = voice_span(voice)
    voice = voice[int(start * 8000) * 2 : int(end * 8000) * 2]
    # The guess 0.2 s into the pause, the turn's end due at 0.36 s; the words then said twice
    # finish no sentence the stand-in knows: the turn ends on the 1 s timeout.
    pcm = voice + bytes(2 * int(0.3 * 8000)) + voice + bytes(2 * 12000)
    async with DeepgramFluxStandIn() as stand_in:
        frames = [SleepFrame(0.3), *audio_frames(pcm), SleepFrame(0.3)]
        down, _ = await run_test(eager_stt(stand_in, eot_threshold=0.9), frames_to_send=frames)
    kinds = (EagerTranscriptionFrame, EagerEndOfTurnCancelFrame, TranscriptionFrame)
    assert [type(f) for f in down if type(f) in kinds] == [kinds[0], kinds[1], kinds[2]]


async def test_a_refused_key_is_a_permanent_authentication_error_and_never_retried():
    async with DeepgramFluxStandIn(api_key="another key") as stand_in:
        service = stt(stand_in)
        _, up = await run_test(service, frames_to_send=[SleepFrame(0.5)])
    (error,) = of_type(up, ErrorFrame)
    assert error.category is ErrorCategory.AUTHENTICATION
    assert extract_http_status_code(error.exception) == 401
    assert not service.is_usable and stand_in.refused == [401] and stand_in.connections == []


async def test_a_socket_cut_mid_turn_hears_the_whole_turn_on_the_next_one(data):
    pcm = read_wav(data / "book_table.wav") + bytes(16000)
    start, end = voice_span(pcm)
    async with CuttingFluxStandIn(cut_after=int((start + end) / 2 * 16000)) as stand_in:
        frames = [SleepFrame(0.3), VADUserStartedSpeakingFrame(), *audio_frames(pcm)]
        down, _ = await run_test(
            stt(stand_in, stable_secs=0.0), frames_to_send=[*frames, SleepFrame(0.5)]
        )
    first, second = stand_in.connections
    assert first.events("StartOfTurn") and first.turns == []
    assert 0 <= len(pcm) - second.audio_bytes < 1280, "all of it again (but an unfilled batch)"
    assert second.turns == [BOOK_TABLE]
    # One turn for the pipeline: started once, on the first socket, ended once, on the second.
    assert transcripts(down) == [BOOK_TABLE]
    assert len(of_type(down, ProposedUserStartedSpeakingFrame)) == 1
    assert len(of_type(down, ProposedUserStoppedSpeakingFrame)) == 1


async def test_a_turn_the_next_socket_cannot_hear_again_ends_on_what_flux_had_said(data):
    pcm = read_wav(data / "book_table.wav") + bytes(16000)
    _, end = voice_span(pcm)
    # Cut just after the last word, before Flux ends the turn; only 0.2 s is kept to re-send.
    async with CuttingFluxStandIn(cut_after=int((end + 0.06) * 16000)) as stand_in:
        service = stt(stand_in, stable_secs=0.0, max_buffer_secs=0.2)
        frames = [SleepFrame(0.3), *audio_frames(pcm), SleepFrame(0.3)]
        frames += [*audio_frames(bytes(8000)), SleepFrame(0.3)]  # the call goes on
        down, _ = await run_test(service, frames_to_send=frames)
    first, second = stand_in.connections
    assert first.events("StartOfTurn") and first.turns == [] and second.turns == []
    (final,) = of_type(down, TranscriptionFrame)
    assert final.text == of_type(down, InterimTranscriptionFrame)[-1].text and not final.finalized
    assert len(of_type(down, ProposedUserStartedSpeakingFrame)) == 1
    assert len(of_type(down, ProposedUserStoppedSpeakingFrame)) == 1


async def test_a_turn_left_without_audio_gets_silence_so_flux_can_end_it(data):
    pcm = read_wav(data / "opening_hours.wav")
    _, end = voice_span(pcm)
    speech = pcm[: int((end + 0.04) * 16000) // 2 * 2]  # no silence after the last word
    async with DeepgramFluxStandIn() as stand_in:
        frames = [SleepFrame(0.3), *audio_frames(speech), SleepFrame(1.5)]
        down, _ = await run_test(stt(stand_in), frames_to_send=frames)
    (connection,) = stand_in.connections
    assert connection.audio_bytes > len(speech), "silence was sent"
    assert transcripts(down) == [OPENING_HOURS]
