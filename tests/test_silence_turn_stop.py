"""SilenceTimedTurnStopStrategy: the turn ends the configured silence after the voice ends."""

import asyncio

import numpy as np
import pytest
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    STTMetadataFrame,
    TextFrame,
    TranscriptionFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.turns.user_stop import BaseUserTurnStopStrategy, SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_processor import UserTurnProcessor
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from turns.silence_stop import SilenceTimedTurnStopStrategy

TIMEOUT = 0.4  # user_speech_timeout in every test
SHORT, LONG = SleepFrame(sleep=0.2), SleepFrame(sleep=0.6)  # 0.2 s either side of it
STT_P99 = STTMetadataFrame(service_name="stt", ttfs_p99_latency=1.2)  # 1 s past a 0.2 s stop


def packets(seconds: float, amplitude: float) -> list[InputAudioRawFrame]:
    t = np.arange(160) / 8000
    tone = (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.int16).tobytes()
    return [InputAudioRawFrame(tone, 8000, 1) for _ in range(round(seconds / 0.02))]


def voice_then_silence(silence_secs: float) -> list:
    """1 s of voice over a faint line hiss, then `silence_secs` of hiss."""
    return [*packets(1.0, 8000), *packets(silence_secs, 20)]


def words(text: str = "Yes.", finalized: bool = True) -> TranscriptionFrame:
    return TranscriptionFrame(text, "caller", "t", finalized=finalized)


def mark(name: str) -> TextFrame:
    return TextFrame(name)


def test_the_silence_is_measured_from_the_audio_level():
    strategy = SilenceTimedTurnStopStrategy(user_speech_timeout=TIMEOUT)
    for frame in voice_then_silence(0.3):
        asyncio.run(strategy.process_frame(frame))
    assert abs(strategy.silent_secs() - 0.3) < 0.001


async def turn_stop_delay(strategy) -> float:
    """Seconds from the VAD's stop to the end of the turn (the frames before it take no time)."""
    processor = UserTurnProcessor(user_turn_strategies=UserTurnStrategies(stop=[strategy]))
    stopped = []

    @processor.event_handler("on_user_turn_stopped")
    async def on_stopped(*args):
        stopped.append(asyncio.get_running_loop().time())

    frames = [VADUserStartedSpeakingFrame(), *voice_then_silence(0.3), words()]
    frames += [VADUserStoppedSpeakingFrame(stop_secs=0.2), *packets(1.0, 20), SleepFrame(1.0)]
    started = asyncio.get_running_loop().time()
    await run_test(processor, frames_to_send=frames, expected_down_frames=None)
    return stopped[0] - started


async def test_the_turn_ends_earlier_by_the_silence_the_vad_reported_late():
    plain = await turn_stop_delay(SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=TIMEOUT))
    timed = await turn_stop_delay(SilenceTimedTurnStopStrategy(user_speech_timeout=TIMEOUT))
    # 0.3 s of silence had passed when the VAD (stop_secs 0.2) reported it: 0.1 s credit.
    assert 0.05 < plain - timed < 0.5  # the credit is 0.1 s; both runs share the host's noise


async def story(strategy: BaseUserTurnStopStrategy, frames: list[Frame]) -> list[str]:
    """The marks that came out, and `END` where the turn ended among them."""
    processor = UserTurnProcessor(user_turn_strategies=UserTurnStrategies(stop=[strategy]))
    down, _ = await run_test(processor, frames_to_send=frames, expected_down_frames=None)
    return [
        f.text if type(f) is TextFrame else "END"
        for f in down
        if type(f) is TextFrame or isinstance(f, UserStoppedSpeakingFrame)
    ]


async def test_the_credit_moves_the_end_of_the_turn_before_a_later_frame():
    frames = [VADUserStartedSpeakingFrame(), *voice_then_silence(0.6), words()]
    frames += [VADUserStoppedSpeakingFrame(stop_secs=0.2), SHORT, mark("0.2 s"), LONG]
    # 0.4 s late: with 0.4 s of credit the turn ends at once, without any at 0.4 s.
    timed = SilenceTimedTurnStopStrategy(user_speech_timeout=TIMEOUT, max_credit_secs=0.4)
    assert await story(timed, frames) == ["END", "0.2 s"]
    plain = SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=TIMEOUT)
    assert await story(plain, frames) == ["0.2 s", "END"]


VAD_START, VAD_STOP = VADUserStartedSpeakingFrame(), VADUserStoppedSpeakingFrame(stop_secs=0.2)
STORIES = {
    "a finalized transcript: the turn ends the timeout after the VAD's stop": (
        [VAD_START, words(), VAD_STOP, mark("0"), SHORT, mark("0.2 s"), LONG, mark("0.8 s")],
        ["0", "0.2 s", "END", "0.8 s"],
    ),
    "no transcript, no end": ([VAD_START, VAD_STOP, LONG, mark("0.6 s")], ["0.6 s"]),
    "a transcript after the timer ran ends the turn at once": (
        [VAD_START, VAD_STOP, LONG, mark("0.6 s"), words(), mark("after the words")],
        ["0.6 s", "END", "after the words"],
    ),
    "a transcript not finalized: the STT's p99 is waited for too": (
        [STT_P99, VAD_START, words(finalized=False), VAD_STOP, LONG, mark("0.6 s"), LONG]
        + [mark("1.2 s")],
        ["0.6 s", "END", "1.2 s"],
    ),
    "a finalized transcript cuts the STT's p99 short": (
        [STT_P99, VAD_START, words(), VAD_STOP, LONG, mark("0.6 s")],
        ["END", "0.6 s"],
    ),
    "an interim after the final transcript: more is coming, the p99 is waited for": (
        [STT_P99, VAD_START, words(), InterimTranscriptionFrame("and", "caller", "t")]
        + [SleepFrame(sleep=0.05)]  # VAD frames are system frames: they would overtake it
        + [VAD_STOP, LONG, mark("0.6 s"), LONG, mark("1.2 s")],
        ["0.6 s", "END", "1.2 s"],
    ),
    "the caller speaking again before the end starts the wait over": (
        [VAD_START, words(), VAD_STOP, SHORT, VAD_START, LONG, mark("speaking")]
        + [VAD_STOP, SHORT, mark("0.2 s"), LONG, mark("0.8 s")],
        ["speaking", "0.2 s", "END", "0.8 s"],
    ),
    "words the VAD never heard: the timeout runs from the latest": (
        [words(), SHORT, words("Yes?"), SHORT, mark("0.2 s"), LONG, mark("0.8 s")],
        ["0.2 s", "END", "0.8 s"],
    ),
}


@pytest.mark.parametrize("name", STORIES)
async def test_it_ends_turns_as_pipecats_speech_timeout_does(name):
    frames, expected = STORIES[name]
    assert (
        await story(SilenceTimedTurnStopStrategy(user_speech_timeout=TIMEOUT), frames) == expected
    )
    theirs = SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=TIMEOUT)
    assert await story(theirs, frames) == expected


async def test_without_waiting_for_a_transcript_the_vad_alone_ends_the_turn():
    frames = [VAD_START, VAD_STOP, LONG, mark("0.6 s")]
    for strategy in (
        SilenceTimedTurnStopStrategy(user_speech_timeout=TIMEOUT, wait_for_transcript=False),
        SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=TIMEOUT, wait_for_transcript=False),
    ):
        assert await story(strategy, frames) == ["END", "0.6 s"]
    strategy = SilenceTimedTurnStopStrategy(user_speech_timeout=TIMEOUT)
    strategy.wait_for_transcript = False  # as pipecat's aggregator does in realtime mode
    assert await story(strategy, frames) == ["END", "0.6 s"]


async def test_a_late_packet_is_not_silence():
    # The VAD stopped; then the line's packets come late, in a burst with the caller's voice.
    frames = [VAD_START, *packets(0.5, 8000), words(), VAD_STOP, LONG, mark("late")]
    frames += [*packets(0.1, 20), *packets(0.1, 8000), VAD_START, mark("speaking again")]
    frames += [VAD_STOP, *packets(1.0, 20), LONG, mark("after")]
    ours = SilenceTimedTurnStopStrategy(user_speech_timeout=TIMEOUT)
    assert await story(ours, frames) == ["late", "speaking again", "END", "after"]
    theirs = SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=TIMEOUT)
    assert (await story(theirs, frames))[:2] == ["END", "late"], "their clock ended it"


async def test_a_voice_the_vad_has_not_confirmed_yet_holds_the_end_of_the_turn():
    # The caller goes on just as the timer runs out: the level hears the voice before the VAD
    # (which needs start_secs of speech) says so.
    frames = [VAD_START, *packets(0.5, 8000), words(), VAD_STOP, *packets(0.3, 20)]
    frames += [*packets(0.1, 8000), LONG, VAD_START, mark("speaking again")]
    frames += [VAD_STOP, *packets(1.0, 20), LONG, mark("after")]
    ours = SilenceTimedTurnStopStrategy(user_speech_timeout=TIMEOUT)
    assert await story(ours, frames) == ["speaking again", "END", "after"]
    theirs = SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=TIMEOUT)
    assert (await story(theirs, frames))[:2] == ["END", "speaking again"], "theirs ended it"


async def test_a_noise_the_vad_never_takes_for_speech_ends_the_turn_half_a_second_late():
    frames = [VAD_START, *packets(0.5, 8000), words(), VAD_STOP, *packets(0.4, 20)]
    frames += [*packets(0.1, 8000), LONG, mark("0.6 s"), LONG, mark("1.2 s")]
    ours = SilenceTimedTurnStopStrategy(user_speech_timeout=TIMEOUT)
    assert await story(ours, frames) == ["0.6 s", "END", "1.2 s"]  # at 0.4 + 0.5 s


async def test_a_line_that_sends_nothing_more_ends_the_turn_half_a_second_late():
    frames = [VAD_START, *packets(0.5, 8000), words(), VAD_STOP, LONG, mark("0.6 s")]
    frames += [LONG, mark("1.2 s")]
    ours = SilenceTimedTurnStopStrategy(user_speech_timeout=TIMEOUT)
    assert await story(ours, frames) == ["0.6 s", "END", "1.2 s"]
