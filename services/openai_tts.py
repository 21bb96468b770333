"""OpenAI speech for an 8 kHz call: one streamed request per sentence, resampled as it comes."""

from collections.abc import AsyncGenerator

import openai
from openai import DefaultAsyncHttpxClient
from pipecat.frames.frames import (
    ErrorFrame,
    Frame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.openai.tts import VALID_VOICES, OpenAITTSSettings
from pipecat.services.tts_service import TTSService
from pipecat.utils.text.base_text_aggregator import TextType
from pipecat.utils.tracing.service_decorators import traced_tts

from services.downsampler import OUT_RATE, Downsampler
from services.tls import shared_tls
from telephony.frames import SentenceEndFrame

# A sentence that stalls this long holds every sentence after it: fail it and go on.
TIMEOUT = openai.Timeout(10.0, connect=5.0)


class ResampledOpenAITTSService(TTSService):
    """OpenAI's speech at the call's 8 kHz, each sentence's text ahead of its audio.

    OpenAI's `pcm` is 24 kHz only. It is resampled as it streams in (`Downsampler`: 3 ms of
    delay; pipecat's stream resampler, soxr at very high quality, holds back ~145 ms and
    keeps the end of each sentence until the next).

    One `POST /v1/audio/speech` speaks one sentence. pipecat's base releases a sentence's
    `TTSTextFrame` after all its audio, so a caller who cuts in while it downloads would have
    heard words the context never gets; here the text goes with the sentence's first audio,
    and the frame the base releases after the audio becomes the sentence's `SentenceEndFrame`:

    | in (from the LLM)      | out (in order)                                            |
    |------------------------|-----------------------------------------------------------|
    | sentence 1, sentence 2 | TTSStarted, TTSText(1), audio…, SentenceEnd(1),           |
    | end of reply           |   TTSText(2), audio…, SentenceEnd(2), TTSStopped          |
    | TTSSpeak(append=False) | TTSStarted, TTSText(append_to_context=False), audio…, …   |
    | a refused sentence     | ErrorFrame ↑ naming the HTTP status; no text, no end      |

    An interruption cancels the sentence being fetched, and with it its HTTP response.
    """

    Settings = OpenAITTSSettings

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        sample_rate: int = OUT_RATE,
        settings: OpenAITTSSettings | None = None,
        **kwargs,
    ):
        """Create the service.

        Args:
            api_key: OpenAI's API key.
            base_url: The API's base URL, e.g. `https://api.openai.com/v1`.
            sample_rate: The call's rate; only 8000 Hz.
            settings: Model, voice, instructions and speed, over pipecat's defaults.
            **kwargs: `TTSService`'s other arguments.
        """
        if sample_rate != OUT_RATE:
            raise ValueError(f"OpenAI TTS here speaks at {OUT_RATE} Hz, not {sample_rate} Hz")
        stored = OpenAITTSSettings(
            model="gpt-4o-mini-tts", voice="alloy", language=None, instructions=None, speed=None
        )
        if settings is not None:
            stored.apply_update(settings)
        super().__init__(
            sample_rate=OUT_RATE,
            push_start_frame=True,
            push_stop_frames=True,
            settings=stored,
            **kwargs,
        )
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            http_client=DefaultAsyncHttpxClient(verify=shared_tls()),
            timeout=TIMEOUT,
            max_retries=1,
        )
        self._downsampler = Downsampler()
        self._said: TTSTextFrame | None = None  # the sentence being spoken, once it has audio
        # Audio contexts whose words stay out of the LLM context (a TTSSpeakFrame's choice).
        # Never pruned (a few per call): a context the base recreates after a 3 s stall
        # gets no TTSStartedFrame of its own, and must still be found here.
        self._kept_out: set[str] = set()

    def can_generate_metrics(self) -> bool:
        """TTFB and usage metrics, as pipecat's OpenAI TTS has."""
        return True

    @traced_tts
    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        """Fetch one sentence's speech; yield its text, then its audio at 8 kHz as it comes."""
        self._said = None
        settings = self.settings
        assert isinstance(settings, OpenAITTSSettings)
        if settings.voice not in VALID_VOICES:
            yield ErrorFrame(f"OpenAI TTS voice {settings.voice!r} is not one of OpenAI's voices")
            return
        self._downsampler.reset()
        try:
            async with self._client.audio.speech.with_streaming_response.create(
                **_request(text, settings)
            ) as response:
                await self.start_tts_usage_metrics(text)
                async for chunk in response.iter_bytes():
                    if audio := self._downsampler.process(chunk):
                        if not self._said:
                            await self.stop_ttfb_metrics()
                            yield self._sentence(text, context_id)
                        yield TTSAudioRawFrame(audio, OUT_RATE, 1, context_id=context_id)
        except openai.APIStatusError as e:
            yield ErrorFrame(f"OpenAI TTS refused a sentence: HTTP {e.status_code}: {e}")
            return
        except openai.APIError as e:
            yield ErrorFrame(f"OpenAI TTS request failed: {e}")
            return
        if tail := self._downsampler.flush():
            yield TTSAudioRawFrame(tail, OUT_RATE, 1, context_id=context_id)

    def _sentence(self, text: str, context_id: str) -> TTSTextFrame:
        """The sentence's text, as the base would have released it after the audio."""
        frame = TTSTextFrame(text, text_type=TextType.SENTENCE)
        frame.context_id, frame.will_be_spoken = context_id, True
        self._said = frame
        return frame

    async def append_to_audio_context(self, context_id, frame):
        """The base's sentence text, after the audio, marks the end of the sentence's audio."""
        if isinstance(frame, TTSTextFrame) and frame is not self._said:
            if not self._said:
                return  # nothing was heard of it
            self._said, frame = None, SentenceEndFrame(frame.text)
        await super().append_to_audio_context(context_id, frame)

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM):
        """Give each sentence's text the `append_to_context` of its audio context."""
        # The base stamps the context's choice on its TTSStartedFrame, which plays first.
        if isinstance(frame, TTSStartedFrame) and frame.context_id and not frame.append_to_context:
            self._kept_out.add(frame.context_id)
        elif isinstance(frame, TTSTextFrame) and frame.context_id in self._kept_out:
            frame.append_to_context = False
        await super().push_frame(frame, direction)

    async def cleanup(self):
        """Clean up, then close the HTTP client."""
        await super().cleanup()
        await self._client.close()


def _request(text: str, settings: OpenAITTSSettings) -> dict:
    """The body of `POST /v1/audio/speech` for one sentence."""
    request = {
        "input": text,
        "model": settings.model,
        "voice": settings.voice,
        "response_format": "pcm",
    }
    for name in ("instructions", "speed"):
        if value := getattr(settings, name):
            request[name] = value
    return request
