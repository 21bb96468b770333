"""The fault matrix: each fault injected by the stand-ins during a simulated call.

Every area of faults has a module here exposing `FAULTS`; `python -m harness.faults` runs
them all and prints one line per fault. The tests in `tests/test_fault_*.py` run the same
scenarios and assert on their outcomes.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache

from pipelines.declaration import Declaration, load_declarations
from server.local import LocalBot, serve_locally
from standins.audio import pcm_to_ulaw
from standins.caller import SimulatedCall
from standins.speech import synthesize
from standins.stack import ACCOUNT_SID, AUTH_TOKEN, StandIns, running_standins


@dataclass
class Outcome:
    """How a call went through one fault."""

    survived: bool
    heard: list[str]  # what the caller heard, one entry per sentence (… where it was cut)
    figures: str = ""  # what was measured, e.g. "apology 1.31 s after the 500"
    problems: list[str] = field(default_factory=list)  # why it did not survive


@dataclass(frozen=True)
class Fault:
    """One fault: what is injected, and the scenario that drives a call through it."""

    name: str
    injected: str
    run: Callable[[], Awaitable[Outcome]]


@asynccontextmanager
async def bot_with(
    *,
    env: dict[str, str] | None = None,
    declarations: dict[str, Declaration] | None = None,
    **knobs,
) -> AsyncIterator[tuple[LocalBot, StandIns]]:
    """The real bot server and every stand-in.

    `knobs`: configured stand-ins (as `running_standins` takes them); `env`: extra or changed
    variables for the bot.
    """
    async with running_standins(**knobs) as standins:
        bot_env = standins.env() | (env or {})
        async with serve_locally(bot_env, declarations or load_declarations()) as bot:
            yield bot, standins


async def dial(bot: LocalBot, **kwargs) -> SimulatedCall:
    """A simulated Twilio call to `bot`, signed with the stand-in account's token."""
    return await SimulatedCall.dial(
        bot.url, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, **kwargs
    )


def spoken_texts(standins: StandIns) -> list[str]:
    """Everything the Deepgram TTS stand-in was asked to say, over all its connections."""
    return [text for connection in standins.tts.connections for text in connection.speaks]


def heard_sentences(call: SimulatedCall, texts: list[str], *, since: float = 0.0) -> list[str]:
    """What the caller heard after `since`, as the sentences of `texts` it matches.

    The stand-in voice is deterministic, so heard audio is matched byte for byte against each
    sentence's synthesis; a sentence cut short lists the words heard, then "…".
    """
    # Whole texts too: a TTSSpeakFrame of several sentences is synthesized in one piece.
    sentences = {s for text in texts for s in (text.strip(), *_sentences(text))}
    voices = {s: _voice(s) for s in sentences}
    heard: list[str] = []
    for stretch in call.heard:
        if stretch.start >= since:
            heard.extend(_match(bytes(stretch.ulaw), voices))
    return heard


@cache
def _voice(sentence: str) -> bytes:
    return pcm_to_ulaw(synthesize(sentence).pcm)


def _sentences(text: str) -> list[str]:
    out, current = [], []
    for word in text.split():
        current.append(word)
        if word.endswith((".", "!", "?")):
            out.append(" ".join(current))
            current = []
    return out + ([" ".join(current)] if current else [])


def _match(audio: bytes, voices: dict[str, bytes]) -> list[str]:
    heard, position, unknown = [], 0, 0
    while position < len(audio):
        best, length, whole = None, 0, False
        for sentence, voice in voices.items():
            n = _common_prefix(audio, position, voice)
            complete = n >= len(voice) - 320
            if (complete, n) > (whole, length):  # a whole sentence beats a longer cut one
                best, length, whole = sentence, n, complete
        if best is None or length < 160:  # not 20 ms of any sentence: skip to where one starts
            skip = _next_match(audio, position + 1, voices) - position
            unknown += skip
            position += skip
            continue
        if unknown >= 800:  # under 0.1 s is playout padding
            heard.append(f"[{unknown / 8000:.1f} s of other audio]")
        unknown = 0
        if length < len(voices[best]) - 320:  # cut short: the next audio may match for a while
            length = _next_start(audio, position, length, voices)
        heard.append(_heard_part(best, length, len(voices[best])))
        position += length
    if unknown >= 800:
        heard.append(f"[{unknown / 8000:.1f} s of other audio]")
    return heard


def _next_match(audio: bytes, start: int, voices: dict[str, bytes]) -> int:
    """Where the first 20 ms of some sentence next occur from `start` (the end if nowhere)."""
    hits = [audio.find(voice[:160], start) for voice in voices.values()]
    return min((hit for hit in hits if hit >= 0), default=len(audio))


def _next_start(audio: bytes, position: int, length: int, voices: dict[str, bytes]) -> int:
    """Where a sentence starts within the last 100 ms of a cut match (the match if none)."""
    for back in range(min(length - 1, 800) + 1):
        start = position + length - back
        if any(_common_prefix(audio, start, voice) >= 320 for voice in voices.values()):
            return length - back
    return length


def _common_prefix(audio: bytes, start: int, voice: bytes) -> int:
    n = min(len(voice), len(audio) - start)
    low, high = 0, n  # binary search on prefix equality
    while low < high:
        mid = (low + high + 1) // 2
        if audio[start : start + mid] == voice[:mid]:
            low = mid
        else:
            high = mid - 1
    return low


def _heard_part(sentence: str, length: int, full: int) -> str:
    if length >= full - 320:  # to within one 40 ms chunk
        return sentence
    seconds = length / 8000
    words = [w.word for w in synthesize(sentence).words if (w.start_s + w.end_s) / 2 < seconds]
    return " ".join(words) + "…"
