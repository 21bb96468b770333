"""PlaybackTracker: marks out with the audio, echoes in, what was heard, held bot-stopped."""

from pipecat.frames.frames import (
    BotStoppedSpeakingFrame,
    EndWorkerFrame,
    InterruptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.utils.text.base_text_aggregator import TextType

from processors.frames import (
    EndCallFrame,
    PlaybackEchoFrame,
    PlaybackMarkFrame,
    SentenceAudioEndFrame,
)
from processors.playback_state import Playback
from processors.playback_tracker import PlaybackTracker

FIRST, SECOND = "Hello there.", "How can I help you today?"


def audio(ms: int) -> TTSAudioRawFrame:
    return TTSAudioRawFrame(bytes(16 * ms), 8000, 1)


def reply() -> list:
    """Two sentences: 200 ms of audio, then 400 ms, as the sentence TTS emits them."""
    return [
        TTSStartedFrame(),
        TTSTextFrame(FIRST, text_type=TextType.SENTENCE),
        TTSTextFrame(SECOND, text_type=TextType.SENTENCE),
        audio(100),
        audio(100),
        SentenceAudioEndFrame(text=FIRST),
        audio(200),
        audio(200),
        SentenceAudioEndFrame(text=SECOND),
        TTSStoppedFrame(),
    ]


async def test_each_audio_frame_is_followed_by_a_mark_of_the_reply_and_its_offset():
    down, _ = await run_test(PlaybackTracker(Playback()), frames_to_send=reply(), start_timeout=5)
    marks = [f.message for f in down if isinstance(f, PlaybackMarkFrame)]
    assert marks == ["1:100", "1:200", "1:400", "1:600"]
    assert not any(isinstance(f, SentenceAudioEndFrame) for f in down)  # consumed


async def test_a_barge_in_records_the_words_heard_by_the_last_echo_and_the_clock():
    playback = Playback()
    # System frames overtake queued data frames: let the reply through first.
    frames = [*reply(), SleepFrame(0.05), PlaybackEchoFrame(mark="1:200")]
    frames += [
        PlaybackEchoFrame(mark="1:400"),
        InterruptionFrame(),
    ]  # 1:400 echoed: first sentence and half of the second
    await run_test(PlaybackTracker(playback), frames_to_send=frames, start_timeout=5)
    (correction,) = playback.history
    assert correction.spoken == f"{FIRST} {SECOND}"
    assert correction.heard == "Hello there. How can I help"  # by letters: "help" half played


async def test_a_fully_heard_reply_needs_no_correction():
    playback = Playback()
    frames = [*reply(), SleepFrame(0.05), PlaybackEchoFrame(mark="1:600"), InterruptionFrame()]
    await run_test(PlaybackTracker(playback), frames_to_send=frames, start_timeout=5)
    assert playback.correction is None


async def test_bot_stopped_speaking_passes_at_once_when_nothing_is_left_to_play():
    _, up = await run_test(
        PlaybackTracker(Playback()),
        frames_to_send=[BotStoppedSpeakingFrame()],
        frames_to_send_direction=FrameDirection.UPSTREAM,
        start_timeout=5,
    )
    assert [type(f) for f in up] == [BotStoppedSpeakingFrame]


async def test_ending_the_call_waits_until_the_farewell_has_played():
    frames = [*reply(), EndCallFrame(reason="bye"), SleepFrame(0.05)]
    down, _ = await run_test(PlaybackTracker(Playback()), frames_to_send=frames, start_timeout=5)
    assert not any(isinstance(f, EndWorkerFrame) for f in down)
    frames += [PlaybackEchoFrame(mark="1:600"), SleepFrame(0.05)]
    down, _ = await run_test(PlaybackTracker(Playback()), frames_to_send=frames, start_timeout=5)
    assert any(isinstance(f, EndWorkerFrame) for f in down)
