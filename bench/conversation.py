"""Simulated phone calls measured at the caller, after Twilio's modelled playout.

Times are stream seconds (since `start`) on the caller's clock; the stand-ins run in the same
process, so their `time.monotonic()` records convert exactly (`SimulatedCall.stream_time`).
"""

import asyncio
import re
from dataclasses import dataclass, field

from recordings import RECORDINGS
from standins import script
from standins.audio import FRAME_MS, read_wav, voice_span
from standins.caller import SimulatedCall
from standins.deepgram_stt import DeepgramSTTStandIn
from standins.deepgram_tts import DeepgramTTSStandIn
from standins.openai_chat import OpenAIChatStandIn
from standins.openai_replies import Reply, last_user_text, scripted_reply
from standins.script import GREETING, dial
from standins.stack import StandIns

DATA = RECORDINGS
CALLER_TURNS = ("opening_hours.wav", "book_table.wav", "yes.wav")
TRANSCRIPTS = dict(
    line.split("|", 1) for line in (DATA / "transcripts.txt").read_text().splitlines() if line
)
_SENTENCE_END = re.compile(r"[.!?](\s|$)")
AUDIBLE_RMS = 50  # the recordings' silence is digital (RMS under 10): anything above is voice
STALL_MAX_S = 0.5  # a gap in the bot's audio shorter than this is a stall (replies are further)


@dataclass(frozen=True)
class ServiceLatencies:
    """What the stand-ins are told to take, as real providers would."""

    stt_final_s: float = 0.1  # Deepgram: Finalize → final transcript
    llm_ttft_s: float = 0.25  # OpenAI: request → first token
    llm_tokens_per_s: float = 80.0  # then one token (word) every 1/rate s
    tts_ttfb_s: float = 0.12  # Deepgram TTS: sentence → first audio

    def standins(self) -> dict:
        """`running_standins` keyword arguments that apply these latencies."""
        return {
            "stt": DeepgramSTTStandIn(final_delay=self.stt_final_s),
            "tts": DeepgramTTSStandIn(ttfb=self.tts_ttfb_s),
            "openai": OpenAIChatStandIn(
                responder=receptionist,
                ttft=self.llm_ttft_s,
                tokens_per_second=self.llm_tokens_per_s,
            ),
        }

    def llm_first_sentence_s(self, reply: str) -> float:
        """Request → the token that ends the reply's first sentence."""
        first = _SENTENCE_END.search(reply)
        tokens = len(reply[: first.end() if first else len(reply)].split())
        return self.llm_ttft_s + (tokens - 1) / self.llm_tokens_per_s


@dataclass
class Turn:
    """One caller utterance and the bot's reply, as the caller experienced it."""

    utterance: str
    latency_s: float  # end of the caller's speech → first bot audio heard
    expected_s: float  # what the configuration accounts for: turn-end wait, LLM, TTS
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage (single call)

    @property
    def overhead_s(self) -> float:
        """The pipeline's own share of the latency."""
        return self.latency_s - self.expected_s


@dataclass
class CallResult:
    """A whole measured call."""

    greeting_s: float  # `start` → first greeting audio heard
    turns: list[Turn]
    seconds: float  # how long the call lasted
    stalls: list[float] = field(default_factory=list)  # gaps heard within the bot's audio, s
    clock_lag: float = 0.0  # the simulated caller's own worst lateness (s): the harness's


def speech_end(call: SimulatedCall, pcm: bytes) -> float:
    """When the voice in the utterance just said ended (stream seconds).

    A 20 ms packet leaves once its audio is recorded; `sent_speech_end` is one packet after
    the last, and the recording's trailing silence came before that.
    """
    end_event = call.events("sent_speech_end")[-1].t
    return end_event - FRAME_MS / 1000 - (len(pcm) / 16000 - voice_span(pcm, AUDIBLE_RMS)[1])


async def conversation(
    url: str,
    expected: "Expectation",
    standins: StandIns | None = None,
    utterances: tuple[str, ...] = CALLER_TURNS,
) -> CallResult:
    """Greeting, then each utterance and its reply; with `standins`, each reply's stages."""
    call = await dial(url)
    try:
        greeting = await call.listen(timeout=15)
        turns = []
        for name in utterances:
            pcm = read_wav(DATA / name)
            await call.say(pcm)
            ended = speech_end(call, pcm)
            reply = await call.listen(timeout=20)
            turn = Turn(name, reply.start - ended, expected.reply_s(name))
            if standins:
                turn.stages = stages(call, standins, ended, reply.start)
            turns.append(turn)
        return CallResult(greeting.start, turns, call.now(), stalls(call), call.max_clock_lag)
    finally:
        await call.hang_up()


def stalls(call: SimulatedCall) -> list[float]:
    """The gaps the caller heard inside the bot's audio: its playout ran dry mid-speech.

    The caller here only speaks once a reply has ended, so gaps between replies are longer
    than `STALL_MAX_S`; a shorter one is audio that came late.
    """
    played = call.playout.stretches
    gaps = [after.start - before.end for before, after in zip(played, played[1:], strict=False)]
    return [gap for gap in gaps if 0 < gap < STALL_MAX_S]


@dataclass(frozen=True)
class Expectation:
    """The latency a reply should take given a bot's turn-end wait and the stand-ins' latencies."""

    turn_end_s: float  # the bot's configured silence before a turn ends
    vad_stop_s: float  # when the bot asks the STT to finalize
    services: ServiceLatencies

    def turn_s(self) -> float:
        """Speech end → turn end: the configured silence, or the final transcript if later."""
        return max(self.turn_end_s, self.vad_stop_s + self.services.stt_final_s)

    def reply_s(self, utterance: str) -> float:
        """Speech end → first audio heard, with no overhead at all."""
        reply = scripted_reply([{"role": "user", "content": TRANSCRIPTS[utterance[:-4]]}], [])
        llm = self.services.llm_first_sentence_s(reply.text)
        return self.turn_s() + llm + self.services.tts_ttfb_s


def stages(call: SimulatedCall, standins: StandIns, ended: float, heard: float) -> dict:
    """Where a reply's time went, from the stand-ins' records (one call at a time only)."""
    t = call.stream_time
    finals = [
        t(at)
        for conn in standins.stt.connections
        for message, at in zip(conn.sent, conn.sent_at, strict=True)
        if message.get("is_final") and message["channel"]["alternatives"][0]["transcript"]
    ]
    answered = [r for r in standins.openai.requests if r.status == 200]
    pairs = [(q, r) for q, r in zip(answered, standins.openai.responses, strict=False)]
    after = [(q, r) for q, r in pairs if t(q.at) > ended]
    # The reply heard: the last request answered before it (withdrawn speculations have
    # no tokens, or none before the caller went on).
    spoken = [(q, r) for q, r in after if r.first_token_at and t(r.first_token_at) < heard]
    request, response = (spoken or after)[-1]
    sentence = t(response.sentence_at or response.first_token_at)
    speaks = [t(at) for c in standins.tts.connections for at in c.speaks_at]
    speak = min(at for at in speaks if at >= sentence - 0.001)
    audio = min(t(at) for c in standins.tts.connections for at in c.audio_at if t(at) >= speak)
    vad_stop = min(
        t(at) for c in standins.stt.connections for at in c.finalized_at if t(at) > ended
    )
    return {
        "vad stop": vad_stop - ended,
        "stt final": min(at for at in finals if at > ended) - ended,
        "turn end": t(request.at) - ended,
        "llm": sentence - t(request.at),
        "llm → tts": speak - sentence,
        "tts": audio - speak,
        "tts → heard": heard - audio,
    }


@dataclass
class BargeIn:
    """The caller cuts a long reply: how fast it stopped, and what leaked after."""

    cut_s: float  # seconds into the reply
    latency_s: float  # voice onset → Twilio `clear`
    audio_after_clear: int  # bytes of bot media after the clear, while the caller still spoke


async def barge_in(url: str, cut_s: float) -> BargeIn:
    """Greeting, a booking (answered at length), then "cancel that" `cut_s` s into the reply."""
    call = await dial(url)
    try:
        await call.listen(timeout=15)
        await call.say(DATA / "book_table.wav")
        reply_start = await call.wait_for_bot_audio(timeout=15)
        await asyncio.sleep(max(0.0, reply_start + cut_s - call.now()))
        pcm = read_wav(DATA / "cancel.wav")
        first_packet = await call.say(pcm)
        onset = first_packet - FRAME_MS / 1000 + voice_span(pcm, AUDIBLE_RMS)[0]
        await call.listen(timeout=20)
        clear = next((e.t for e in call.events("clear") if e.t > onset), None)
        if clear is None:
            raise AssertionError(f"no `clear` after the barge-in at {onset:.2f} s")
        spoke_until = call.events("sent_speech_end")[-1].t
        leaked = sum(int(e.detail) for e in call.events("media") if clear < e.t < spoke_until)
        return BargeIn(cut_s, clear - onset, leaked)
    finally:
        await call.hang_up()


def receptionist(messages: list[dict], tools: list[dict] | None) -> Reply:
    """The scripted receptionist, which greets like our bot when asked to introduce itself.

    Stock Pipecat's greeting is such a request.
    """
    if not last_user_text(messages):
        return Reply(text=GREETING)
    return scripted_reply(messages, tools)


def long_reply_to_bookings(messages: list[dict], tools: list[dict] | None) -> Reply:
    """The receptionist, but a booking gets LONG_REPLY (worth interrupting)."""
    return script.long_reply_to_bookings(messages, tools, otherwise=receptionist)


async def short_call(url: str) -> None:
    """A short whole call for the soak.

    The caller answers the greeting at once, hears the reply begin, and hangs up.
    """
    call = await dial(url)
    try:
        await call.say(DATA / "yes.wav")
        spoke_until = call.events("sent_speech_end")[-1].t
        async with asyncio.timeout(15):
            while not [s for s in call.heard if s.start > spoke_until]:
                await asyncio.sleep(0.02)
    finally:
        await call.hang_up()
