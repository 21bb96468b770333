"""Playout: the bot's audio accepted, sent, heard by Twilio's echoes, paused, resumed and cut."""

from telephony.playout import Playout, ms

CHUNK = bytes(640)  # 40 ms of 8 kHz 16-bit audio


def playout_of(chunks: int, *, interruptible: bool = True) -> Playout:
    playout = Playout()
    for _ in range(chunks):
        playout.accept(CHUNK, interruptible=interruptible)
    return playout


def send_all(playout: Playout, now: float = 0.0) -> list[str]:
    marks = []
    while taken := playout.take(now):
        marks.append(taken[1])
    return marks


def test_chunks_go_out_in_order_each_followed_by_a_mark_of_its_end():
    playout = playout_of(3)
    assert [ms(int(mark.split(":")[1])) for mark in send_all(playout)] == [40, 80, 120]
    assert playout.take(0.0) is None  # all sent


def test_an_echo_is_what_was_heard_and_between_echoes_the_phone_plays_at_real_time():
    playout = playout_of(3)
    first, second, _ = send_all(playout, now=10.0)
    assert playout.heard_at(10.0) == 0
    assert ms(playout.heard_at(10.02)) == 20  # extrapolated ...
    assert ms(playout.heard_at(10.5)) == 40  # ... never past the next mark
    assert playout.echo(second, now=10.1) and ms(playout.heard) == 80
    assert not playout.echo(first, now=10.1)  # an older mark tells nothing new
    assert playout.playing


def test_only_marks_this_call_sent_are_its_own():
    playout = playout_of(1)
    (mark,) = send_all(playout)
    assert playout.sent_by_us(mark) and not playout.sent_by_us("0:abc")
    playout.echo(mark, now=0.1)
    assert not playout.sent_by_us(mark)  # each mark echoes once
    assert not playout.playing


def test_a_pause_stops_where_the_phone_is_and_a_resume_sends_the_rest_again():
    playout = playout_of(5)
    marks = send_all(playout, now=0.0)
    playout.echo(marks[0], now=0.04)
    at = playout.pause(now=0.06)  # 20 ms into the second chunk
    assert ms(at) == 60 and playout.take(0.06) is None  # nothing goes out while paused
    for mark in marks[1:]:  # Twilio echoes the cleared marks: none counts
        assert not playout.echo(mark, now=0.07)
    assert ms(playout.heard) == 60
    playout.resume()
    pcm, mark = playout.take(0.5)
    assert len(pcm) == 320 and ms(int(mark.split(":")[1])) == 80  # the rest of that chunk
    assert len(b"".join(p for p, _ in iter(lambda: playout.take(0.5), None))) == 3 * 640


def test_a_cut_drops_what_was_not_heard_but_keeps_uninterruptible_audio():
    playout = playout_of(4)
    playout.accept(CHUNK, interruptible=False)  # e.g. a farewell queued behind the reply
    marks = send_all(playout)
    playout.echo(marks[1], now=1.0)
    at = playout.cut(now=1.0)
    assert ms(at) == 80
    assert ms(playout.accepted) == 120  # what was heard, then the farewell's 40 ms
    pcm, mark = playout.take(1.0)
    assert len(pcm) == 640 and ms(int(mark.split(":")[1])) == 120
    assert playout.echo(mark, now=1.04) and not playout.playing


def test_what_plays_now_can_be_paused_only_if_interruptible():
    reply = playout_of(2)
    farewell = playout_of(2, interruptible=False)
    send_all(reply), send_all(farewell)
    assert reply.interruptible_at(0.01) and not farewell.interruptible_at(0.01)


def test_audio_is_sent_at_real_time_with_a_lead():
    playout = playout_of(10)
    sent = 0
    while playout.send_delay(0.0, lead_secs=0.1) == 0 and playout.take(0.0):
        sent += 1
    assert sent == 3  # 120 ms queued at the phone: more would exceed the 100 ms lead
    assert playout.send_delay(0.0, lead_secs=0.1) > 0
    assert playout.send_delay(0.05, lead_secs=0.1) == 0  # 50 ms later, room for more
