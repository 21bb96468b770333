"""The fault matrix: each fault injected by the stand-ins during a simulated call.

Every area of faults has a module here exposing `FAULTS`; `python -m harness.faults` runs
them all and prints one line per fault. The tests in `tests/test_fault_*.py` run the same
scenarios and assert on their outcomes.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pipelines.declaration import Declaration, load_declarations
from server.local import LocalBot, serve_locally
from standins import script
from standins.audio import pcm_to_ulaw
from standins.caller import SimulatedCall
from standins.playout import Stretch
from standins.speech import synthesize
from standins.stack import StandIns, running_standins


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


async def outcome_of(scenario: Callable[[], Awaitable[Any]]) -> Outcome:
    """The `outcome` of the run `scenario` returns (a fault's `run`, through `partial`)."""
    return (await scenario()).outcome


async def dial(bot: LocalBot, **kwargs) -> SimulatedCall:
    """A simulated Twilio call to `bot`."""
    return await script.dial(bot.url, **kwargs)


def spoken_texts(standins: StandIns) -> list[str]:
    """Everything the Deepgram TTS stand-in was asked to say, over all its connections."""
    return [text for connection in standins.tts.connections for text in connection.speaks]


def heard_sentences(call: SimulatedCall, texts: list[str], *, since: float = 0.0) -> list[str]:
    """What the caller heard after `since`, as the sentences of `texts` it matches."""
    return read_back([s for s in call.heard if s.start >= since], texts)


def read_back(stretches: list[Stretch], texts: list[str]) -> list[str]:
    """What the caller heard in `stretches` of playout, as the sentences of `texts` it matches.

    The stand-in voice is deterministic, so heard audio is matched byte for byte against each
    sentence's synthesis; a sentence cut short lists the words heard, then "…". Audio that
    picks up a cut sentence where it stopped (a reply paused and resumed) continues that
    sentence rather than counting as other audio.
    """
    # Whole texts too: a TTSSpeakFrame of several sentences is synthesized in one piece.
    sentences = {s for text in texts for s in (text.strip(), *_sentences(text))}
    voices = {s: _voice(s) for s in sorted(sentences, key=lambda s: (len(s), s))}
    # Joined: a gap in playout (audio that came late) splits a stretch, not what was heard.
    audio = b"".join(bytes(stretch.ulaw) for stretch in stretches)
    heard: list[str] = []
    _match(audio, voices, heard)
    return heard


@dataclass
class _Cut:
    """The sentence last heard (`heard[-1]`), cut short: where, in each voice it may be."""

    at: dict[str, int]  # sentence → bytes of its voice heard


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


def _match(
    audio: bytes, voices: dict[str, bytes], heard: list[str], cut: _Cut | None = None
) -> _Cut | None:
    """Append to `heard` what `audio` holds; returns the sentence left cut at its end, if any."""
    position, unknown = 0, 0
    while position < len(audio):
        # (sentence, where in its voice the audio is, bytes matched), best first.
        found = _candidates(audio, position, voices, cut if unknown < 800 else None)
        if not found or found[0][2] < 160:  # not 20 ms of any sentence: skip to where one starts
            skip = _next_match(audio, position + 1, voices) - position
            unknown += skip
            position += skip
            continue
        if unknown >= 800:  # under 0.1 s is playout padding
            heard.append(f"[{unknown / 8000:.1f} s of other audio]")
        unknown = 0
        best, start, length = found[0]
        full = len(voices[best])
        if start + length < full - 320:  # cut short: the next audio may match for a while
            length = _next_start(audio, position, length, voices)
        if cut and best in cut.at and start:  # one entry for all that was heard of it
            heard.pop()
        heard.append(_heard_part(best, start + length, full))
        # Voices that matched as well are kept as readings: the next stretch may go on in one.
        same = [(s, at) for s, at, n in found if n == found[0][2] and (at > 0) == (start > 0)]
        cut = _Cut({s: at + length for s, at in same}) if start + length < full - 320 else None
        position += length
    if unknown >= 800:
        heard.append(f"[{unknown / 8000:.1f} s of other audio]")
    return cut if unknown < 800 else None


def _candidates(
    audio: bytes, position: int, voices: dict[str, bytes], cut: _Cut | None
) -> list[tuple[str, int, int]]:
    """The sentences the audio at `position` may be, as (sentence, offset, length), best first.

    A whole sentence beats a longer cut one; then the longer match; then going on with a cut
    sentence beats starting one afresh; then the shorter sentence (`voices`: shortest first).
    """
    ranked = []
    for sentence, voice in voices.items():
        n = _common_prefix(audio, position, voice)
        ranked.append(((n >= len(voice) - 320, n, False), (sentence, 0, n)))
    for sentence, cut_at in (cut.at if cut else {}).items():
        voice = voices[sentence]
        at, n = _continuation(audio, position, voice, cut_at)
        if at > 0 and n >= 160:
            ranked.append(((at + n >= len(voice) - 320, n, True), (sentence, at, n)))
    ranked.sort(key=lambda r: r[0], reverse=True)  # stable: shorter sentences stay first
    return [candidate for _, candidate in ranked]


def _continuation(audio: bytes, position: int, voice: bytes, cut_at: int) -> tuple[int, int]:
    """Where in `voice` the audio at `position` picks it up again, and for how long.

    A late packet resumes exactly at `cut_at`; a paused reply resumes from its last played
    mark, up to a second earlier. Returns (offset in `voice`, bytes matched), or (0, 0).
    """
    n = _common_prefix(audio, position, voice[cut_at:])
    if n >= 160 or cut_at >= len(voice):
        return cut_at, n
    # Silence matches anywhere: look for the first 20 ms of sound after it.
    quiet = len(audio[position:]) - len(audio[position:].lstrip(audio[position : position + 1]))
    needle = audio[position : position + quiet + 160]
    best = (0, 0)
    at = voice.find(needle, max(0, cut_at - 8000), cut_at + 320 + len(needle))
    while 0 <= at <= cut_at + 320:
        n = _common_prefix(audio, position, voice[at:])
        if n > best[1] or (n == best[1] and abs(at - cut_at) < abs(best[0] - cut_at)):
            best = (at, n)
        at = voice.find(needle, at + 1, cut_at + 320 + len(needle))
    return best


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
