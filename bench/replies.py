"""Reply latency at the caller's ear: how turns end, and what speculative replies cost.

Each bot answers the same caller turns, one call at a time, on stand-ins whose LLM takes
`ttft` to its first token and whose TTS takes `TTS_TTFB_S` to its first audio. A turn's
latency runs from the end of the caller's voice to the first bot audio the caller hears.
Speculative requests and how many were used come from the bot's own log line at each call's
end; every LLM request comes from the stand-in, so a request whose reply nobody heard is
counted for every bot alike.
"""

import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from bench.capacity import p95
from bench.conversation import AUDIBLE_RMS, DATA
from bench.servers import Bot, running
from pipelines.declaration import PIPELINES_DIR
from standins.audio import FRAME_MS, SAMPLE_RATE, read_wav, voice_span
from standins.caller import SimulatedCall
from standins.deepgram_stt import DeepgramSTTStandIn
from standins.deepgram_tts import DeepgramTTSStandIn
from standins.openai_chat import OpenAIChatStandIn
from standins.openai_replies import last_user_text
from standins.script import dial
from standins.stack import StandIns, running_standins

TTFTS_S = (0.25, 0.6)  # the LLM's first token: fast, and more like a real provider
TTS_TTFB_S = 0.08
PAUSE_S = 0.35  # inside the last turn: the caller stops, then goes on (one turn)
OLD_TURN = {"end": '"speech-timeout"', "speculative": "false"}  # the default until now
_SPECULATION = re.compile(r"speculative replies: (\d+) requested, (\d+) used")


def utterances() -> list[tuple[str, bytes]]:
    """The caller's turns: three recordings, then two with a pause between (one turn)."""
    names = ("opening_hours", "book_table", "yes")
    turns = [(name, read_wav(DATA / f"{name}.wav")) for name in names]
    first, then = _voice(DATA / "opening_hours.wav"), _voice(DATA / "yes.wav")
    pause = bytes(2 * int(PAUSE_S * SAMPLE_RATE))
    return [*turns, ("opening_hours ⏸ yes", first + pause + then + pause)]


def _voice(path: Path) -> bytes:
    pcm = read_wav(path)
    start, end = voice_span(pcm, AUDIBLE_RMS)
    return pcm[2 * int(start * SAMPLE_RATE) : 2 * int(end * SAMPLE_RATE)]


@dataclass
class Reply:
    """One caller turn and what the caller heard after it."""

    latency_s: float  # end of the caller's voice → the first bot audio heard after it
    false_end: bool  # bot audio began before the caller's voice ended


@dataclass
class ReplyRun:
    """One bot at one LLM speed."""

    bot: str
    ttft_s: float
    replies: list[Reply] = field(default_factory=list)
    llm_requests: int = 0  # chat requests that carried a caller's words
    speculative: tuple[int, int] = (0, 0)  # (requested, used), from the bot's log

    def latency(self, q: str) -> float:
        """p50 or p95 of the reply latency, ms."""
        values = [r.latency_s for r in self.replies]
        return 1000 * (statistics.median(values) if q == "p50" else p95(values))

    @property
    def speculative_share(self) -> float:
        """Turns answered by a reply built before the turn ended."""
        return self.speculative[1] / len(self.replies)

    @property
    def wasted_per_turn(self) -> float:
        """LLM requests whose reply nobody heard, per turn."""
        return (self.llm_requests - len(self.replies)) / len(self.replies)

    @property
    def false_ends(self) -> int:
        """Turns the bot started answering while the caller was still speaking."""
        return sum(r.false_end for r in self.replies)


def old_default(directory: Path) -> Path:
    """The default pipeline as it was: the speech timeout, no speculation (a PIPELINES_DIR)."""
    text = (PIPELINES_DIR / "default.toml").read_text()
    for key, value in OLD_TURN.items():
        text, found = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text, count=1)
        assert found, f"default.toml declares no [turn] {key}"
    (directory / "default.toml").write_text(text)
    return directory


async def measure(bot: Bot, ttft_s: float, calls: int) -> ReplyRun:
    """`calls` calls of every utterance (after one to warm up), on fresh stand-ins and server."""
    run = ReplyRun(bot.name, ttft_s)
    async with running_standins(**_standins(ttft_s)) as standins:
        async with running(bot, standins.env(), log_level="INFO") as server:
            await _call(server.url, standins)
            for _ in range(calls):
                replies, requests = await _call(server.url, standins)
                run.replies += replies
                run.llm_requests += requests
        # Each call's line is logged as its pipeline ends; all have ended once it stopped.
        counts = _speculation(server.log)[1:]  # not the warm-up call's
    run.speculative = (sum(a for a, _ in counts), sum(b for _, b in counts))
    return run


def _standins(ttft_s: float) -> dict:
    return {
        "stt": DeepgramSTTStandIn(final_delay=0.1),
        "tts": DeepgramTTSStandIn(ttfb=TTS_TTFB_S),
        "openai": OpenAIChatStandIn(ttft=ttft_s, tokens_per_second=80.0),
    }


async def _call(url: str, standins: StandIns) -> tuple[list[Reply], int]:
    """One call: the greeting, then every utterance and the reply to it."""
    before = len(standins.openai.requests)
    call = await dial(url)
    replies = []
    try:
        await call.listen(timeout=15)
        for _, pcm in utterances():
            said = await call.say(pcm)
            ended = _voice_end(call, pcm)
            await call.listen(timeout=20, after=said)
            starts = [s.start for s in call.heard if s.start >= said]
            after = [t for t in starts if t >= ended]
            latency = (after[0] if after else starts[-1]) - ended
            replies.append(Reply(latency, false_end=starts[0] < ended))
    finally:
        await call.hang_up()
    answered = [r for r in standins.openai.requests[before:] if r.status == 200]
    return replies, sum(bool(last_user_text(r.body["messages"])) for r in answered)


def _voice_end(call: SimulatedCall, pcm: bytes) -> float:
    """When the voice of what was just said ended (stream seconds)."""
    end_event = call.events("sent_speech_end")[-1].t
    return end_event - FRAME_MS / 1000 - (len(pcm) / 16000 - voice_span(pcm, AUDIBLE_RMS)[1])


def _speculation(log: str) -> list[tuple[int, int]]:
    """(requested, used) for each call a server's log says ended, in order."""
    return [(int(a), int(b)) for a, b in _SPECULATION.findall(Path(log).read_text())]


def table(runs: list[ReplyRun]) -> str:
    """The markdown table: one row per bot and LLM speed."""
    head = (
        "| bot | LLM first token | reply p50 (ms) | reply p95 (ms) | turns | answered "
        "speculatively | wasted LLM requests per turn | false turn ends |"
    )
    rows = [
        f"| {r.bot} | {r.ttft_s * 1000:.0f} ms | {r.latency('p50'):.0f} | "
        f"{r.latency('p95'):.0f} | {len(r.replies)} | {r.speculative_share:.0%} | "
        f"{r.wasted_per_turn:.2f} | {r.false_ends} |"
        for r in runs
    ]
    return "\n".join([head, "| --- " * 8 + "|", *rows])
