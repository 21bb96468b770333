"""Cartesia WebSocket TTS that marks where each word's audio ends, from Cartesia's timestamps."""

import asyncio
import re
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from pipecat.frames.frames import (
    Frame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup
from pipecat.services.cartesia.tts import CartesiaTTSService
from pipecat.utils.text.word_timestamp_utils import merge_punct_tokens

from telephony.frames import SentenceEndFrame


@dataclass
class _Word:
    """A word frame sent on, and where its audio starts (samples into the context's audio)."""

    text: str
    start: int | None


class WordTimedCartesiaTTSService(CartesiaTTSService):
    """`CartesiaTTSService` whose word frames are each followed by the end of their audio.

    pipecat turns Cartesia's word timestamps into one `TTSTextFrame` per word, sent when the
    timestamp arrives, which is ahead of the word's audio when Cartesia sends it first (as
    pipecat, which holds words that come before any audio, expects). The playback tracker
    records each as a unit of the reply; here a `SentenceEndFrame` follows, in order
    with the audio, exactly where that word's audio ends: where the next word starts (the
    audio frame is cut there), or at the end of the context for the last. A timestamp that
    comes after its audio is marked as soon as it comes (late: never early).

    | in (from Cartesia)                   | out (in order)                               |
    |--------------------------------------|----------------------------------------------|
    | timestamps "Hi" 0.0 s, audio 0.3 s,  | TTSStarted, TTSText(Hi), audio 0.0–0.3 s,    |
    | timestamps "there." 0.3 s, audio…,   |   SentenceAudioEnd(Hi), TTSText(there.),     |
    | done                                 |   audio…, SentenceAudioEnd(there.), TTSStopped |

    Also: the socket opens in the background (stock pipecat holds the pipeline's start for
    the handshake), sentences end with a space (Cartesia joins a context's transcripts
    verbatim; stock pipecat 1.14 sends "there.How"), and `wss` reuses the process's TLS.
    """

    def __init__(self, **kwargs):
        """Same arguments as `CartesiaTTSService`."""
        kwargs.setdefault("append_trailing_space", True)
        super().__init__(**kwargs)
        self._connecting: asyncio.Task | None = None
        self._starts: dict[str, deque[tuple[str, float]]] = {}  # by context: (word, seconds)
        self._playing: str | None = None  # the context whose audio is being sent on
        self._position = 0  # samples of its audio sent on
        self._words: deque[_Word] = deque()  # its word frames not marked yet

    async def setup(self, setup: FrameProcessorSetup):
        """Start connecting without waiting for the handshake."""
        await super(CartesiaTTSService, self).setup(setup)
        self._output_sample_rate = self.sample_rate
        self._connecting = self.create_task(self._connect(), name="cartesia-tts-connect")

    async def _disconnect(self):
        """Stop a connection attempt still under way, then disconnect as pipecat does."""
        if self._connecting:
            task, self._connecting = self._connecting, None
            await self.cancel_task(task)
        await super()._disconnect()

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        """Send the sentence once connected."""
        if self._connecting:
            connecting, self._connecting = self._connecting, None
            await connecting
        async for frame in super().run_tts(text, context_id):
            yield frame

    async def add_word_timestamps(self, word_times, context_id=None, **kwargs):
        """Note where each word starts, then let pipecat make its word frames."""
        if context_id and self.audio_context_available(context_id):
            words = merge_punct_tokens(word_times) if kwargs.get("pre_merge_tokens") else word_times
            self._starts.setdefault(context_id, deque()).extend(words)
        await super().add_word_timestamps(word_times, context_id, **kwargs)

    async def on_audio_context_interrupted(self, context_id: str):
        """Forget the context's words: Cartesia is told to cancel it."""
        self._starts.pop(context_id, None)
        if context_id == self._playing:
            self._playing = None
        await super().on_audio_context_interrupted(context_id)

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM):
        """Send on the context's frames with each word's end marked in its audio."""
        downstream = direction == FrameDirection.DOWNSTREAM
        if downstream and isinstance(frame, TTSStartedFrame):
            self._playing, self._position, self._words = frame.context_id, 0, deque()
        elif downstream and self._playing and getattr(frame, "context_id", None) == self._playing:
            if await self._timed(frame):
                return
        await super().push_frame(frame, direction)

    async def _timed(self, frame: Frame) -> bool:
        """Handle a frame of the playing context; whether it was sent on already."""
        if isinstance(frame, TTSAudioRawFrame):
            await self._push_audio(frame)
            return True
        if isinstance(frame, TTSTextFrame) and frame.text.strip():
            await super().push_frame(frame)
            self._words.append(_Word(frame.text, self._start_of(frame.text)))
            await self._mark_passed()
            return True
        if isinstance(frame, TTSStoppedFrame):
            while self._words:  # the last word ends with the context's audio
                await self._mark()
            self._starts.pop(frame.context_id, None)
            self._playing = None
        return False

    async def _push_audio(self, frame: TTSAudioRawFrame) -> None:
        """Send the audio on, cut where a word ends to mark it there."""
        audio = frame.audio
        while (end := self._end_of_first()) is not None:
            if end > self._position + len(audio) // 2:
                break
            cut = max(end - self._position, 0) * 2
            if cut:
                await self._push_part(frame, audio[:cut])
                audio = audio[cut:]
            await self._mark()
        if audio:
            await self._push_part(frame, audio)

    async def _push_part(self, frame: TTSAudioRawFrame, audio: bytes) -> None:
        if audio is not frame.audio:
            frame = TTSAudioRawFrame(audio, frame.sample_rate, frame.num_channels, frame.context_id)
        await super().push_frame(frame)
        self._position += len(audio) // 2

    async def _mark_passed(self) -> None:
        """Mark the words whose end the audio sent on has already passed."""
        while (end := self._end_of_first()) is not None and end <= self._position:
            await self._mark()

    async def _mark(self) -> None:
        word = self._words.popleft()
        await super().push_frame(SentenceEndFrame(text=word.text))

    def _end_of_first(self) -> int | None:
        """Where the first unmarked word's audio ends, once the word after it has started."""
        if len(self._words) < 2:
            return None
        return self._words[1].start

    def _start_of(self, text: str) -> int | None:
        """The start of the word frame with this text, from the context's timestamps.

        Normally the next timestamp; one that pipecat dropped (a word not in the text) is
        skipped by matching the letters of the next few.
        """
        pending = self._starts.get(self._playing or "")
        if not pending:
            return None
        key = _letters(text)
        for i, (word, _) in enumerate(list(pending)[:4]):
            if _letters(word) in key or key in _letters(word):
                for _ in range(i):
                    pending.popleft()
                break
        return round(pending.popleft()[1] * self.sample_rate)


def _letters(text: str) -> str:
    return re.sub(r"\W", "", text).lower()
