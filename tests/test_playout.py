from standins.playout import PlayoutBuffer

FRAME = b"\x00" * 160


def test_a_mark_with_nothing_queued_echoes_at_once():
    assert PlayoutBuffer().add_mark("m") == ["m"]


def test_a_mark_echoes_when_the_audio_before_it_has_played():
    buffer = PlayoutBuffer()
    buffer.add_audio(FRAME * 2)
    assert buffer.add_mark("after-two") == []
    assert buffer.tick(0.00)[1] == []
    assert buffer.tick(0.02)[1] == ["after-two"]
    assert len(buffer.stretches) == 1 and buffer.stretches[0].end == 0.04


def test_clear_drops_queued_audio_and_echoes_pending_marks():
    buffer = PlayoutBuffer()
    buffer.add_audio(FRAME * 10)
    buffer.add_mark("a")
    buffer.add_audio(FRAME)
    buffer.add_mark("b")
    buffer.tick(0.0)
    assert buffer.clear() == ["a", "b"]
    assert buffer.pending_ms == 0
    assert buffer.tick(0.02) == (b"", [])


def test_playout_is_real_time_whatever_the_message_sizes():
    buffer = PlayoutBuffer()
    buffer.add_audio(b"\x01" * 100)
    buffer.add_audio(b"\x02" * 300)
    played = [buffer.tick(i * 0.02)[0] for i in range(4)]
    assert [len(p) for p in played] == [160, 160, 80, 0]
    assert b"".join(played) == b"\x01" * 100 + b"\x02" * 300


def test_a_gap_in_playout_starts_a_new_stretch():
    buffer = PlayoutBuffer()
    buffer.add_audio(FRAME)
    buffer.tick(0.0)
    buffer.tick(0.02)
    buffer.add_audio(FRAME)
    buffer.tick(0.5)
    assert [s.start for s in buffer.stretches] == [0.0, 0.5]


def test_ticks_catching_up_after_a_stall_do_not_play_ahead_of_the_clock():
    buffer = PlayoutBuffer()
    buffer.add_audio(FRAME * 5)
    buffer.add_mark("end")
    buffer.tick(0.0)
    # The loop stalled 100 ms; its missed ticks then run at once.
    played = [buffer.tick(0.1) for _ in range(4)]
    assert [len(audio) for audio, _ in played] == [160, 160, 0, 0]
    assert [s.start for s in buffer.stretches] == [0.0, 0.1]
    assert buffer.tick(0.14) == (FRAME, [])
    assert buffer.tick(0.16) == (FRAME, ["end"])  # echoed as its audio starts, not before
