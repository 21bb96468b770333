"""HeardContext: the next LLM request sees what the caller heard of an interrupted reply."""

from pipecat.frames.frames import LLMContextFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import run_test

from processors.heard_context import HeardContext
from processors.playback_state import INTERRUPTED_NOTE, NOTHING_HEARD_NOTE, Correction, Playback

SPOKEN = "Tonight we have lamb. We also have a risotto."


def context(*messages: tuple[str, str]) -> LLMContext:
    return LLMContext(messages=[{"role": r, "content": c} for r, c in messages])


async def run(playback: Playback, ctx: LLMContext) -> list[dict]:
    down, _ = await run_test(
        HeardContext(playback), frames_to_send=[LLMContextFrame(ctx)], start_timeout=5
    )
    (frame,) = [f for f in down if isinstance(f, LLMContextFrame)]
    return frame.context.get_messages()


async def test_the_interrupted_reply_is_cut_to_the_heard_words_with_a_note():
    playback = Playback()
    playback.correction = Correction(spoken=SPOKEN, heard="Tonight we have")
    messages = await run(playback, context(("assistant", SPOKEN), ("user", "Cancel that.")))
    assert messages[0]["content"] == f"Tonight we have… {INTERRUPTED_NOTE}"
    assert messages[1] == {"role": "user", "content": "Cancel that."}
    assert playback.correction is None  # applied once


async def test_a_reply_cut_before_any_word_says_so():
    playback = Playback()
    playback.correction = Correction(spoken=SPOKEN, heard="")
    messages = await run(playback, context(("assistant", SPOKEN), ("user", "Stop.")))
    assert messages[0]["content"] == NOTHING_HEARD_NOTE


async def test_a_reply_missing_from_the_context_is_inserted_before_the_new_turn():
    playback = Playback()
    playback.correction = Correction(spoken=SPOKEN, heard="Tonight")
    messages = await run(playback, context(("assistant", "Hi."), ("user", "Wait.")))
    assert [m["role"] for m in messages] == ["assistant", "assistant", "user"]
    assert messages[1]["content"].startswith("Tonight…")


async def test_without_a_barge_in_the_context_is_untouched():
    messages = await run(Playback(), context(("assistant", SPOKEN), ("user", "Yes.")))
    assert messages[0]["content"] == SPOKEN
