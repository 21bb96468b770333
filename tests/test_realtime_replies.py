"""The Realtime service's bookkeeping: replies to truncate, responses to ask, audio to hold."""

from services.realtime_caller_audio import HELD_SECS, PHONE_RATE, CallerAudio
from services.realtime_replies import Replies, Truncation
from services.realtime_responses import Ask, Responses


def two_item_reply(replies: Replies, response_id: str = "resp_1"):
    """A reply of 1000 ms of item_a then 500 ms of item_b."""
    reply = replies.begin(response_id)
    reply.add_audio("item_a", 0, 8000)
    reply.add_audio("item_b", 0, 4000)
    reply.text = "Hello there. How can I help?"
    return reply


def test_a_cut_in_the_second_item_truncates_it_where_heard_and_spares_the_first():
    reply = two_item_reply(Replies())
    assert reply.truncations(1200.0) == [Truncation("item_b", 0, 200)]


def test_a_cut_in_the_first_item_truncates_it_and_empties_the_second():
    reply = two_item_reply(Replies())
    assert reply.truncations(420.0) == [Truncation("item_a", 0, 420), Truncation("item_b", 0, 0)]


def test_a_reply_heard_in_full_is_not_truncated():
    assert two_item_reply(Replies()).truncations(1500.0) == []


def test_the_cut_reply_is_the_one_the_transport_names_by_its_words_and_all_are_forgotten():
    replies = Replies()
    first = two_item_reply(replies, "resp_1")
    second = replies.begin("resp_2")
    second.text = "Sure, one moment."
    assert replies.cut("Hello there. How") is first  # its words, as far as they were given
    assert replies.cut("Hello there.") is None


def test_a_cut_naming_no_known_words_is_the_latest_reply():
    replies = Replies()
    two_item_reply(replies, "resp_1")
    latest = replies.begin("resp_2")
    assert replies.cut("") is latest


def test_replies_heard_in_full_are_forgotten_when_the_bot_stops_speaking():
    replies = Replies()
    done = two_item_reply(replies, "resp_1")
    done.done = True
    running = replies.begin("resp_2")
    replies.heard()
    assert (replies.of("resp_1"), replies.of("resp_2")) == (None, running)


def test_one_response_at_a_time_and_a_refused_one_goes_first_again():
    responses = Responses()
    responses.want(Ask("Hello."))
    responses.want(Ask())
    greeting = responses.next_ask()
    assert greeting == Ask("Hello.") and responses.next_ask() is None
    greeting.event_id = "evt_1"
    assert responses.refused("evt_1", retry=True)
    assert responses.next_ask() == Ask("Hello.")


def test_a_cut_drops_the_running_response_and_the_one_asked_for():
    responses = Responses()
    responses.created("resp_1")
    responses.want(Ask("Are you still there?"))
    responses.cut()
    assert responses.dropped("resp_1")
    responses.done("resp_1")
    assert responses.next_ask() == Ask("Are you still there?")
    responses.cut()
    responses.created("resp_2")
    assert responses.dropped("resp_2")


def test_something_is_being_said_until_its_response_is_done():
    responses = Responses()
    responses.want(Ask("Goodbye."))
    assert responses.saying_something()
    responses.next_ask()
    responses.created("resp_1")
    assert responses.saying_something()
    responses.done("resp_1")
    assert not responses.saying_something()


def test_held_audio_and_a_commit_keep_their_order():
    caller = CallerAudio()
    caller.hold(b"\x01" * 160)
    caller.hold(b"\x02" * 160)
    caller.hold_event("commit")
    caller.hold(b"\x03" * 160)
    assert caller.take_held() == [b"\x01" * 160 + b"\x02" * 160, "commit", b"\x03" * 160]
    assert caller.take_held() == []


def test_only_the_latest_held_audio_is_kept():
    caller = CallerAudio()
    limit = int(HELD_SECS * PHONE_RATE)
    caller.hold(b"\x01" * limit)
    caller.hold_event("commit")
    caller.hold(b"\x02" * 800)
    assert caller.take_held() == [b"\x01" * (limit - 800), "commit", b"\x02" * 800]


def test_the_replay_starts_where_the_vad_says_the_speech_began():
    caller = CallerAudio()
    caller.appended(b"\x01" * 8000)  # 1 s before the speech
    caller.appended(b"\x02" * 4000)  # 0.5 s of speech, VAD start_secs 0.2 into it
    caller.speech_started(vad_start_secs=0.2)
    replay = caller.onset_replay()  # from (0.2 + 0.3 margin) s back
    assert replay == b"\x02" * 4000
    caller.turn_committed()
    assert caller.onset_replay() == b"\x02" * 4000  # no onset known: the last 0.5 s
