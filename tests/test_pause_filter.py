"""PlayoutPauseFilter: a pause goes no further than the output transport."""

from pipecat.frames.frames import InterruptionFrame, TTSTextFrame
from pipecat.tests.utils import run_test
from pipecat.utils.text.base_text_aggregator import TextType

from processors.frames import PlayoutPauseFrame
from processors.pause_filter import PlayoutPauseFilter
from processors.playback_state import Playback


async def test_a_pause_stops_here_and_everything_else_passes_and_is_out_of_the_transport():
    playback = Playback()
    text = TTSTextFrame("Hello there.", text_type=TextType.SENTENCE)
    playback.in_transport.add(text.id)
    frames = [PlayoutPauseFrame(), text, InterruptionFrame()]
    down, _ = await run_test(PlayoutPauseFilter(playback), frames_to_send=frames, start_timeout=5)
    assert [type(f) for f in down] == [InterruptionFrame, TTSTextFrame]  # system frames first
    assert playback.in_transport == set()
