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
OLD_DEFAULT = {"end": '"speech-timeout"', "speculative": "false"}  # [turn] before speculation
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
class ReplyRun:
    """One bot at one LLM speed."""

    bot: str
    ttft_s: float
    latencies: list[float] = field(default_factory=list)  # voice end → first reply heard, a turn
    llm_requests: int = 0  # chat requests that carried a caller's words
    false_ends: int = 0  # turns the bot ended inside what the caller said as one
    speculative: tuple[int, int] = (0, 0)  # (requested, used), from the bot's log

    def latency(self, q: str) -> float:
        """p50 or p95 of the reply latency, ms."""
        values = self.latencies
        return 1000 * (statistics.median(values) if q == "p50" else p95(values))

    @property
    def speculative_share(self) -> float:
        """Turns answered by a reply built before the turn ended."""
        return min(self.speculative[1], len(self.latencies)) / len(self.latencies)

    @property
    def wasted_per_turn(self) -> float:
        """LLM requests whose reply nobody heard, per turn."""
        return (self.llm_requests - len(self.latencies)) / len(self.latencies)


def default_with(directory: Path, turn: dict[str, str]) -> Path:
    """The default pipeline with `turn`'s [turn] values, in `directory` (a PIPELINES_DIR)."""
    text = (PIPELINES_DIR / "default.toml").read_text()
    for key, value in turn.items():
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
                heard = await _call(server.url, standins)
                run.latencies += heard.latencies
                run.llm_requests += heard.llm_requests
                run.false_ends += heard.false_ends
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


@dataclass
class CallFigures:
    """What one call's caller heard, and what its LLM was asked."""

    latencies: list[float]
    llm_requests: int
    false_ends: int


async def _call(url: str, standins: StandIns) -> CallFigures:
    """One call: the greeting, then every utterance and the reply to it.

    A turn the bot ended inside an utterance shows in the context of its last request: more
    caller messages than utterances (heard or not: the bot pauses when the caller goes on).
    """
    before = len(standins.openai.requests)
    said_all = utterances()
    call = await dial(url)
    latencies = []
    try:
        await call.listen(timeout=15)
        for _, pcm in said_all:
            await call.say(pcm)
            ended = _voice_end(call, pcm)
            await call.listen(timeout=20, after=ended)
            latencies.append([s.start for s in call.heard if s.start >= ended][0] - ended)
    finally:
        await call.hang_up()
    answered = [r.body["messages"] for r in standins.openai.requests[before:] if r.status == 200]
    asked = [m for m in answered if last_user_text(m)]
    turns = sum(m["role"] == "user" for m in asked[-1]) if asked else 0
    return CallFigures(latencies, len(asked), max(turns - len(said_all), 0))


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
        f"{r.latency('p95'):.0f} | {len(r.latencies)} | {r.speculative_share:.0%} | "
        f"{r.wasted_per_turn:.2f} | {r.false_ends} |"
        for r in runs
    ]
    return "\n".join([head, "| --- " * 8 + "|", *rows])
