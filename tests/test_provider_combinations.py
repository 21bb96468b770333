"""The same phone call passes whichever providers the registry offers are combined.

Each case writes a pipeline file naming its providers, serves it, and places one call: the
greeting, a booking question and its answer, a goodbye that makes the bot hang up. It checks
that each stage's traffic went to the chosen provider's stand-in and to no other.

A call takes ~25 s and the product of the providers grows with each one added, so the cases
are a covering set instead: every provider of a stage meets every provider of each other
stage in at least one call (12 calls for 3 × 3 × 4 providers, against 36), and it is
between two stages that providers fail to work together.
"""

import itertools

import pytest

from pipelines.declaration import load_declaration
from pipelines.registry import STAGES
from server.local import serve_locally
from standins.openai_chat import OpenAIChatStandIn
from standins.script import BOOK_TABLE, BOOKING_REPLY, dial
from standins.stack import running_standins

COMPATIBLE_KEY = "standin-compatible-key"

BOT = """
[bot]
system_prompt = "You are the receptionist of Luigi's."
greeting = "Thanks for calling Luigi's. How can I help you today?"
farewell = "Thanks for calling Luigi's. Goodbye!"
"""

# What each provider's stand-in saw of the call: transcription traffic, requests, text spoken.
STT_TRAFFIC = {
    "deepgram": lambda s: [c for c in s.stt.connections if c.audio_bytes],
    "deepgram-flux": lambda s: [c for c in s.flux.connections if c.audio_bytes],
    "openai": lambda s: [r for r in s.openai_stt.requests if r.audio],
}
LLM_REQUESTS = {  # (the OpenAI-compatible server is a second OpenAI stand-in)
    "openai": lambda s, compatible: s.openai.requests,
    "openai-compatible": lambda s, compatible: compatible.requests,
    "anthropic": lambda s, compatible: s.anthropic.requests,
}
TTS_TEXT = {
    "deepgram": lambda s: [text for c in s.tts.connections for text in c.speaks],
    "openai": lambda s: [r.body["input"] for r in s.openai_tts.requests if r.body],
    "cartesia": lambda s: [text for ctx in s.cartesia.contexts for text in ctx.transcripts],
    "elevenlabs": lambda s: [ctx.text for ctx in s.elevenlabs.contexts],
}
EXTRA_OPTIONS = {
    ("llm", "openai-compatible"): 'model = "llama-3.1-8b-instant"\nbase_url = "{compatible}"\n'
    'api_key_env = "COMPATIBLE_API_KEY"\n',
    ("tts", "cartesia"): 'voice = "a0e99841-438c-4a64-b679-ae501e7d6091"\n',
    ("tts", "elevenlabs"): 'voice = "21m00Tcm4TlvDq8ikWAM"\n',
}


def every_pair(*stages: list[str]) -> list[tuple[str, ...]]:
    """Combinations in which each provider meets each provider of every other stage.

    Greedy, hence deterministic: the next combination is the first that meets the most pairs
    not yet met.
    """

    def pairs(combination: tuple[str, ...]) -> set[tuple]:
        positions = itertools.combinations(range(len(combination)), 2)
        return {(i, combination[i], j, combination[j]) for i, j in positions}

    everything = list(itertools.product(*stages))
    unmet = set().union(*(pairs(combination) for combination in everything))
    chosen = []
    while unmet:
        best = max(everything, key=lambda combination: len(pairs(combination) & unmet))
        chosen.append(best)
        unmet -= pairs(best)
    return chosen


CASCADES = every_pair(list(STAGES["stt"]), list(STAGES["llm"]), list(STAGES["tts"]))


def pipeline_file(tmp_path, compatible_url: str, **providers: str):
    """A pipeline file declaring `providers` by stage, the rest from BOT."""
    text = BOT
    for stage, name in providers.items():
        extra = EXTRA_OPTIONS.get((stage, name), "").format(compatible=compatible_url)
        text += f'\n[{stage}]\nprovider = "{name}"\n{extra}'
    path = tmp_path / "combination.toml"
    path.write_text(text)
    return load_declaration(path)


async def place_the_call(standins, compatible, declaration, data, tmp_path):
    """Greeting, a question, a goodbye; returns the three bot turns the caller heard."""
    env = standins.env() | {"PIPELINE": declaration.name, "COMPATIBLE_API_KEY": COMPATIBLE_KEY}
    declarations = {declaration.name: declaration}
    async with serve_locally(env, declarations, tmp_path / "no-routes.toml") as bot:
        call = await dial(bot.url)
        greeting = await call.listen(timeout=15)
        reply = await say_and_listen(call, data / "book_table.wav")
        farewell = await say_and_listen(call, data / "goodbye.wav")
        await call.wait_closed()
    assert await standins.twilio.wait_for_hangup(call.call_sid, timeout=5), "REST hang-up made"
    return greeting, reply, farewell


def user_said(request) -> list[str]:
    """What the user said in an LLM request, OpenAI- or Anthropic-shaped."""
    return [
        m["content"]
        if isinstance(m["content"], str)
        else " ".join(part.get("text", "") for part in m["content"])
        for m in request.body["messages"]
        if m["role"] == "user"
    ]


async def say_and_listen(call, wav):
    """Say the recording; the bot's answer, which may start before the recording has ended.

    (Flux ends a turn at "Thanks, that's all." while "Goodbye." is still to come.)
    """
    started = await call.say(wav)
    return await call.listen(timeout=15, after=started)


@pytest.mark.parametrize(("stt", "llm", "tts"), CASCADES, ids=["-".join(c) for c in CASCADES])
async def test_the_same_call_passes_with_each_pair_of_cascaded_providers(
    stt, llm, tts, data, tmp_path
):
    compatible = OpenAIChatStandIn(api_key=COMPATIBLE_KEY)
    async with running_standins() as standins, compatible:
        declaration = pipeline_file(
            tmp_path, f"{compatible.http_url}/v1", stt=stt, llm=llm, tts=tts
        )
        turns = await place_the_call(standins, compatible, declaration, data, tmp_path)

    for turn in turns:
        assert turn.duration > 0.8, "the caller heard each bot turn"
    for name, traffic in STT_TRAFFIC.items():
        assert bool(traffic(standins)) == (name == stt), f"STT traffic at {name}'s stand-in"
    for name, requests in LLM_REQUESTS.items():
        assert bool(requests(standins, compatible)) == (name == llm), f"requests at {name}'s"
    # The request answering the first turn (speculative ones at its pauses came before it).
    first = [r for r in LLM_REQUESTS[llm](standins, compatible) if len(user_said(r)) == 1][-1]
    assert user_said(first) == [BOOK_TABLE]
    assert first.body["model"] == declaration.llm.options.model
    for name, spoken in TTS_TEXT.items():
        text = " ".join(spoken(standins))
        assert (BOOKING_REPLY.split()[-1] in text) == (name == tts), f"reply spoken by {name}"


async def test_the_same_call_passes_speech_to_speech(data, tmp_path):
    async with running_standins() as standins:
        declaration = pipeline_file(tmp_path, "", speech_to_speech="openai-realtime")
        turns = await place_the_call(standins, None, declaration, data, tmp_path)

    for turn in turns:
        assert turn.duration > 0.8, "the caller heard each bot turn"
    (connection,) = standins.realtime.connections
    assert BOOK_TABLE in [commit.transcript for commit in connection.commits]
    assert not (standins.stt.connections or standins.openai.requests or standins.tts.connections)
    assert not (standins.anthropic.requests or standins.elevenlabs.connections)
