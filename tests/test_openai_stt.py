"""ClosingOpenAISTTService: transcribes like pipecat's and closes its HTTP client after."""

from pipecat.frames.frames import (
    InputAudioRawFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.tests.utils import SleepFrame, run_test

from services.openai_stt import ClosingOpenAISTTService
from services.tls import shared_tls
from standins.audio import read_wav
from standins.openai_transcription import OpenAITranscriptionStandIn


def audio_frames(pcm: bytes) -> list[InputAudioRawFrame]:
    return [InputAudioRawFrame(pcm[i : i + 320], 8000, 1) for i in range(0, len(pcm), 320)]


async def test_it_transcribes_each_utterance_then_closes_its_client(data):
    async with OpenAITranscriptionStandIn() as stand_in:
        service = ClosingOpenAISTTService(
            api_key="sk-test", base_url=f"{stand_in.http_url}/v1", sample_rate=8000
        )
        frames = [VADUserStartedSpeakingFrame(), *audio_frames(read_wav(data / "yes.wav"))]
        frames += [VADUserStoppedSpeakingFrame(), SleepFrame(0.5)]
        down, _ = await run_test(service, frames_to_send=frames)
        assert [f.text for f in down if type(f) is TranscriptionFrame] == ["Yes, that works."]
        assert service._http_client.is_closed
    assert stand_in.requests[0].fields["model"] == "gpt-transcribe"  # pipecat's default


def test_its_http_client_uses_the_processs_tls_context():
    service = ClosingOpenAISTTService(api_key="sk-test")
    pool = service._client._client._transport._pool  # pipecat's openai client's connections
    assert pool._ssl_context is shared_tls()
    assert service._client._client is service._http_client, "the client it closes"
