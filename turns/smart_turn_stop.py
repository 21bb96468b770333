"""A turn end that listens to what was said: Smart Turn chooses how long the silence must be."""

from loguru import logger
from pipecat.audio.turn.base_turn_analyzer import BaseTurnAnalyzer, EndOfTurnState
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    MetricsFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import TurnMetricsData
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.turns.types import ProcessFrameResult

from turns.silence_stop import SilenceTimedTurnStopStrategy
from turns.words_end import WordsEnd


class SmartTurnStop(SilenceTimedTurnStopStrategy):
    """The speech-timeout turn end, its wait chosen at the VAD's stop by Smart Turn v3.

    At the VAD's stop the turn's audio is judged (the verdict, ~0.1 s, counts towards the
    wait): a finished sentence ends `complete_secs` after the stop; a surely unfinished one
    ("I'd like to book a table for…", probability under `unfinished_below`) after
    `incomplete_secs`, so the caller can go on; one Smart Turn is unsure of after
    `unsure_secs`, the plain speech timeout. Crediting a late VAD stop and waiting for the
    final transcript are `SilenceTimedTurnStopStrategy`'s.

    The words so far (final and interim, as the verdict comes) move that one step
    (`words_end`, in the base's `language`): a transcript ending on a word no sentence ends with
    ("…for", "…and") waits a step longer, whatever the audio sounded like; one the STT
    punctuated as a sentence's end lifts a surely-unfinished verdict to unsure. So words
    never end a turn sooner than the plain speech timeout would, and Smart Turn's audio, on
    its own, never holds a sentence that reads finished for the longest wait.

    | frames: VADUserStopped, then the verdict       | words end           | turn ends after     |
    |------------------------------------------------|---------------------|---------------------|
    | judged finished                                | not on "for", "and" | `complete_secs`     |
    | judged finished                                | on "for", "and"…    | `unsure_secs`       |
    | judged unfinished, p ≥ `unfinished_below`      | not on "for"…       | `unsure_secs`       |
    | judged unfinished, p ≥ `unfinished_below`      | on "for"…           | `incomplete_secs`   |
    | p < `unfinished_below`                         | on ".", "?" or "!"  | `unsure_secs`       |
    | p < `unfinished_below`                         | otherwise           | `incomplete_secs`   |
    | VADUserStarted before then                     |                     | not yet: judged anew|
    | (each verdict)                                 | MetricsFrame(TurnMetricsData) ↓           |
    """

    def __init__(
        self,
        *,
        turn_analyzer: BaseTurnAnalyzer,
        complete_secs: float,
        incomplete_secs: float,
        unsure_secs: float | None = None,
        unfinished_below: float = 0.5,
        **kwargs,
    ):
        """Judge with `turn_analyzer` (e.g. `SharedSmartTurnAnalyzerV3`), and the words.

        The words are read in `language` (a keyword for the base): one without a word list
        (or "") leaves the verdict to the audio.
        """
        super().__init__(user_speech_timeout=incomplete_secs, **kwargs)
        self._analyzer = turn_analyzer
        self._waits = (complete_secs, unsure_secs or incomplete_secs, incomplete_secs)
        self._unfinished_below = unfinished_below
        self._caller_speaking = False  # as the VAD heard the last packet

    async def setup(self, setup: FrameProcessorSetup):
        """Judge audio at the pipeline's input rate."""
        await super().setup(setup)
        self._analyzer.set_sample_rate(setup.audio_in_sample_rate)

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        """Keep the turn's audio for the verdict, then decide as the speech timeout does."""
        if isinstance(frame, InputAudioRawFrame):
            self._analyzer.append_audio(frame.audio, self._caller_speaking)
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._caller_speaking = True
            self._analyzer.update_vad_start_secs(frame.start_secs)
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._caller_speaking = False
        return await super().process_frame(frame)

    async def handle_user_turn_stopped(self):
        """Forget the turn's audio."""
        await super().handle_user_turn_stopped()
        self._analyzer.clear()

    async def cleanup(self):
        """Release the analyzer."""
        await super().cleanup()
        await self._analyzer.cleanup()

    async def _wait_for_speech(self, secs: float) -> None:
        """Wait `secs` (the unfinished sentence's wait), less what the verdict saves."""
        state, verdict = await self._analyzer.analyze_end_of_turn()
        if verdict:
            await self.push_frame(MetricsFrame(data=[verdict]))
        words = self.words_end()
        wait = self._wait_for(state, verdict, words)
        p = f"p={verdict.probability:.2f}" if verdict else "no verdict"
        logger.debug(f"{self}: Smart Turn {state.name.lower()} ({p}), words end {words.value}: "
                     f"the turn ends {wait:g} s after the VAD's stop")  # fmt: skip
        # The wait counts from the timer's start: the verdict's own time is part of it.
        await super()._wait_for_speech(secs - (self._waits[-1] - wait))

    def _wait_for(
        self, state: EndOfTurnState, verdict: TurnMetricsData | None, words: WordsEnd
    ) -> float:
        complete, unsure, incomplete = self._waits
        if state == EndOfTurnState.COMPLETE:
            return unsure if words == WordsEnd.UNFINISHED else complete
        if words == WordsEnd.UNFINISHED:
            return incomplete
        sure = verdict is None or verdict.probability < self._unfinished_below
        return incomplete if sure and words != WordsEnd.SENTENCE else unsure
