"""Speculative replies: the LLM answers the caller's pause before the turn is declared over."""

from dataclasses import dataclass
from typing import Protocol

from loguru import logger
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.turns.types import ProcessFrameResult, UserTurnSpeculation
from pipecat.turns.user_stop import (
    BaseUserTurnStopStrategy,
    EagerMatchPolicy,
    EagerUserTurnStopStrategy,
    NormalizedMatch,
)

from turns.frames import (
    CallerPausedFrame,
    SpeculationConfirmedFrame,
    SpeculationWithdrawnFrame,
    StartSpeculationFrame,
)
from turns.silence_stop import SilenceTimedTurnStopStrategy
from turns.smart_turn_stop import SmartTurnStop
from turns.words_end import WordsEnd, words_end


class PauseSensor(Protocol):
    """The VAD's latest windows (`SharedSileroVADAnalyzer`), read after it saw each frame."""

    @property
    def quiet_secs(self) -> float:
        """How long the latest windows have been unlike speech."""
        ...

    @property
    def voiced_secs(self) -> float:
        """How long the latest windows have been speech."""
        ...


@dataclass
class SpeculationCounts:
    """A call's speculative requests: how many started, and how many answered a turn."""

    started: int = 0
    used: int = 0

    @property
    def wasted(self) -> int:
        """Requests whose reply nobody heard."""
        return self.started - self.used


class SpeculationLedger(BaseUserTurnStopStrategy):
    """Mixed in before a stop strategy that speculates: keeps its speculations in order.

    The user aggregator pushes a speculative context at once, but a verdict on it only
    through its queue, so a withdrawal and the next speculation would leave in the wrong order
    (and pipecat's `EagerEndOfTurnCancelFrame`, a system frame, overtakes the context it
    cancels). Here a speculation starts only when a `StartSpeculationFrame` comes back
    through that queue, so the contexts and the verdicts on them (`SpeculationWithdrawnFrame`,
    `SpeculationConfirmedFrame`) reach `ReplyAhead` in the order they were decided. A turn end
    that confirms a speculation not started yet runs the LLM as usual. A turn end that asks
    afresh pushes its context at once, ahead of the withdrawal: `ReplyAhead` withdraws the
    speculation when that context reaches it.

    Counts every speculative request started, and every turn end that confirms one, whoever
    decided them (our pauses, or an STT's eager end of turn); logged at the call's end.
    """

    def __init__(self, **kwargs):
        """Count from zero."""
        super().__init__(**kwargs)
        self.counts = SpeculationCounts()
        self._asked: UserTurnSpeculation | None = None  # to start when its frame comes back
        self._live = False  # a speculative context went down, no verdict on it yet

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        """Start the speculation asked for, in order with the verdicts."""
        if isinstance(frame, StartSpeculationFrame) and self._asked:
            speculation, self._asked = self._asked, None
            self.counts.started += 1
            self._live = True
            await super().trigger_user_turn_inference_triggered(speculation=speculation)
        elif isinstance(frame, EagerEndOfTurnCancelFrame):
            self._live = False  # withdrawn by the LLM's side (it wanted a tool)
        return await super().process_frame(frame)

    async def trigger_user_turn_inference_triggered(
        self, *, speculation: UserTurnSpeculation | None = None
    ):
        """A speculation starts once its frame comes back through the aggregator's queue."""
        if speculation is None:
            await super().trigger_user_turn_inference_triggered()
            return
        self._asked = speculation
        await self.broadcast_frame(StartSpeculationFrame)

    async def trigger_user_turn_finalized(
        self,
        *,
        enable_user_speaking_frames: bool | None = None,
        confirms_speculation: bool = False,
    ):
        """A confirmed speculation plays (counted); one never started is asked as usual."""
        self._asked = None
        confirms_speculation = confirms_speculation and self._live
        if confirms_speculation:
            self._live = False
            self.counts.used += 1
            await self.broadcast_frame(SpeculationConfirmedFrame)
        await super().trigger_user_turn_finalized(
            enable_user_speaking_frames=enable_user_speaking_frames,
            confirms_speculation=confirms_speculation,
        )

    async def trigger_user_turn_speculation_cancelled(self):
        """Withdraw the speculation: pipecat's cancel at once, and ours in order after it."""
        self._asked = None
        if self._live:
            self._live = False
            await super().trigger_user_turn_speculation_cancelled()
            await self.broadcast_frame(SpeculationWithdrawnFrame)

    async def cleanup(self):
        """Say what speculation cost this call."""
        await super().cleanup()
        logger.info(
            f"speculative replies: {self.counts.started} requested, {self.counts.used} "
            f"used, {self.counts.wasted} wasted"
        )


class SpeculativeTurnStop(SpeculationLedger):
    """Mixed in before a stop strategy: starts the reply at the caller's first pause.

    After `pause_secs` of VAD windows unlike speech (long before the VAD's stop and the
    strategy's end of the turn), or `sentence_pause_secs` after words that read as a
    finished sentence (`words_end`: the STT's ".", "?" or "!" after a word a sentence can end
    on), with words the STT has not finalized yet (an interim
    transcript since its last final one), a `CallerPausedFrame` asks the STT to finalize
    them; once the words said so far are final, the LLM answers them through pipecat's
    speculation path (a provisional context; the LLM service's `SpeculationGate` holds the
    reply). When the strategy ends the turn on the same words, the held reply plays at once;
    otherwise it is withdrawn (`EagerEndOfTurnCancelFrame`: the LLM stream closes, nothing was
    played or written to the context) and the turn is answered as usual. At most
    `max_per_turn` pauses a turn (a final transcript that corrects a pause's speculation
    within the same pause does not count again).

    | while the caller's turn is open                  | what happens                          |
    |--------------------------------------------------|---------------------------------------|
    | `pause_secs` of quiet windows (after a sentence: | CallerPausedFrame broadcast           |
    |   `sentence_pause_secs`), interim words          |                                       |
    | `pause_secs` of quiet windows, words all final   | speculation on them                   |
    | paused, the transcript final (no interim since)  | speculation on the turn's words       |
    | a final transcript with other words, paused      | withdrawn; speculation on the new ones|
    | `resume_secs` of speech windows                  | withdrawn (the caller went on)        |
    | an ErrorFrame (the speculative request failed)   | withdrawn: the turn end asks again    |
    | EagerEndOfTurnCancel ↑ (the LLM wants a tool)    | withdrawn: the turn end asks again    |
    | the strategy ends the turn, same words           | turn finalized, the held reply plays  |
    | the strategy ends the turn, other words, or the  | withdrawn, a new request              |
    |   context changed since (a reply cut or heard)   |                                       |
    """

    def __init__(
        self,
        *,
        vad: PauseSensor,
        context: LLMContext,
        pause_secs: float,
        resume_secs: float,
        max_per_turn: int,
        sentence_pause_secs: float | None = None,
        match_policy: EagerMatchPolicy | None = None,
        **kwargs,
    ):
        """Speculate after `pause_secs` of quiet; the caller resumed after `resume_secs`.

        `sentence_pause_secs` (default `pause_secs`): the quiet that is enough after words
        that read as a finished sentence, in the base strategy's `language`.

        `context` is the call's: a held reply answers the turn only if the context it was
        built on is still the call's (a barge-in's cut reaches it after the caller's turn
        has begun, and a reply heard to its end, once the caller's ear has it).
        """
        super().__init__(**kwargs)
        self._vad = vad
        self._context = context
        self._basis = ""  # the context the speculative reply was built on
        self._pause_secs, self._resume_secs = pause_secs, resume_secs
        self._sentence_pause_secs = min(sentence_pause_secs or pause_secs, pause_secs)
        self._reads_finished = False  # the words so far end as a sentence does
        self._max_per_turn = max_per_turn
        self._match = match_policy or NormalizedMatch()
        self._turn_open = False
        self._words = ""  # the caller's final transcripts since the last turn ended
        self._words_final = False  # final words, and no interim transcript since the last one
        self._interim = ""  # the STT's latest guess at the words since the last final
        self._paused = False
        self._speculation: UserTurnSpeculation | None = None
        self._tries = 0  # pauses speculated on this turn
        self._pause_counted = False  # this pause is one of them

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        """Follow the caller's pauses and words, then let the strategy decide as it does."""
        if isinstance(frame, InputAudioRawFrame) and self._turn_open:
            await self._follow_pause()
        elif isinstance(frame, StartSpeculationFrame):
            # The speculative context is built now, on the context as it is now (a barge-in's
            # cut may have reached it since the pause).
            self._basis = _fingerprint(self._context)
        elif isinstance(frame, TranscriptionFrame) and frame.text.strip():
            await self._on_final(frame.text)
        elif isinstance(frame, InterimTranscriptionFrame):
            self._words_final = False
            self._interim = frame.text.strip()
            self._read_words()
        elif isinstance(frame, ErrorFrame) and self._speculation:
            await self._withdraw("its request failed")  # the turn end asks again
        elif isinstance(frame, EagerEndOfTurnCancelFrame) and self._speculation:
            # Withdrawn by the LLM: it wanted a tool call, which waits for the turn's end.
            logger.debug(f"{self}: the LLM withdrew the speculative reply")
            self._speculation = None
        return await super().process_frame(frame)

    async def handle_user_turn_started(self):
        """Speculate on this turn's pauses."""
        await super().handle_user_turn_started()
        self._turn_open = True

    async def handle_user_turn_stopped(self):
        """Start the next turn afresh."""
        await super().handle_user_turn_stopped()
        await self._withdraw("the turn ended without it")
        self._turn_open = self._paused = self._reads_finished = False
        self._words, self._tries = "", 0

    async def trigger_user_turn_stopped(self, *, enable_user_speaking_frames: bool | None = None):
        """End the turn, with the held reply if it answers these words."""
        speculation, self._speculation = self._speculation, None
        if speculation and self._still_answers(speculation):
            logger.debug(f"{self}: the turn ended as speculated, its reply plays")
            await self.trigger_user_turn_finalized(
                enable_user_speaking_frames=enable_user_speaking_frames,
                confirms_speculation=True,
            )
            return
        if speculation:
            await self.trigger_user_turn_speculation_cancelled()
        await super().trigger_user_turn_stopped(
            enable_user_speaking_frames=enable_user_speaking_frames
        )

    def _still_answers(self, speculation: UserTurnSpeculation) -> bool:
        if not self._match.matches(speculation.text, self._words):
            logger.debug(f"{self}: the turn ended on other words than speculated")
            return False
        if self._basis != _fingerprint(self._context):
            logger.debug(f"{self}: the context changed since the speculation (a reply cut?)")
            return False
        return True

    async def _follow_pause(self) -> None:
        # Without interim words there is nothing to finalize: a Finalize then would only cut
        # the STT's recognition short (and a word or two too short to recognize with it).
        pause_secs = self._sentence_pause_secs if self._reads_finished else self._pause_secs
        quiet = self._vad.quiet_secs >= pause_secs
        if not self._paused and quiet and (self._interim or self._words_final):
            self._paused, self._pause_counted = True, False
            if self._interim:
                await self.broadcast_frame(CallerPausedFrame)
            await self._maybe_speculate()
        elif self._paused and self._vad.voiced_secs >= self._resume_secs:
            self._paused = self._words_final = False  # new words: wait for their transcript
            await self._withdraw("the caller went on")

    async def _on_final(self, text: str) -> None:
        self._words = f"{self._words} {text}".strip()
        self._words_final, self._interim = True, ""
        self._read_words()
        speculation = self._speculation
        if self._paused and speculation and not self._match.matches(speculation.text, self._words):
            await self._withdraw("the final words differ")
        if self._paused:
            await self._maybe_speculate()

    def _read_words(self) -> None:
        words = f"{self._words} {self._interim}"
        self._reads_finished = words_end(words, self._language) == WordsEnd.SENTENCE

    async def _maybe_speculate(self) -> None:
        # On the STT's interim words if it has not finalized them yet: the final transcript
        # (asked for by the pause) confirms them, or withdraws the reply if they differ.
        words = f"{self._words} {self._interim}".strip()
        ready = self._turn_open and words
        if not ready or self._speculation:
            return
        if not self._pause_counted:  # a pause's later finals correct its speculation for free
            if self._tries >= self._max_per_turn:
                return
            self._tries, self._pause_counted = self._tries + 1, True
        self._speculation = UserTurnSpeculation(text=words)
        logger.debug(f"{self}: speculating on [{words}]")
        await self.trigger_user_turn_inference_triggered(speculation=self._speculation)

    async def _withdraw(self, reason: str) -> None:
        if not self._speculation:
            return
        self._speculation = None
        logger.debug(f"{self}: speculative reply withdrawn ({reason})")
        await self.trigger_user_turn_speculation_cancelled()


def _fingerprint(context: LLMContext) -> str:
    """The context's messages, to tell whether they changed (edits are made in place)."""
    return repr(context.get_messages())


class SpeculativeSilenceStop(SpeculativeTurnStop, SilenceTimedTurnStopStrategy):
    """The speech-timeout turn end, answering the caller's pauses ahead."""


class SpeculativeSmartTurnStop(SpeculativeTurnStop, SmartTurnStop):
    """Smart Turn's end of turn, answering the caller's pauses ahead."""


class EagerFluxTurnStop(SpeculationLedger, EagerUserTurnStopStrategy):
    """Deepgram Flux's end of turn, answering its eager end of turn ahead (pipecat's own)."""
