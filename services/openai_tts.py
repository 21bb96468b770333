"""OpenAI TTS for an 8 kHz call: its 24 kHz speech resampled in the service, sentence-timed."""

from collections.abc import AsyncGenerator

import openai
from openai import DefaultAsyncHttpxClient
from pipecat.frames.frames import ErrorFrame, Frame, StartFrame, TTSAudioRawFrame, TTSTextFrame
from pipecat.services.openai.tts import VALID_VOICES, OpenAITTSService
from pipecat.utils.text.base_text_aggregator import TextType

from services.downsampler import OUT_RATE, Downsampler
from services.tls import shared_tls
from telephony.frames import SentenceEndFrame

# A sentence that stalls this long holds every sentence after it: fail it and go on.
TIMEOUT = openai.Timeout(10.0, connect=5.0)


class ResampledOpenAITTSService(OpenAITTSService):
    """`OpenAITTSService` that speaks at 8 kHz and marks where each sentence's audio ends.

    OpenAI's `pcm` is 24 kHz only. Stock pipecat, asked for 8 kHz, warns and then labels the
    24 kHz bytes as 8 kHz (the caller hears them three times too slow); this service resamples
    them as they stream in (`Downsampler`: 3 ms of delay; pipecat's stream resampler, soxr at
    very high quality, holds back ~145 ms and keeps the end of each sentence until the next).

    One HTTP request speaks one sentence. Stock pipecat releases a sentence's `TTSTextFrame`
    after all its audio, so a caller who cuts in while it downloads has heard words the
    context never gets; here the text goes first, with the sentence's first audio, and the
    frame pipecat releases after the audio becomes the sentence's `SentenceEndFrame`:

    | in (from the LLM)      | out (in order)                                            |
    |------------------------|-----------------------------------------------------------|
    | sentence 1, sentence 2 | TTSStarted, TTSText(1), audio…, SentenceAudioEnd(1),      |
    | end of reply           |   TTSText(2), audio…, SentenceAudioEnd(2), TTSStopped     |

    A sentence that brings no audio (OpenAI refused it) is not said: no text, no boundary.
    An interruption cancels the sentence being fetched: its HTTP response is abandoned.
    """

    def __init__(self, *, sample_rate: int = OUT_RATE, **kwargs):
        """Same arguments as `OpenAITTSService`; the rate must be the call's, 8000 Hz."""
        if sample_rate != OUT_RATE:
            raise ValueError(f"OpenAI TTS here speaks at {OUT_RATE} Hz, not {sample_rate} Hz")
        kwargs.setdefault("http_client", DefaultAsyncHttpxClient(verify=shared_tls()))
        super().__init__(**kwargs)
        # Set after the parent's constructor, which warns about any rate but 24 kHz.
        self._init_sample_rate = OUT_RATE
        self._client = self._client.with_options(timeout=TIMEOUT, max_retries=1)
        self._downsampler = Downsampler()
        self._said: TTSTextFrame | None = None  # the sentence being spoken, once it has audio

    async def start(self, frame: StartFrame):
        """Start as a TTS service (the parent's start only warns that the rate is not 24 kHz)."""
        await super(OpenAITTSService, self).start(frame)

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        """Fetch one sentence's speech; yield its text, then its audio at 8 kHz as it comes."""
        self._said = None
        voice = self._settings.voice
        if voice not in VALID_VOICES:
            yield ErrorFrame(error=f"OpenAI TTS voice {voice!r} is not one of OpenAI's voices")
            return
        self._downsampler.reset()
        try:
            async with self._client.audio.speech.with_streaming_response.create(
                **self._request(text)
            ) as response:
                await self.start_tts_usage_metrics(text)
                async for chunk in response.iter_bytes():
                    if audio := self._downsampler.process(chunk):
                        if not self._said:
                            await self.stop_ttfb_metrics()
                            yield self._sentence(text, context_id)
                        yield TTSAudioRawFrame(audio, OUT_RATE, 1, context_id=context_id)
        except openai.APIStatusError as e:
            yield ErrorFrame(error=f"OpenAI TTS refused a sentence: HTTP {e.status_code}: {e}")
            return
        except openai.APIError as e:
            yield ErrorFrame(error=f"OpenAI TTS request failed: {e}")
            return
        if tail := self._downsampler.flush():
            yield TTSAudioRawFrame(tail, OUT_RATE, 1, context_id=context_id)

    def _request(self, text: str) -> dict:
        request = {
            "input": text,
            "model": self._settings.model,
            "voice": self._settings.voice,
            "response_format": "pcm",
        }
        for name in ("instructions", "speed"):
            if value := getattr(self._settings, name):
                request[name] = value
        return request

    def _sentence(self, text: str, context_id: str) -> TTSTextFrame:
        """The sentence's text, as pipecat would have released it after the audio."""
        frame = TTSTextFrame(text, text_type=TextType.SENTENCE)
        frame.context_id, frame.will_be_spoken = context_id, True
        # A TTSSpeakFrame may keep its words out of the LLM context: pipecat's record of it.
        context = self._tts_contexts.get(context_id)
        frame.append_to_context = context.append_to_context if context else True
        self._said = frame
        return frame

    async def append_to_audio_context(self, context_id, frame):
        """Pipecat's sentence text, after the audio, marks the end of the sentence's audio."""
        if isinstance(frame, TTSTextFrame) and frame is not self._said:
            if not self._said:
                return  # nothing was heard of it
            self._said, frame = None, SentenceEndFrame(frame.text)
        await super().append_to_audio_context(context_id, frame)

    async def cleanup(self):
        """Clean up, then close the HTTP client (pipecat leaves it open)."""
        await super().cleanup()
        await self._client.close()
