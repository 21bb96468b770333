"""Whole phone calls over the real server with OpenAI's, Cartesia's and ElevenLabs' TTS.

Each pipeline is declared in a TOML file written here; the greeting is pre-synthesized through
the TTS at start-up, the reply is synthesized live, and a barge-in must stop the TTS (OpenAI:
the HTTP stream abandoned; Cartesia: `cancel` for the context; ElevenLabs: `close_context`)
and leave in the LLM's context the words the caller heard, not the ones they did not.
Cartesia and ElevenLabs are pipecat's stock services: their word timestamps, as pipecat's own
word frames, are all the transport has to know what was heard.
"""

import asyncio

import pytest

from calls import final_transcripts
from harness.barge_in import barge_in, offsets
from pipelines.declaration import DeclarationError, load_declaration
from pipelines.provider import ProviderAccess, ProviderContext
from processors.heard_context import INTERRUPTED_NOTE
from server.greetings import GreetingCache
from server.local import serve_locally
from services.downsampler import Downsampler
from standins.audio import pcm_to_ulaw
from standins.cartesia_tts import CartesiaTTSStandIn
from standins.elevenlabs_tts import ElevenLabsTTSStandIn
from standins.openai_replies import LONG_REPLY
from standins.openai_speech import OpenAISpeechStandIn
from standins.script import BOOK_TABLE, BOOKING_REPLY, GREETING, dial, long_reply_to_bookings
from standins.speech import synthesize
from standins.stack import CARTESIA_KEY, ELEVENLABS_KEY, OPENAI_KEY, running_standins

VOICE = "a0e99841-438c-4a64-b679-ae501e7d6091"
ELEVENLABS_VOICE = "21m00Tcm4TlvDq8ikWAM"
PIPELINE = f"""
[bot]
greeting = "{GREETING}"
farewell = "Thanks for calling Luigi's. Goodbye!"
system_prompt = "You are the phone receptionist of Luigi's, an Italian restaurant."

[stt]
provider = "deepgram"

[llm]
provider = "openai"

[tts]
"""
TTS = {
    "openai": 'provider = "openai"\nvoice = "coral"\ninstructions = "Warm and unhurried."\n',
    "cartesia": f'provider = "cartesia"\nvoice = "{VOICE}"\nspeed = 1.1\n',
    "elevenlabs": f'provider = "elevenlabs"\nvoice = "{ELEVENLABS_VOICE}"\nspeed = 1.1\n',
}
WORD_TIMED = ("cartesia", "elevenlabs")  # pipecat's stock services, timed word by word


@pytest.fixture(params=list(TTS))
def provider(request) -> str:
    """Each TTS provider in turn."""
    return request.param


@pytest.fixture
def declaration(provider, tmp_path):
    """A pipeline whose TTS is `provider`, from a TOML file."""
    path = tmp_path / f"with_{provider}.toml"
    path.write_text(PIPELINE + TTS[provider])
    return load_declaration(path)


@pytest.fixture
async def standins():
    """Every stand-in; the TTSs stream as real ones do, a little faster than real time."""
    tts = {
        "openai_tts": OpenAISpeechStandIn(realtime_factor=2.0),
        "cartesia": CartesiaTTSStandIn(realtime_factor=1.5),
        "elevenlabs": ElevenLabsTTSStandIn(api_key=ELEVENLABS_KEY, realtime_factor=1.5),
    }
    async with running_standins(**tts) as running:
        yield running


@pytest.fixture
async def bot(standins, declaration):
    """The real bot server, answering every call with the declared pipeline."""
    env = standins.env() | {"PIPELINE": declaration.name}
    async with serve_locally(env, {declaration.name: declaration}) as running:
        yield running


def expected_pcm(provider: str, sentences: list[str]) -> bytes:
    """What the caller should hear of these sentences (as the TTS stand-in was asked)."""
    if provider in WORD_TIMED:
        return synthesize(" ".join(sentences)).pcm
    pcm = b""
    for sentence in sentences:  # one request each, resampled to 8 kHz in the service
        downsampler = Downsampler()
        pcm += downsampler.process(synthesize(sentence, 24000).pcm) + downsampler.flush()
    return pcm


def heard_exactly(heard_ulaw: bytes, pcm: bytes) -> bool:
    """The caller heard exactly this audio (to within one 40 ms chunk at the end)."""
    expected = pcm_to_ulaw(pcm)
    return abs(len(heard_ulaw) - len(expected)) <= 320 and expected.startswith(heard_ulaw[:-320])


def spoken_texts(standins, provider: str) -> list[str]:
    """What the TTS stand-in was asked to say, in order (per request / per context)."""
    if provider == "openai":
        return [r.text for r in standins.openai_tts.requests]
    if provider == "elevenlabs":
        return [ctx.text for ctx in standins.elevenlabs.contexts if ctx.text.strip()]
    return [ctx.text for ctx in standins.cartesia.contexts]


async def test_the_greeting_is_pre_synthesized_in_units_the_transport_can_time(
    standins, provider, declaration
):
    cache = GreetingCache()
    await cache.warm({declaration.name: declaration}, ProviderAccess(standins.env()))
    sentences = cache.get(declaration)
    assert sentences, "cached"
    assert b"".join(s.pcm for s in sentences) == expected_pcm(provider, [GREETING])
    if provider == "openai":  # one request, one sentence
        assert [s.text for s in sentences] == [GREETING]
    else:  # word timestamps cut it word by word, each with its own audio
        words = synthesize(GREETING).words
        assert [s.text for s in sentences] == [w.word for w in words]
        assert [len(s.pcm) for s in sentences[:-1]] == [
            (round(b.start_s * 8000) - round(a.start_s * 8000)) * 2
            for a, b in zip(words, words[1:], strict=False)
        ]


async def test_the_caller_hears_the_greeting_and_a_reply_spoken_by_the_tts(
    bot, standins, provider, data
):
    call = await dial(bot.url)
    greeting = await call.listen()
    assert heard_exactly(greeting.ulaw, expected_pcm(provider, [GREETING]))
    await call.say(data / "book_table.wav")
    reply = await call.listen()
    await call.hang_up()
    async with asyncio.timeout(2):
        while bot.app.state.calls:
            await asyncio.sleep(0.01)

    assert " ".join(final_transcripts(standins)) == BOOK_TABLE
    said = spoken_texts(standins, provider)
    # The greeting was synthesized once, at start-up; the reply live, sentence by sentence.
    assert said[0].strip() == GREETING and all(GREETING not in text for text in said[1:])
    # Speculative replies at the caller's pauses reach the TTS too; only the booking's is heard.
    reply_sentences = [text.strip() for text in said[1:] if text.strip() in BOOKING_REPLY]
    # (a speculation withdrawn late may have reached the TTS with the same words: the last is heard)
    tails = [reply_sentences[i:] for i in range(len(reply_sentences))]
    reply_sentences = next((t for t in tails if " ".join(t) == BOOKING_REPLY), reply_sentences)
    assert " ".join(reply_sentences) == BOOKING_REPLY
    assert heard_exactly(reply.ulaw, expected_pcm(provider, reply_sentences))
    if provider == "openai":
        requests = standins.openai_tts.requests
        assert {r.authorization for r in requests} == {f"Bearer {OPENAI_KEY}"}
        assert {(r.model, r.voice, r.instructions) for r in requests} == {
            ("gpt-4o-mini-tts", "coral", "Warm and unhurried.")
        }
        assert {r.body["response_format"] for r in requests} == {"pcm"}
    elif provider == "elevenlabs":
        connections = standins.elevenlabs.connections
        assert {(c.api_key, c.voice_id) for c in connections} == {
            (ELEVENLABS_KEY, ELEVENLABS_VOICE)
        }
        assert {c.query.get("output_format") for c in connections} == {"pcm_8000"}
        settings = [
            ctx.voice_settings for ctx in standins.elevenlabs.contexts if ctx.voice_settings
        ]
        assert settings and all(s.get("speed") == 1.1 for s in settings)
    else:
        connections = standins.cartesia.connections
        assert {(c.api_key, c.version) for c in connections} == {(CARTESIA_KEY, "2026-03-01")}
        (request, *_) = connections[-1].requests
        assert request["voice"] == {"mode": "id", "id": VOICE}
        assert request["output_format"]["sample_rate"] == 8000
        assert request["generation_config"] == {"speed": 1.1}
        assert request["language"] == "en"
        await asyncio.sleep(0.2)  # the sockets' close handshakes
        assert all(connection.closed for connection in connections), "no socket left open"


# Cartesia is timed word by word, so a sentence boundary is nothing special to it; OpenAI is
# timed by sentence, and a cut between two sentences must find the first one whole.
@pytest.mark.parametrize(
    ("provider", "offset"),
    [
        ("openai", "mid-sentence"),
        ("openai", "between sentences"),
        ("cartesia", "mid-sentence"),
        ("elevenlabs", "mid-sentence"),
        ("elevenlabs", "between sentences"),
    ],
)
async def test_a_barge_in_stops_the_tts_and_the_context_holds_what_was_heard(
    bot, standins, provider, offset
):
    standins.openai.responder = long_reply_to_bookings
    result = await barge_in(bot.url, standins, offset, offsets()[offset])

    assert result.audio_after_clear == 0
    assert result.heard_words, "the caller heard some of the reply"
    assert result.words_off <= 1, (result.heard_words, result.context_words)
    request = standins.openai.requests[-1].body
    assistant = [m for m in request["messages"] if m["role"] == "assistant"][-1]["content"]
    assert INTERRUPTED_NOTE in assistant
    last_sentence = LONG_REPLY.split(". ")[-1]
    if provider == "openai":  # the sentences being fetched were abandoned, later ones never asked
        requests = standins.openai_tts.requests
        # (withdrawn speculative replies were cancelled too: their words are other ones)
        assert [r for r in requests if r.cancelled and r.text and r.text.strip() in LONG_REPLY]
        assert not [r for r in requests if last_sentence in (r.text or "")]
    elif provider == "elevenlabs":  # the reply's context was closed (flushed text may finish)
        (reply,) = [ctx for ctx in standins.elevenlabs.contexts if LONG_REPLY[:40] in ctx.text]
        assert reply.closed
    else:  # Cartesia was told to cancel the reply's context, and stopped
        (reply,) = [ctx for ctx in standins.cartesia.contexts if LONG_REPLY[:40] in ctx.text]
        assert reply.context_id in [
            c for conn in standins.cartesia.connections for c in conn.cancels
        ]
        assert reply.cancelled and not reply.done
        assert reply.audio_bytes < len(synthesize(LONG_REPLY).pcm)


@pytest.mark.parametrize(
    ("tts", "problem"),
    [
        ('provider = "cartesia"\n', "tts.voice: required, but missing"),
        ('provider = "cartesia"\nvoice = "v"\nspeed = 2.0\n', "tts.speed"),
        ('provider = "openai"\nvoice = "thalia"\n', "tts.voice"),
        ('provider = "openai"\nsample_rate = 24000\n', "tts.sample_rate: unknown option"),
    ],
)
def test_a_bad_tts_option_stops_the_declaration_naming_the_key(tmp_path, tts, problem):
    path = tmp_path / "bad.toml"
    path.write_text(PIPELINE + tts)
    with pytest.raises(DeclarationError, match=problem):
        load_declaration(path)


def test_each_tts_needs_its_key_and_reaches_its_base_url(declaration, provider):
    key = f"{provider.upper()}_API_KEY"
    assert declaration.tts.needs() == (key,)
    assert declaration.needs() == {"DEEPGRAM_API_KEY", "OPENAI_API_KEY", key}
    keys = {"OPENAI_API_KEY": "sk", "CARTESIA_API_KEY": "ck", "ELEVENLABS_API_KEY": "ek"}
    urls = {
        "OPENAI_BASE_URL": "http://127.0.0.1:8/v1",
        "CARTESIA_BASE_URL": "ws://127.0.0.1:9",
        "ELEVENLABS_BASE_URL": "ws://127.0.0.1:7",
    }
    default, configured = (
        declaration.tts.provider.make(
            declaration.tts.options, ProviderContext(ProviderAccess(access), "prompt", "en")
        )
        for access in (keys, keys | urls)
    )
    if provider == "openai":
        assert str(default._client.base_url) == "https://api.openai.com/v1/"
        assert str(configured._client.base_url) == "http://127.0.0.1:8/v1/"
    elif provider == "cartesia":
        assert default._url == "wss://api.cartesia.ai/tts/websocket"
        assert configured._url == "ws://127.0.0.1:9/tts/websocket"
    else:
        assert default._url == "wss://api.elevenlabs.io"
        assert configured._url == "ws://127.0.0.1:7"
