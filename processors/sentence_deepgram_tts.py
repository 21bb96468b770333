"""Deepgram WebSocket TTS that marks where each sentence's audio ends and starts at once."""

import asyncio
import json
from collections import deque
from collections.abc import AsyncGenerator

from pipecat.frames.frames import Frame, TTSStoppedFrame
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.services.deepgram.tts import DeepgramTTSService

from processors.frames import SentenceAudioEndFrame


class SentenceDeepgramTTSService(DeepgramTTSService):
    """`DeepgramTTSService` that emits a `SentenceAudioEndFrame` after each sentence's audio.

    Deepgram's audio stream carries no boundaries, and pipecat releases each sentence's text
    when it is sent, not when it is heard. Flushing after every sentence makes Deepgram answer
    `Flushed` right after that sentence's audio, which becomes a boundary frame in order with
    the audio; only the reply's own final flush ends the TTS context.

    | in (from the LLM)      | out (in order)                                          |
    |------------------------|---------------------------------------------------------|
    | sentence 1, sentence 2 | TTSStarted, audio…, SentenceAudioEnd(1), audio…,        |
    | end of reply           |   SentenceAudioEnd(2), TTSStopped                       |

    Stock pipecat also opens the WebSocket in `setup`, so no call starts (and no cached
    greeting plays) until Deepgram's handshake is done; here it opens in the background and
    the first sentence waits for it instead.
    """

    def __init__(self, **kwargs):
        """Same arguments as `DeepgramTTSService`."""
        super().__init__(**kwargs)
        # One entry per Flush sent, in order: the sentence it ends, or None for a reply's end.
        self._flushes: deque[str | None] = deque()
        self._swallow_remove = False
        self._connecting: asyncio.Task | None = None

    async def setup(self, setup: FrameProcessorSetup):
        """Start connecting without waiting for the handshake."""
        await super(DeepgramTTSService, self).setup(setup)
        self._connecting = self.create_task(self._connect(), name="deepgram-tts-connect")

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        """Speak the sentence (once connected), then flush so its end shows in the audio."""
        if self._connecting:
            connecting, self._connecting = self._connecting, None
            await connecting
        async for frame in super().run_tts(text, context_id):
            yield frame
        if self._websocket:
            self._flushes.append(text)
            await self._get_websocket().send(json.dumps({"type": "Flush"}))

    async def flush_audio(self, context_id: str | None = None):
        """End of the reply: its Flushed closes the context."""
        self._flushes.append(None)
        await super().flush_audio(context_id)

    async def append_to_audio_context(self, context_id, frame):
        """Turn a sentence's `Flushed` into a boundary instead of the end of the context."""
        if isinstance(frame, TTSStoppedFrame) and self._flushes:
            sentence = self._flushes.popleft()
            if sentence is not None:
                self._swallow_remove = True
                frame = SentenceAudioEndFrame(text=sentence)
        await super().append_to_audio_context(context_id, frame)

    async def remove_audio_context(self, context_id):
        """Keep the context open after a sentence boundary."""
        if self._swallow_remove:
            self._swallow_remove = False
            return
        await super().remove_audio_context(context_id)

    async def on_audio_context_interrupted(self, context_id: str):
        """Forget pending flushes: the interruption clears them at Deepgram too."""
        self._flushes.clear()
        await super().on_audio_context_interrupted(context_id)
