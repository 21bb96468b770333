"""Which pipeline answers a call (stream parameter, called number, default); a second language."""

import pytest

from calls import final_transcripts, user_texts
from pipelines.declaration import (
    PIPELINES_DIR,
    DeclarationError,
    load_declaration,
    load_declarations,
)
from pipelines.provider import ProviderAccess
from pipelines.routing import Routes, load_routes
from server.local import serve_locally
from server.served_pipelines import served_pipelines
from server.settings import ConfigError
from standins.script import dial

SPANISH_NUMBER = "+34910000000"
SPANISH_GREETING = "Gracias por llamar a Luigi's. ¿En qué puedo ayudarle?"
ENGLISH_GREETING = "Thanks for calling Luigi's. How can I help you today?"
ROUTES = Routes(
    default="default", numbers={SPANISH_NUMBER: "spanish"}, served=frozenset({"default", "spanish"})
)


def spoken(standins) -> list[str]:
    """Every sentence the Deepgram TTS stand-in was asked to speak, greetings included."""
    return [text.strip() for c in standins.tts.connections for text in c.speaks]


def test_a_stream_parameter_wins_then_the_called_number_then_the_default():
    assert ROUTES.choose("spanish", "+15550000000")[0] == "spanish"
    assert ROUTES.choose("default", SPANISH_NUMBER)[0] == "default"
    assert ROUTES.choose(None, SPANISH_NUMBER) == ("spanish", f"called number {SPANISH_NUMBER}")
    assert ROUTES.choose("", "+15550000000") == ("default", "the default")


def test_a_parameter_naming_no_served_pipeline_is_logged_and_routed_by_number(log_lines):
    assert ROUTES.choose("klingon", SPANISH_NUMBER)[0] == "spanish"
    assert any("pipeline='klingon' names no pipeline" in line for line in log_lines)


def test_the_routing_table_is_checked_at_start_up(tmp_path):
    path = tmp_path / "routes.toml"
    path.write_text('[numbers]\n"+34910000000" = "spanish"\n"5551234" = "default"\n"+1555" = "x"\n')
    with pytest.raises(DeclarationError) as e:
        load_routes("default", {"default", "spanish"}, path)
    message = str(e.value)
    assert str(path) in message
    assert "numbers.'5551234': not an E.164 number" in message
    assert (
        "numbers.'+1555': 'x' is not a pipeline this server can run; "
        "choose one of: default, spanish" in message
    )


def test_the_default_must_be_a_served_pipeline(tmp_path):
    with pytest.raises(DeclarationError, match="PIPELINE='nope' .* choose one of: default"):
        load_routes("nope", {"default"}, tmp_path / "absent.toml")
    assert load_routes("default", {"default"}, tmp_path / "absent.toml").numbers == {}


def test_a_pipeline_without_its_keys_is_left_out_unless_calls_are_routed_to_it(tmp_path, log_lines):
    declarations = load_declarations()
    only_openai = ProviderAccess({"OPENAI_API_KEY": "sk"})
    with pytest.raises(ConfigError) as e:
        served_pipelines(declarations, only_openai, ROUTES)
    message = str(e.value)
    assert "DEEPGRAM_API_KEY is not set (create a key in the Deepgram console)" in message
    assert "'default' (default.toml) needs it for stt.provider 'deepgram', tts.provider" in message

    groq = tmp_path / "groq.toml"
    groq.write_text(
        (PIPELINES_DIR / "default.toml")
        .read_text()
        .replace(
            '[llm]\nprovider = "openai"',
            '[llm]\nprovider = "openai-compatible"\nbase_url = "https://api.groq.com/openai/v1"\n'
            'api_key_env = "GROQ_API_KEY"',
        )
        .replace('model = "gpt-4.1-mini"', 'model = "llama-3.1-8b-instant"')
    )
    declarations["groq"] = load_declaration(groq)
    keys = ProviderAccess({"OPENAI_API_KEY": "sk", "DEEPGRAM_API_KEY": "dg"})
    assert "groq" not in served_pipelines(declarations, keys, ROUTES)
    assert any("GROQ_API_KEY is not set" in line and "'groq'" in line for line in log_lines)
    with_groq = ProviderAccess(keys.values | {"GROQ_API_KEY": "gsk"})
    assert "groq" in served_pipelines(declarations, with_groq, ROUTES)


async def test_a_call_to_a_routed_number_gets_that_pipeline_in_its_language(
    standins, data, tmp_path
):
    routes = tmp_path / "routes.toml"
    routes.write_text(f'[numbers]\n"{SPANISH_NUMBER}" = "spanish"\n')
    async with serve_locally(standins.env(), load_declarations(), routes) as bot:
        call = await dial(bot.url, called=SPANISH_NUMBER)
        assert call.parameters["pipeline"] == "spanish"
        await call.listen()
        started = await call.say(data / "es" / "reservar_mesa.wav")
        await call.listen(after=started)  # the answer may begin in the recording's silent tail
        await call.hang_up()

    said = "Hola, quisiera reservar una mesa para dos mañana a las siete."
    assert " ".join(final_transcripts(standins)) == said
    (listen,) = standins.stt.connections
    assert listen.query["language"] == "es"
    assert {c.query["model"] for c in standins.tts.connections} >= {"aura-2-celeste-es"}
    request = standins.openai.requests[-1].body
    assert "Eres la recepcionista" in request["messages"][0]["content"]
    assert user_texts(request) == [said]
    assert SPANISH_GREETING in spoken(standins)
    assert "¿A nombre de quién?" in spoken(standins)


async def test_a_stream_parameter_picks_the_pipeline(standins, tmp_path):
    async with serve_locally(standins.env(), load_declarations(), tmp_path / "none") as bot:
        spanish = await dial(bot.url, parameters={"pipeline": "spanish"})
        english = await dial(bot.url)
        await spanish.listen()
        await english.listen()
        await spanish.hang_up()
        await english.hang_up()
        webhook = await dial(bot.url, webhook_query="pipeline=spanish")
        assert webhook.parameters["pipeline"] == "spanish"
        await webhook.hang_up()
    assert english.parameters["pipeline"] == "default"
    languages = sorted(c.query["language"] for c in standins.stt.connections)
    assert languages == ["en", "es", "es"]
