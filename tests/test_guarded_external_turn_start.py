"""GuardedExternalUserTurnStartStrategy: a proposed turn over the bot must prove itself."""

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMContextFrame,
    ProposedUserStartedSpeakingFrame,
    ProposedUserStoppedSpeakingFrame,
    StartFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.turns.user_stop import ExternalUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from pipelines.build import turns
from pipelines.declaration import load_declaration
from turns.guarded_external_start import GuardedExternalUserTurnStartStrategy

MIN_SPEECH_SECS = 0.3  # shorter than the declared 0.7 s, to keep the tests quick
PACE_SECS = 0.01


def interim(text: str) -> InterimTranscriptionFrame:
    return InterimTranscriptionFrame(text, "caller", "t")


def final(text: str) -> TranscriptionFrame:
    return TranscriptionFrame(text, "caller", "t", finalized=True)


def flux_turn_end(text: str) -> list[Frame]:
    """What Flux's EndOfTurn brings, once the local VAD has heard the caller stop."""
    return [VADUserStoppedSpeakingFrame(), final(text), ProposedUserStoppedSpeakingFrame()]


@dataclass
class Run:
    """What the user aggregator did with the frames."""

    started_after: list[float] = field(default_factory=list)  # seconds after the first frame
    down: list[Frame] = field(default_factory=list)
    context: LLMContext = field(default_factory=LLMContext)

    def count(self, kind: type) -> int:
        return sum(isinstance(f, kind) for f in self.down)

    @property
    def user_messages(self) -> list[str]:
        return [m["content"] for m in self.context.messages if m["role"] == "user"]


async def run(frames: list[Frame], min_words: int = 2, pace_secs: float = PACE_SECS) -> Run:
    """The real user aggregator with the strategy and Flux's stop strategy, fed `frames`.

    Turn starts are timed from the first frame.
    """
    result = Run()
    strategy = GuardedExternalUserTurnStartStrategy(
        min_speech_secs=MIN_SPEECH_SECS, min_words=min_words
    )
    turns = UserTurnStrategies(start=[strategy], stop=[ExternalUserTurnStopStrategy()])
    params = LLMUserAggregatorParams(user_turn_strategies=turns)
    user = LLMContextAggregatorPair(result.context, user_params=params).user()
    loop = asyncio.get_running_loop()

    began: list[float] = []

    @user.event_handler("on_before_process_frame")
    async def on_frame(aggregator, frame):
        if not began and not isinstance(frame, StartFrame):
            began.append(loop.time())

    @user.event_handler("on_user_turn_started")
    async def on_started(aggregator, strategy):
        result.started_after.append(loop.time() - began[0])

    # Frames arrive a little apart, as over the network: a turn start's interruption drops
    # whatever waits in the aggregator's queue (pipecat's own behaviour, not the strategy's).
    paced = [p for f in frames for p in (f, SleepFrame(pace_secs))]
    result.down, _ = await run_test(user, frames_to_send=[*paced, SleepFrame(0.7)])
    return result


async def test_with_the_bot_silent_a_proposal_starts_the_turn_at_once():
    result = await run([ProposedUserStartedSpeakingFrame(), *flux_turn_end("Hello there.")])
    assert len(result.started_after) == 1 and result.started_after[0] < 0.1
    assert result.count(UserStartedSpeakingFrame) == 1 and result.count(InterruptionFrame) == 1
    assert result.user_messages == ["Hello there."]
    assert result.count(LLMContextFrame) == 1


async def test_an_mm_hm_over_the_bot_starts_no_turn_and_never_reaches_the_context():
    result = await run(
        [
            BotStartedSpeakingFrame(),
            VADUserStartedSpeakingFrame(),
            ProposedUserStartedSpeakingFrame(),
            interim("Mm-hmm."),
            SleepFrame(MIN_SPEECH_SECS - 0.1),
            *flux_turn_end("Mm-hmm."),
            SleepFrame(MIN_SPEECH_SECS),  # a pending proposal would have been confirmed by now
        ]
    )
    assert result.started_after == []
    assert result.count(UserStartedSpeakingFrame) == 0 and result.count(InterruptionFrame) == 0
    assert result.count(LLMContextFrame) == 0, "no LLM request"
    assert result.user_messages == []


async def test_the_next_turn_holds_its_own_words_only():
    result = await run(
        [
            BotStartedSpeakingFrame(),
            VADUserStartedSpeakingFrame(),
            ProposedUserStartedSpeakingFrame(),
            *flux_turn_end("Mm-hmm."),
            BotStoppedSpeakingFrame(),
            VADUserStartedSpeakingFrame(),
            ProposedUserStartedSpeakingFrame(),
            *flux_turn_end("What time do you open?"),
        ]
    )
    assert len(result.started_after) == 1
    assert result.user_messages == ["What time do you open?"], "not 'Mm-hmm. What time…'"
    assert result.count(LLMContextFrame) == 1


async def test_over_the_bot_the_turn_starts_after_min_speech_secs_of_speech():
    result = await run(
        [
            BotStartedSpeakingFrame(),
            VADUserStartedSpeakingFrame(),
            ProposedUserStartedSpeakingFrame(),
            interim("Actually,"),
            SleepFrame(MIN_SPEECH_SECS + 0.2),
            *flux_turn_end("Actually, cancel that."),
        ]
    )
    (started,) = result.started_after
    assert MIN_SPEECH_SECS - 0.02 <= started < MIN_SPEECH_SECS + 0.1
    assert result.count(InterruptionFrame) == 1
    assert result.user_messages == ["Actually, cancel that."]


async def test_speech_already_long_enough_when_the_proposal_comes_starts_the_turn_at_once():
    result = await run(
        [
            BotStartedSpeakingFrame(),
            VADUserStartedSpeakingFrame(),
            SleepFrame(MIN_SPEECH_SECS + 0.1),
            ProposedUserStartedSpeakingFrame(),
            *flux_turn_end("Actually, cancel that."),
        ]
    )
    (started,) = result.started_after
    assert MIN_SPEECH_SECS + 0.1 <= started < MIN_SPEECH_SECS + 0.2
    assert result.user_messages == ["Actually, cancel that."]


async def test_a_vad_stop_restarts_the_count():
    result = await run(
        [
            BotStartedSpeakingFrame(),
            VADUserStartedSpeakingFrame(),
            ProposedUserStartedSpeakingFrame(),
            SleepFrame(MIN_SPEECH_SECS - 0.1),
            VADUserStoppedSpeakingFrame(),
            VADUserStartedSpeakingFrame(),
            SleepFrame(MIN_SPEECH_SECS - 0.1),
            *flux_turn_end("Uh, hm."),
        ],
        min_words=3,
    )
    assert result.started_after == [], "two short segments, neither long enough"
    assert result.user_messages == []


async def test_over_the_bot_min_words_transcribed_start_the_turn():
    result = await run(
        [
            BotStartedSpeakingFrame(),
            ProposedUserStartedSpeakingFrame(),  # (no VAD start: a soft voice)
            interim("What"),
            SleepFrame(0.1),
            interim("What time"),
            *flux_turn_end("What time do you open?"),
        ]
    )
    (started,) = result.started_after
    assert 0.1 <= started < MIN_SPEECH_SECS, "on the second word, not the first"
    assert result.count(InterruptionFrame) == 1
    assert result.user_messages == ["What time do you open?"]


async def test_min_words_in_the_turns_final_transcript_still_make_a_barge_in():
    # Flux sends the turn's transcript and its end back to back (not paced here).
    result = await run(
        [
            BotStartedSpeakingFrame(),
            ProposedUserStartedSpeakingFrame(),
            SleepFrame(0.1),
            *flux_turn_end("Yes, please."),
        ],
        pace_secs=0,
    )
    assert len(result.started_after) == 1
    assert result.user_messages == ["Yes, please."]
    assert result.count(LLMContextFrame) == 1


async def test_a_proposal_waiting_when_the_bot_falls_silent_starts_the_turn():
    result = await run(
        [
            BotStartedSpeakingFrame(),
            ProposedUserStartedSpeakingFrame(),
            SleepFrame(0.1),
            BotStoppedSpeakingFrame(),
            *flux_turn_end("Yes."),
        ]
    )
    (started,) = result.started_after
    assert 0.1 <= started < MIN_SPEECH_SECS
    assert result.user_messages == ["Yes."]


def test_a_flux_pipeline_guards_its_turn_starts_with_the_declared_thresholds(tmp_path: Path):
    from test_stt_providers_call import BOT, FLUX

    path = tmp_path / "flux.toml"
    path.write_text(BOT + FLUX + "[turn]\nmin_barge_in_secs = 0.9\nmin_barge_in_words = 3\n")
    strategies = turns(load_declaration(path))
    (start,) = strategies.start
    (stop,) = strategies.stop
    assert isinstance(start, GuardedExternalUserTurnStartStrategy)
    assert (start._min_speech_secs, start._min_words) == (0.9, 3)
    assert isinstance(stop, ExternalUserTurnStopStrategy), "Flux still ends the turn"
