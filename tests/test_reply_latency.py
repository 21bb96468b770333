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
