"""HeardContext: the context says what the caller heard of a reply they cut short."""

from pipecat.frames.frames import LLMMessagesTransformFrame
from pipecat.tests.utils import run_test

from processors.heard_context import INTERRUPTED_NOTE, NOTHING_HEARD_NOTE, HeardContext, heard_reply
from telephony.frames import ReplyCutFrame

SPOKEN = "Tonight we have lamb. We also have a risotto."


def messages(*pairs: tuple[str, str]) -> list[dict]:
    return [{"role": role, "content": content} for role, content in pairs]


async def test_a_cut_reply_is_followed_by_an_edit_of_the_context_that_survives_a_barge_in():
    cut = ReplyCutFrame(heard="Tonight we have", spoken=SPOKEN, heard_ms=900)
    down, _ = await run_test(
        HeardContext(),
        frames_to_send=[cut],
        expected_down_frames=[ReplyCutFrame, LLMMessagesTransformFrame],
    )
    edit = down[1]
    assert not edit.interruptible and not edit.run_llm
    edited = edit.transform(messages(("user", "Dinner?"), ("assistant", SPOKEN)))
    assert edited[-1]["content"] == f"Tonight we have… {INTERRUPTED_NOTE}"


def test_the_committed_reply_becomes_the_heard_words_with_a_note():
    cut = ReplyCutFrame(heard="Tonight we have", spoken=SPOKEN, heard_ms=900)
    # The aggregator committed the words it had been passed: those heard so far.
    edited = heard_reply(messages(("user", "Dinner?"), ("assistant", "Tonight we have lamb.")), cut)
    assert edited == messages(
        ("user", "Dinner?"), ("assistant", f"Tonight we have… {INTERRUPTED_NOTE}")
    )


def test_a_reply_cut_before_any_word_says_so():
    cut = ReplyCutFrame(heard="", spoken=SPOKEN, heard_ms=0)
    edited = heard_reply(messages(("user", "Dinner?")), cut)
    assert edited == messages(("user", "Dinner?"), ("assistant", NOTHING_HEARD_NOTE))


def test_a_reply_before_the_callers_last_turn_is_left_alone_even_if_it_was_the_same():
    cut = ReplyCutFrame(heard="Tonight", spoken=SPOKEN, heard_ms=300)
    edited = heard_reply(messages(("assistant", SPOKEN), ("user", "Say again?")), cut)
    assert edited == messages(
        ("assistant", SPOKEN), ("user", "Say again?"), ("assistant", f"Tonight… {INTERRUPTED_NOTE}")
    )
