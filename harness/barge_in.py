"""Barge-in scenarios: the caller cuts a long reply at chosen offsets; what did they hear?

    python -m harness.barge_in        (or: make barge-in)

Prints, per offset: when the caller starts speaking and how much of the reply they heard
(seconds into it), barge-in latency (caller speech onset → the first Twilio `clear`: the
playout pause), bot audio sent after that `clear` (must be 0), and the words the caller heard
(from the simulated phone's playout record) against the words in the next LLM request's
assistant message.
"""

import asyncio
import re
from dataclasses import dataclass

from pipelines.declaration import load_declarations
from processors.heard_context import INTERRUPTED_NOTE, NOTHING_HEARD_NOTE
from recordings import RECORDINGS
from server.local import serve_locally
from standins.caller import SimulatedCall
from standins.openai_replies import LONG_REPLY, last_user_text
from standins.script import dial, long_reply_to_bookings
from standins.speech import synthesize
from standins.stack import StandIns, running_standins

DATA = RECORDINGS
# The caller starts talking this long before the target offset: about what the VAD needs to
# fire on cancel.wav, when the bot's playout pauses (the barge-in is confirmed later).
_LEAD_S = 0.22


def offsets() -> dict[str, float]:
    """Where to cut LONG_REPLY, in seconds of its audio."""
    words = synthesize(LONG_REPLY).words
    first_sentence_end = next(w.end_s for w in words if w.word.endswith("."))
    return {
        "first word": 0.25,
        "mid-sentence": words[6].start_s + 0.05,
        "between sentences": first_sentence_end + 0.12,
        "last word": words[-1].start_s + 0.1,
    }


@dataclass
class BargeIn:
    """What one barge-in looked like from the caller's phone and in the LLM's context."""

    offset: str
    greeting_ms: float  # stream start → first greeting audio heard
    target_s: float
    heard_s: float
    latency_ms: float
    audio_after_clear: int  # bytes of the interrupted reply sent after the clear
    heard_words: list[str]
    context_words: list[str]

    @property
    def words_off(self) -> int:
        """How many words the context differs from what was heard."""
        return words_off(self.heard_words, self.context_words)


def words_off(heard: list[str], context: list[str]) -> int:
    """How many words `context` differs from `heard`, after their common beginning."""
    common = 0
    for a, b in zip(heard, context, strict=False):
        if a != b:
            break
        common += 1
    return max(len(heard), len(context)) - common


def words_heard(text: str, heard_s: float) -> list[str]:
    """The words of the stand-in voice saying `text` that `heard_s` seconds of it let be heard."""
    return [
        w.word for w in synthesize(text).words if w.start_s + 0.5 * (w.end_s - w.start_s) < heard_s
    ]


async def barge_in(bot_url: str, standins: StandIns, offset: str, at_s: float) -> BargeIn:
    """One call: greeting, a booking, the long reply cut at `at_s` s by the caller."""
    call = await dial(bot_url)
    greeting = await call.listen()
    await call.say(DATA / "book_table.wav")
    reply_start = await call.wait_for_bot_audio(timeout=10)
    await asyncio.sleep(max(0.0, reply_start + at_s - _LEAD_S - call.now()))
    onset = await call.say(DATA / "cancel.wav")  # when its first packet was sent
    await call.listen(timeout=15)  # the answer to the interruption
    clears = [e.t for e in call.events("clear") if e.t > onset]
    if not clears:
        raise AssertionError(f"no clear after the barge-in at {onset:.2f}s: {call.timeline[-40:]}")
    clear = clears[0]
    heard_s = sum(len(s.ulaw) for s in call.heard if reply_start <= s.start < clear) / 8000
    request = answer_to_barge_in(standins)
    await call.hang_up()
    return BargeIn(
        offset=offset,
        greeting_ms=greeting.start * 1000,
        target_s=at_s,
        heard_s=heard_s,
        latency_ms=(clear - onset) * 1000,
        audio_after_clear=old_audio_after(call, clear),
        heard_words=words_heard(LONG_REPLY, heard_s),
        context_words=assistant_words(request),
    )


def answer_to_barge_in(standins: StandIns) -> dict:
    """The chat request whose reply answered the caller's cut-in (they said "cancel").

    The last one: a speculative request made at a pause in the cut-in, before the cut reply
    reached the context, is withdrawn and asked again (`SpeculativeTurnStop`).
    """
    asked = [r.body for r in standins.openai.requests]
    return [body for body in asked if "cancel" in last_user_text(body["messages"]).lower()][-1]


def assistant_words(body: dict) -> list[str]:
    """Words of the interrupted reply as the LLM sees it, without our note."""
    said = [m["content"] for m in body["messages"] if m["role"] == "assistant"][-1]
    for note in (INTERRUPTED_NOTE, NOTHING_HEARD_NOTE, "…"):
        said = said.replace(note, " ")
    return re.sub(r"\s+", " ", said).split()


def old_audio_after(call: SimulatedCall, clear: float) -> int:
    """Bytes of media sent after the clear that belong to the interrupted reply.

    Each reply's marks carry its id; media is attributed to the id of the next mark.
    """
    old_id = next(
        (e.detail.split(":")[0] for e in reversed(call.events("mark")) if e.t < clear), None
    )
    total = pending = 0
    for event in (e for e in call.timeline if e.t > clear):
        if event.kind == "media":
            pending += int(event.detail)
        elif event.kind == "mark":
            total += pending if event.detail.split(":")[0] == old_id else 0
            pending = 0
    return total


async def run_all() -> list[BargeIn]:
    """Every offset, each on a freshly started server and stand-ins."""
    results = []
    for offset, at_s in offsets().items():
        async with running_standins() as standins:
            standins.openai.responder = long_reply_to_bookings
            async with serve_locally(standins.env(), load_declarations()) as bot:
                results.append(await barge_in(bot.url, standins, offset, at_s))
    return results


def main() -> None:
    """Run the scenarios and print a table."""
    import os
    import sys

    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level=os.environ.get("LOG_LEVEL", "WARNING"))
    results = asyncio.run(run_all())
    header = f"{'offset':<18} {'speaks':>7} {'heard':>6} {'latency':>8} {'after clear':>11}"
    print(f"{header}  words heard / in context")
    for r in results:
        print(
            f"{r.offset:<18} {max(0.0, r.target_s - _LEAD_S):>6.2f}s {r.heard_s:>5.2f}s"
            f" {r.latency_ms:>6.0f}ms"
            f" {r.audio_after_clear:>9} B  {len(r.heard_words)} / {len(r.context_words)}"
            f" ({r.words_off} off)"
        )
    greetings = ", ".join(f"{r.greeting_ms:.0f}" for r in results)
    print(f"\ngreeting: first audio heard {greetings} ms after `start` (first call of a server)")


if __name__ == "__main__":
    main()
