"""PlaybackTracker: marks out, echoes in, what was heard, held bot-stopped, pause and resume."""

from pipecat.frames.frames import (
    BotStoppedSpeakingFrame,
    EndWorkerFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.utils.text.base_text_aggregator import TextType

from processors.frames import (
    EndCallFrame,
    PlaybackEchoFrame,
    PlaybackMarkFrame,
    PlayoutPauseFrame,
)
from processors.pause_filter import PlayoutPauseFilter
from processors.playback_state import Playback
from processors.playback_tracker import PlaybackTracker
from telephony.frames import SentenceEndFrame

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
        SentenceEndFrame(text=FIRST),
        audio(200),
        audio(200),
        SentenceEndFrame(text=SECOND),
        TTSStoppedFrame(),
    ]


async def test_each_audio_frame_is_followed_by_a_mark_of_the_reply_and_its_offset():
    down, _ = await run_test(PlaybackTracker(Playback()), frames_to_send=reply(), start_timeout=5)
    marks = [f.message for f in down if isinstance(f, PlaybackMarkFrame)]
    assert marks == ["1:100", "1:200", "1:400", "1:600"]
    assert not any(isinstance(f, SentenceEndFrame) for f in down)  # consumed


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


def first_half_then_speech() -> list:
    """The first sentence's audio sent, half of it heard, then the caller starts speaking."""
    frames = reply()
    return [*frames[:5], SleepFrame(0.05), PlaybackEchoFrame(mark="1:100")] + [
        VADUserStartedSpeakingFrame(),
        SleepFrame(0.05),
        *frames[5:],  # the rest of the reply arrives while paused
        SleepFrame(0.05),
        PlaybackEchoFrame(mark="1:200"),  # echoed by the pause's `clear`: not heard
    ]


def after(frames, kind: type) -> list:
    """The frames after the first one of `kind`."""
    index = next(i for i, f in enumerate(frames) if isinstance(f, kind))
    return list(frames[index + 1 :])


async def test_caller_speech_pauses_the_reply_and_holds_the_rest_of_it():
    playback = Playback()
    tracker = PlaybackTracker(playback)
    down, _ = await run_test(tracker, frames_to_send=first_half_then_speech(), start_timeout=5)
    held = after(down, PlayoutPauseFrame)
    assert not [f for f in held if isinstance(f, (OutputAudioRawFrame, PlaybackMarkFrame))]
    assert not [f for f in held if isinstance(f, TTSStoppedFrame)]
    assert 100 <= playback.reply.paused_ms < 150  # the last echo, plus playout since
    assert playback.reply.playing


async def test_when_the_caller_stops_the_reply_resumes_from_where_it_paused():
    playback = Playback()
    # After the output transport: what the transport lets out is not sent again.
    tracker = Pipeline(
        [PlaybackTracker(playback, resume_after_secs=0), PlayoutPauseFilter(playback)]
    )
    frames = [*first_half_then_speech(), VADUserStoppedSpeakingFrame(), SleepFrame(0.1)]
    down, _ = await run_test(tracker, frames_to_send=frames, start_timeout=5)
    resumed = after(down, VADUserStoppedSpeakingFrame)
    marks = [f.message for f in resumed if isinstance(f, PlaybackMarkFrame)]
    assert marks == ["1:200", "1:400", "1:600"]  # the same positions as before the pause
    audio_ms = [len(f.audio) / 16 for f in resumed if isinstance(f, OutputAudioRawFrame)]
    assert 50 < audio_ms[0] <= 100 and audio_ms[1:] == [200, 200]  # from the pause on
    assert isinstance(resumed[-1], TTSStoppedFrame)  # held, and after the audio
    assert not [f for f in resumed if isinstance(f, (TTSStartedFrame, TTSTextFrame))]
    assert playback.reply.paused_ms is None and list(playback.reply.pending) == [200, 400, 600]


async def test_a_barge_in_while_paused_counts_what_was_heard_until_the_pause():
    playback = Playback()
    frames = [*first_half_then_speech(), InterruptionFrame(), SleepFrame(0.05)]
    down, _ = await run_test(PlaybackTracker(playback), frames_to_send=frames, start_timeout=5)
    (correction,) = playback.history
    assert correction.heard == "Hello"  # half of the first sentence, not the `clear`'s echo
    sent = after(down, PlayoutPauseFrame)
    assert not [f for f in sent if isinstance(f, (OutputAudioRawFrame, PlaybackMarkFrame))]


async def test_no_pause_while_the_bot_is_silent_or_saying_goodbye():
    heard = [*reply(), SleepFrame(0.05), PlaybackEchoFrame(mark="1:600")]
    farewell = [*reply(), EndCallFrame(reason="bye"), SleepFrame(0.05)]
    for before in ([], heard, farewell):
        frames = [*before, VADUserStartedSpeakingFrame(), SleepFrame(0.05)]
        down, _ = await run_test(
            PlaybackTracker(Playback()), frames_to_send=frames, start_timeout=5
        )
        assert not [f for f in down if isinstance(f, PlayoutPauseFrame)]


async def test_a_farewell_while_paused_waits_its_turn_and_ending_the_call_resumes_the_reply():
    farewell = [TTSStartedFrame(), TTSTextFrame("Goodbye!", text_type=TextType.SENTENCE)]
    farewell += [audio(100), TTSStoppedFrame(), EndCallFrame(reason="bye"), SleepFrame(0.05)]
    frames = [*first_half_then_speech(), *farewell, PlaybackEchoFrame(mark="1:700")]
    playback = Playback()
    down, _ = await run_test(PlaybackTracker(playback), frames_to_send=frames, start_timeout=5)
    marks = [f.message for f in after(down, PlayoutPauseFrame) if isinstance(f, PlaybackMarkFrame)]
    assert marks == ["1:200", "1:400", "1:600", "1:700"]  # the reply, then the farewell
    assert isinstance(down[-1], EndWorkerFrame)
