"""Whole phone calls with each STT provider: Deepgram Flux and OpenAI transcription."""

import asyncio
from pathlib import Path

import pytest

from calls import heard_matches, user_texts
from harness.barge_in import old_audio_after
from pipelines.declaration import DeclarationError, load_declaration
from pipelines.provider import ProviderAccess, ProviderContext
from pipelines.providers.deepgram_flux import FluxOptions, check_language, make_flux
from pipelines.providers.openai_stt import TranscriptionOptions, make_transcription
from server.local import serve_locally
from standins.audio import read_wav, voice_span
from standins.openai_replies import LONG_REPLY, Reply, last_user_text
from standins.script import BOOK_TABLE, BOOKING_REPLY, dial
from standins.stack import DEEPGRAM_KEY, OPENAI_KEY, running_standins

BOT = """
[bot]
greeting = "Thanks for calling Luigi's. How can I help you today?"
farewell = "Thanks for calling Luigi's. Goodbye!"
system_prompt = "You are the phone receptionist of Luigi's, an Italian restaurant."

[llm]
provider = "openai"

[tts]
provider = "deepgram"
"""
FLUX = '[stt]\nprovider = "deepgram-flux"\neot_timeout_ms = 3000\nkeyterms = ["Luigi"]\n'
OPENAI = '[stt]\nprovider = "openai"\nmodel = "gpt-4o-mini-transcribe"\nprompt = "Luigi\'s"\n'


@pytest.fixture
async def stack():
    """The stand-ins, whose recordings the tests read."""
    async with running_standins() as standins:
        yield standins


async def serve(stack, tmp_path: Path, name: str, stt: str):
    """The real server answering with one pipeline: BOT with the given [stt] section."""
    path = tmp_path / f"{name}.toml"
    path.write_text(BOT + stt, encoding="utf-8")
    return serve_locally(stack.env() | {"PIPELINE": name}, {name: load_declaration(path)})


async def book_a_table(url: str, data: Path) -> tuple[float, bytes]:
    """Call, hear the greeting, ask for a table; the reply's latency after the voice, and it."""
    call = await dial(url)
    await call.listen()
    pcm = read_wav(data / "book_table.wav")
    started = await call.say(pcm)
    reply = await call.listen(after=started)  # Flux may answer before the recording ends
    await call.hang_up()
    return reply.start - (started + voice_span(pcm)[1]), reply.ulaw


async def test_flux_hears_the_caller_and_its_end_of_turn_brings_the_reply(stack, tmp_path, data):
    async with await serve(stack, tmp_path, "flux", FLUX) as bot:
        _latency, reply = await book_a_table(bot.url, data)

    assert heard_matches(reply, BOOKING_REPLY)
    (flux,) = stack.flux.connections
    assert flux.authorization == f"Token {DEEPGRAM_KEY}"
    assert flux.query["model"] == "flux-general-en" and flux.query["encoding"] == "linear16"
    assert flux.query["sample_rate"] == "8000" and flux.query["eot_timeout_ms"] == "3000"
    assert flux.keyterms == ["Luigi"]
    assert flux.audio_bytes >= len(read_wav(data / "book_table.wav")), "all the caller's audio"
    assert flux.turns == [BOOK_TABLE]
    assert flux.controls == ["CloseStream"] and flux.closed, "closed when the caller hung up"
    assert stack.stt.connections == [], "nova was not used"
    # Speculative replies (the default): Flux's EagerEndOfTurn started the reply, its
    # EndOfTurn on the same words let it play; no local timeout runs with `end = "provider"`.
    assert flux.query["eager_eot_threshold"] == "0.5"
    (request,) = stack.openai.requests
    assert user_texts(request.body) == [BOOK_TABLE]
    (eager,) = flux.sent_at_event("EagerEndOfTurn")
    (end_of_turn,) = flux.sent_at_event("EndOfTurn")
    assert eager <= request.at < end_of_turn


async def test_without_speculation_flux_is_asked_for_no_eager_end_of_turn(stack, tmp_path, data):
    async with await serve(stack, tmp_path, "flux", FLUX + "[turn]\nspeculative = false\n") as bot:
        _latency, reply = await book_a_table(bot.url, data)

    assert heard_matches(reply, BOOKING_REPLY)
    (flux,) = stack.flux.connections
    assert "eager_eot_threshold" not in flux.query and not flux.events("EagerEndOfTurn")
    (request,) = stack.openai.requests
    (end_of_turn,) = flux.sent_at_event("EndOfTurn")
    assert request.at >= end_of_turn


def long_then_short(messages, tools):
    """A long reply to the booking, a short one to whatever interrupts it."""
    if "book a table" in last_user_text(messages).lower():
        return Reply(text=LONG_REPLY)
    return Reply(text="Okay.")


async def test_with_flux_a_barge_in_over_the_bot_still_cuts_it_off(stack, tmp_path, data):
    stack.openai.responder = long_then_short
    stack.openai.tokens_per_second = 8  # still streaming when the caller cuts in
    async with await serve(stack, tmp_path, "flux", FLUX) as bot:
        call = await dial(bot.url)
        await call.listen()
        await call.say(data / "book_table.wav")
        await call.wait_for_bot_audio(timeout=10)
        await asyncio.sleep(1.0)
        interrupted_at = await call.say(data / "opening_hours.wav")
        clears = [e for e in call.events("clear") if e.t > interrupted_at]
        after = await call.listen(after=interrupted_at)
        await call.hang_up()

    assert clears, "Twilio got a clear"
    assert old_audio_after(call, clears[0].t) == 0
    assert heard_matches(after.ulaw, "Okay.")
    long_response = stack.openai.response_to("book a table")
    assert long_response.cancelled and long_response.tokens_sent < long_response.tokens_planned
    assert any(c.clears for c in stack.tts.connections), "Deepgram TTS got Clear"
    (flux,) = stack.flux.connections
    assert flux.turns == [BOOK_TABLE, "What time do you open on Saturday?"]
    assert len(flux.events("StartOfTurn")) == 2


async def test_openai_transcribes_the_callers_utterance_and_the_bot_answers(stack, tmp_path, data):
    async with await serve(stack, tmp_path, "transcribe", OPENAI) as bot:
        _latency, reply = await book_a_table(bot.url, data)

    assert heard_matches(reply, BOOKING_REPLY)
    (upload,) = stack.openai_stt.requests
    assert upload.authorization == f"Bearer {OPENAI_KEY}" and upload.status == 200
    assert upload.fields == {
        "model": "gpt-4o-mini-transcribe",
        "language": "en",
        "prompt": "Luigi's",
    }
    assert upload.filename == "audio.wav" and upload.sample_rate == 8000
    voice = voice_span(read_wav(data / "book_table.wav"))
    assert upload.duration > voice[1] - voice[0], "the whole utterance was uploaded"
    assert upload.transcript == BOOK_TABLE
    (request,) = stack.openai.requests
    assert user_texts(request.body) == [BOOK_TABLE]
    assert stack.stt.connections == [] and stack.flux.connections == []


async def test_a_failed_transcription_loses_the_turn_but_not_the_call(stack, tmp_path, data):
    stack.openai_stt.fail_next = 3  # the openai SDK tries 3 times
    async with await serve(stack, tmp_path, "transcribe", OPENAI) as bot:
        call = await dial(bot.url)
        await call.listen()
        await call.say(data / "book_table.wav")
        await asyncio.sleep(3.0)
        assert stack.openai.requests == [], "nothing to answer"
        await call.say(data / "opening_hours.wav")
        reply = await call.listen()
        await call.hang_up()

    assert [r.status for r in stack.openai_stt.requests] == [500, 500, 500, 200]
    assert heard_matches(reply.ulaw, "We open at nine on Saturday and close at eleven.")


def context(language: str) -> ProviderContext:
    access = ProviderAccess({"DEEPGRAM_API_KEY": "dg", "OPENAI_API_KEY": "sk"})
    return ProviderContext(access=access, system_prompt="…", language=language)


def declared(tmp_path: Path, stt: str, turn: str = ""):
    path = tmp_path / "bot.toml"
    path.write_text(BOT + stt + turn, encoding="utf-8")
    return load_declaration(path)


def test_a_flux_pipeline_leaves_the_turn_end_to_flux(tmp_path):
    assert declared(tmp_path, FLUX).turn_end == "provider"
    with pytest.raises(DeclarationError, match="decides when turns end itself"):
        declared(tmp_path, FLUX, '[turn]\nend = "speech-timeout"\n')


def test_flux_options_out_of_range_name_the_key(tmp_path):
    with pytest.raises(DeclarationError, match="stt.eot_threshold"):
        declared(tmp_path, '[stt]\nprovider = "deepgram-flux"\neot_threshold = 0.2\n')


def test_the_english_only_flux_model_refuses_a_spanish_bot():
    assert "flux-general-multi" in check_language(FluxOptions(), "es")  # at load: see declaration
    assert check_language(FluxOptions(), "en-US") is None
    multi = make_flux(FluxOptions(model="flux-general-multi"), context("es"))
    assert "language_hint=es" in multi.url


def test_openai_transcription_speaks_the_bots_language_unless_told():
    assert make_transcription(TranscriptionOptions(), context("es-419"))._settings.language == "es"
    french = make_transcription(TranscriptionOptions(language="fr"), context("en"))
    assert french._settings.language == "fr"
