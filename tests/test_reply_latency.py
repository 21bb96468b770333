from records.latency import reply_latency
from records.record import Stages


def test_each_stage_is_the_time_it_added_and_they_add_up_to_the_latency():
    latency, stages = reply_latency(
        10.0, transcript=10.15, turn_end=10.5, first_token=10.7, first_audio=10.78, heard=10.9
    )
    assert latency == 900
    assert stages == Stages(stt_ms=150, turn_end_ms=350, llm_ms=200, tts_ms=80, playout_ms=120)


def test_work_done_ahead_of_the_turn_end_counts_nothing():
    # A speculative reply: its first token and audio came before the turn ended.
    latency, stages = reply_latency(
        10.0, transcript=10.1, turn_end=10.5, first_token=10.2, first_audio=10.3, heard=10.55
    )
    assert latency == 550
    assert stages == Stages(stt_ms=100, turn_end_ms=400, llm_ms=0, tts_ms=0, playout_ms=50)


def test_missing_milestones_add_nothing():
    latency, stages = reply_latency(
        1.0, transcript=None, turn_end=1.0, first_token=None, first_audio=None, heard=1.3
    )
    assert latency == 300
    assert stages == Stages(stt_ms=0, turn_end_ms=0, llm_ms=0, tts_ms=0, playout_ms=300)


def test_a_milestone_past_the_first_audio_heard_counts_as_reached_then():
    # The turn ended in the first chunk's playout: it released the held reply.
    latency, stages = reply_latency(
        14.9, transcript=15.06, turn_end=15.386, first_token=15.0, first_audio=15.1, heard=15.383
    )
    assert latency == 483 and sum(vars(stages).values()) == 483
    assert stages == Stages(stt_ms=160, turn_end_ms=323, llm_ms=0, tts_ms=0, playout_ms=0)
