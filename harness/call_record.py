"""A call with a barge-in, as the records API tells it next to what the caller measured.

    python -m harness.call_record        (or: make records)

One call on SQLite and one on a throwaway PostgreSQL server (Debian's; skipped, saying so, when
it is not installed): greeting, a booking, its long reply cut by "cancel", the answer. Prints
per bot turn the reply latency from the API (end of the caller's speech → first bot audio,
from Twilio's marks) and its stages, against the latency the simulated phone measured, and
the words of the cut reply the API says were heard against the phone's playout record.
"""

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.barge_in import words_heard, words_off
from recordings import recording
from server.local import serve_locally
from standins.audio import read_wav, voice_span
from standins.caller import SimulatedCall
from standins.openai_replies import LONG_REPLY, Reply, last_user_text
from standins.script import dial
from standins.stack import StandIns, running_standins

TOKEN = "records-harness-token-0123456789"
CUT_AFTER_SECS = 1.5  # of the long reply, heard before the caller cuts in


@dataclass
class Measured:
    """What the simulated phone measured of the call."""

    latencies_ms: list[float]  # per bot reply: end of the caller's voice → first reply audio
    heard_words: list[str]  # of the long reply, from the phone's playout record


def long_then_short(messages, tools):
    """A long reply to the booking (worth cutting in on), a short one to what cuts it."""
    if "book a table" in last_user_text(messages).lower():
        return Reply(text=LONG_REPLY)
    return Reply(text="Okay, no problem.")


async def spoken(call: SimulatedCall, name: str) -> float:
    """Say the recording `name`; when the caller's voice ended (the caller's clock)."""
    pcm = read_wav(recording(name))
    return await call.say(pcm) + voice_span(pcm)[1]


async def call_with_a_barge_in(url: str) -> tuple[SimulatedCall, Measured]:
    """Greeting; a booking; its long reply cut by "cancel"; the answer. The caller's figures."""
    call = await dial(url)
    await call.listen()
    booked = await spoken(call, "book_table.wav")
    reply_start = await call.wait_for_bot_audio(timeout=10)
    await asyncio.sleep(CUT_AFTER_SECS)
    cancel = read_wav(recording("cancel.wav"))
    onset = await call.say(cancel)
    cancelled = onset + voice_span(cancel)[1]
    answer = await call.listen(after=cancelled, timeout=10)
    clear = next(e.t for e in call.events("clear") if e.t > onset)
    heard_s = sum(len(s.ulaw) for s in call.heard if reply_start <= s.start < clear) / 8000
    await call.hang_up()
    latencies = [(reply_start - booked) * 1000, (answer.start - cancelled) * 1000]
    return call, Measured(latencies, words_heard(LONG_REPLY, heard_s))


async def recorded_call(url: str, call_sid: str, *, token: str, ended: bool = True) -> dict:
    """The call's record from the API, once it has ended (the writer is not waited on)."""
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=auth) as client:
        for _ in range(100):
            response = await client.get(f"/calls/{call_sid}")
            if response.status_code == 200 and (response.json()["ended_at"] or not ended):
                return response.json()
            await asyncio.sleep(0.05)
    raise AssertionError(f"no finished record of {call_sid}: {response.status_code}")


async def on_record(standins: StandIns, database_url: str) -> tuple[dict, Measured]:
    """The barge-in call against a fresh server on `database_url`: its record, the figures."""
    from pipelines.declaration import load_declarations

    standins.openai.responder = long_then_short
    standins.openai.tokens_per_second = 8  # still streaming when the caller cuts in
    env = standins.env() | {"API_TOKEN": TOKEN, "DATABASE_URL": database_url}
    async with serve_locally(env, load_declarations()) as bot:
        call, measured = await call_with_a_barge_in(bot.url)
        return await recorded_call(bot.url, call.call_sid, token=TOKEN), measured


def report(database: str, record: dict, measured: Measured) -> list[str]:
    """Per bot reply: the API's latency and stages against the caller's; the heard words."""
    replies = [t for t in record["turns"] if t["speaker"] == "bot" and t["latency_ms"]]
    lines = [
        f"{database}: {record['call_sid']}, {len(record['turns'])} turns, {record['end_reason']}"
    ]
    for turn, caller_ms in zip(replies, measured.latencies_ms, strict=True):
        stages = " ".join(f"{k[:-3]} {v}" for k, v in turn["stages"].items())
        lines.append(
            f"  reply {turn['latency_ms']:>5} ms on record, {caller_ms:>6.0f} ms at the phone "
            f"({turn['latency_ms'] - caller_ms:+.0f} ms)  [{stages}]"
        )
    cut = next(t for t in record["turns"] if t["interrupted"])
    heard = cut["heard"].split()
    lines.append(
        f"  cut reply: {len(heard)} words heard on record, {len(measured.heard_words)} by the "
        f"phone's playout ({words_off(measured.heard_words, heard)} off): {cut['heard']!r}"
    )
    return lines


async def run_all() -> list[str]:
    """The call on SQLite, then on PostgreSQL if it is installed."""
    from harness.postgres import ThrowawayPostgres

    lines = []
    with tempfile.TemporaryDirectory() as data:
        async with running_standins() as standins:
            url = f"sqlite:///{Path(data) / 'calls.db'}"
            lines += report("SQLite", *await on_record(standins, url))
    try:
        postgres = ThrowawayPostgres().start()
    except RuntimeError as missing:
        return [*lines, f"PostgreSQL: not run ({missing})"]
    try:
        async with running_standins() as standins:
            lines += report("PostgreSQL", *await on_record(standins, postgres.new_database()))
    finally:
        postgres.remove()
    return lines


def main() -> None:
    """Run the calls and print what the records say next to what the caller measured."""
    import sys

    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    print("\n".join(asyncio.run(run_all())))


if __name__ == "__main__":
    main()
