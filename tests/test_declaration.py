import pytest

from pipelines.declaration import DeclarationError, load_declaration, load_declarations

MINIMAL = """
[bot]
system_prompt = "Be brief."
greeting = "Hello."
farewell = "Bye."
[stt]
provider = "deepgram"
[llm]
provider = "openai"
[tts]
provider = "deepgram"
"""


def test_every_shipped_pipeline_is_valid():
    declarations = load_declarations()
    assert "default" in declarations
    assert declarations["default"].bot.greeting


def test_a_minimal_file_gets_defaults(tmp_path):
    path = tmp_path / "mini.toml"
    path.write_text(MINIMAL)
    declaration = load_declaration(path)
    assert declaration.name == "mini"
    assert declaration.turn.user_speech_timeout == 0.4
    assert declaration.stt.model == "nova-3-general"


@pytest.mark.parametrize(
    ("edit", "complaint"),
    [
        (('provider = "deepgram"\n[llm]', 'provider = "whisper"\n[llm]'), "stt.provider: Input"),
        (("[tts]", "[tts]\nspeed = 2"), "tts.speed: unknown key"),
        (('greeting = "Hello."\n', ""), "bot.greeting: required, but missing"),
        (("[stt]", "[turn]\nvad_confidence = 3\n[stt]"), "turn.vad_confidence: Input should"),
        (("[bot]", "[bot"), "not valid TOML"),
    ],
)
def test_a_bad_file_names_itself_and_the_key(tmp_path, edit, complaint):
    path = tmp_path / "bad.toml"
    path.write_text(MINIMAL.replace(*edit, 1))
    with pytest.raises(DeclarationError) as e:
        load_declaration(path)
    assert str(path) in str(e.value) and complaint in str(e.value)
