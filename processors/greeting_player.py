"""Plays a pre-synthesized greeting the moment the call starts, without waiting for the TTS."""

from dataclasses import dataclass

from pipecat.frames.frames import (
    Frame,
    LLMAssistantPushAggregationFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.utils.text.base_text_aggregator import TextType

from telephony.frames import SentenceEndFrame

CHUNK_BYTES = 800  # 50 ms of 8 kHz 16-bit audio per frame, as the TTS would send it


@dataclass(frozen=True)
class SpokenSentence:
    """One sentence of synthesized speech: its text and its 8 kHz PCM."""

    text: str
    pcm: bytes


class GreetingPlayer(FrameProcessor):
    """Right after StartFrame, pushes the greeting's cached audio as if the TTS had spoken it.

    Sits right after the TTS, so the playback tracker, the output and the assistant context
    see a normal TTS reply (and a barge-in cuts it like any other).

    | in          | out                                                                    |
    |-------------|------------------------------------------------------------------------|
    | StartFrame  | StartFrame, TTSStarted, per sentence: TTSText, audio…, SentenceAudioEnd, |
    |             | then TTSStopped and a push of the greeting into the context            |
    | anything    | unchanged                                                              |
    """

    def __init__(self, sentences: list[SpokenSentence], *, sample_rate: int = 8000, **kwargs):
        """Play `sentences` (8 kHz PCM each) when the pipeline starts."""
        super().__init__(**kwargs)
        self._sentences = sentences
        self._sample_rate = sample_rate

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Pass everything on; after StartFrame, the greeting."""
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame):
            for greeting_frame in self._frames():
                await self.push_frame(greeting_frame)

    def _frames(self) -> list[Frame]:
        frames: list[Frame] = [TTSStartedFrame()]
        for sentence in self._sentences:
            frames.append(TTSTextFrame(sentence.text, text_type=TextType.SENTENCE))
            for i in range(0, len(sentence.pcm), CHUNK_BYTES):
                chunk = sentence.pcm[i : i + CHUNK_BYTES]
                frames.append(TTSAudioRawFrame(chunk, self._sample_rate, 1))
            frames.append(SentenceEndFrame(text=sentence.text))
        return [*frames, TTSStoppedFrame(), LLMAssistantPushAggregationFrame()]
