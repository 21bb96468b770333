"""`python bot.py call`: one phone call to the real server, printed as a conversation."""

import argparse
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

from pipelines.declaration import Declaration
from server.local import LocalBot, serve_locally
from server.settings import load_settings
from standins.audio import read_wav, ulaw_to_pcm, voice_span, write_wav
from standins.playout import Stretch
from standins.script import dial
from standins.stack import running_standins

KEYS = "keys:"  # a turn of key presses rather than a WAV file: `keys:4217#`


async def place_call(
    args: argparse.Namespace, declarations: dict[str, Declaration], turns: list[str | Path]
) -> int:
    """Call the bot, speak each WAV (or press `keys:…`) as one turn, print what was said.

    Returns an exit code.
    """
    async with AsyncExitStack() as stack:
        standins = await stack.enter_async_context(running_standins())
        env = standins.env() if args.offline else _real_providers(standins.env())
        env["PIPELINE"] = args.pipeline
        bot = await stack.enter_async_context(serve_locally(env, declarations))
        where = "local stand-ins" if args.offline else "the real providers"
        print(f"calling pipeline {args.pipeline!r} on {bot.url} with {where}\n")
        call = await dial(bot.url)
        standins.twilio.voice.attach(call)  # it follows a transfer as Twilio would
        printed = _Transcript(bot, call.call_sid)
        greeting = await call.listen(timeout=15)
        printed.show(f"first audio {greeting.start * 1000:.0f} ms after the stream started")
        for said in map(str, turns):
            if said.startswith(KEYS):
                await call.press(said.removeprefix(KEYS))
                input_end, what = call.now(), "the last key"
            else:
                pcm = read_wav(said)
                input_end, what = await call.say(pcm) + voice_span(pcm)[1], "speech end"
            if call.closed.is_set():
                break
            turn = await call.listen(timeout=20, after=input_end)  # may start in the WAV's tail
            printed.show(f"reply heard {(turn.start - input_end) * 1000:.0f} ms after {what}")
        if standins.twilio.redirects:
            print(f"{'':>6}  (the bot transferred the call: {_twiml(standins.twilio.redirects)})")
        elif call.closed.is_set():
            hung_up = await standins.twilio.wait_for_hangup(call.call_sid, timeout=5)
            outcome = "made" if hung_up else "MISSING"
            print(f"{'':>6}  (the bot ended the call; REST hang-up {outcome})")
        await call.hang_up()
        _write_heard(Path(args.out), call.heard)
        print(f"\nbot audio as heard by the caller: {args.out}")
    return 0


def _twiml(redirects) -> str:
    return " then ".join(r.twiml or r.url or "" for r in redirects)


class _Transcript:
    """Prints the call's context as it grows: the server's own record of who said what."""

    def __init__(self, bot: LocalBot, call_sid: str) -> None:
        self._bot = bot
        self._call_sid = call_sid
        self._shown = 0
        self._context = None  # kept: the server forgets the call once it has ended

    def show(self, latency: str) -> None:
        messages = list(self._messages())
        for role, text in messages[self._shown :]:
            print(f"{'caller' if role == 'user' else 'bot':>6}: {text}")
        self._shown = len(messages)
        print(f"{'':>6}  ({latency})")

    def _messages(self) -> Iterator[tuple[str, str]]:
        call = self._bot.app.state.calls.get(self._call_sid)
        self._context = self._context or (call.context if call else None)
        for message in self._context.get_messages() if self._context else []:
            content = message.get("content") if isinstance(message, dict) else None
            if message.get("role") in ("user", "assistant") and isinstance(content, str):
                yield message["role"], content


def _real_providers(standin_env: dict[str, str]) -> dict[str, str]:
    """Real Deepgram and OpenAI from the configuration; Twilio stays local (no real call)."""
    settings = load_settings(public_url="http://127.0.0.1")
    return {
        "DEEPGRAM_API_KEY": settings.deepgram_api_key.get_secret_value(),
        "DEEPGRAM_BASE_URL": settings.deepgram_base_url,
        "OPENAI_API_KEY": settings.openai_api_key.get_secret_value(),
        "OPENAI_BASE_URL": settings.openai_base_url,
    } | {k: v for k, v in standin_env.items() if k.startswith("TWILIO_")}


def _write_heard(path: Path, stretches: list[Stretch]) -> None:
    """The bot's audio on the caller's timeline, with silence where nothing played."""
    pcm = bytearray()
    for stretch in stretches:
        pcm.extend(b"\x00\x00" * max(0, int(stretch.start * 8000) - len(pcm) // 2))
        pcm.extend(ulaw_to_pcm(bytes(stretch.ulaw)))
    write_wav(path, bytes(pcm))
