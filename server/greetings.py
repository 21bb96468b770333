"""Each pipeline's greeting, synthesized once at start-up so calls can play it at once."""

import asyncio

from loguru import logger
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from pipelines.build import SAMPLE_RATE, make_service
from pipelines.declaration import Declaration
from pipelines.provider import ProviderAccess
from processors.greeting_player import SpokenSentence
from telephony.frames import SentenceEndFrame

SYNTHESIS_TIMEOUT_SECS = 15.0


class GreetingCache:
    """Greeting audio by pipeline name; a pipeline missing here greets through its TTS live."""

    def __init__(self) -> None:
        self._spoken: dict[str, list[SpokenSentence]] = {}

    def get(self, declaration: Declaration) -> list[SpokenSentence] | None:
        """The cached greeting of this pipeline, if synthesized."""
        return self._spoken.get(declaration.name)

    async def warm(self, declarations: dict[str, Declaration], access: ProviderAccess) -> None:
        """Synthesize every pipeline's greeting; a failure is logged and that pipeline goes live."""
        for declaration in declarations.values():
            self._spoken.pop(declaration.name, None)  # never an old greeting (pipeline reloads)
            if not declaration.tts:  # speech to speech: the service speaks the greeting
                continue
            try:
                async with asyncio.timeout(SYNTHESIS_TIMEOUT_SECS):
                    sentences = await _synthesize(declaration, access)
            except Exception:
                logger.exception(f"could not pre-synthesize the {declaration.name!r} greeting")
                continue
            if sentences:
                self._spoken[declaration.name] = sentences
                logger.info(f"greeting of {declaration.name!r} cached ({len(sentences)} sentences)")


class _Recorder(FrameProcessor):
    """Collects the TTS output of one utterance, cut into the units the TTS timed.

    Words by their timestamps (a service with word timing), sentences by their
    `SentenceEndFrame`s, or else the whole utterance as one.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pcm = bytearray()
        self._texts: list[str] = []
        self._words: list[tuple[str, int]] = []  # (text, pts)
        self._sentences: list[SpokenSentence] = []
        self._sentence_start = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSTextFrame) and frame.pts is not None:
            self._words.append((frame.text.strip(), frame.pts))
        elif isinstance(frame, TTSTextFrame):
            self._texts.append(frame.text.strip())
        elif isinstance(frame, TTSAudioRawFrame):
            self._pcm.extend(frame.audio)
        elif isinstance(frame, SentenceEndFrame):
            pcm = bytes(self._pcm[self._sentence_start :])
            self._sentences.append(SpokenSentence(frame.text.strip(), pcm))
            self._sentence_start = len(self._pcm)
        await self.push_frame(frame, direction)

    def units(self) -> list[SpokenSentence]:
        """The utterance's audio, unit by unit."""
        if self._words:
            first = self._words[0][1]
            starts = [round((pts - first) * SAMPLE_RATE / 1e9) * 2 for _, pts in self._words]
            ends = [*starts[1:], len(self._pcm)]
            return [
                SpokenSentence(text, bytes(self._pcm[start:end]))
                for (text, _), start, end in zip(self._words, starts, ends, strict=True)
            ]
        if self._sentences:
            return self._sentences
        text = " ".join(self._texts)
        return [SpokenSentence(text, bytes(self._pcm))] if text and self._pcm else []


async def _synthesize(declaration: Declaration, access: ProviderAccess) -> list[SpokenSentence]:
    assert declaration.tts
    recorder = _Recorder()
    worker = PipelineWorker(
        Pipeline([make_service(declaration.tts, declaration, access), recorder]),
        params=PipelineParams(audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE),
        enable_rtvi=False,
        enable_turn_tracking=False,
    )
    await worker.queue_frames([TTSSpeakFrame(declaration.bot.greeting), EndFrame()])
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()
    return recorder.units()
