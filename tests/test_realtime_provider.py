"""The openai-realtime provider: its options, its URL, and the realtime pipeline file."""

import pytest

from pipelines.declaration import DeclarationError, load_declaration, load_declarations
from pipelines.provider import ProviderAccess, ProviderContext
from pipelines.providers.openai_realtime import RealtimeOptions, make_realtime, realtime_url
from pipelines.speech_to_speech import _local_turns, _server_turns


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        ("https://api.openai.com/v1", "wss://api.openai.com/v1/realtime"),
        ("http://127.0.0.1:5123/v1/", "ws://127.0.0.1:5123/v1/realtime"),
        ("https://gateway.example.com/openai/v1", "wss://gateway.example.com/openai/v1/realtime"),
    ],
)
def test_the_websocket_url_sits_beside_the_openai_base_url(base_url, url):
    assert realtime_url(base_url) == url


def test_a_base_url_that_is_not_http_is_refused_naming_the_variable():
    with pytest.raises(ValueError, match="OPENAI_BASE_URL"):
        realtime_url("ftp://files.example.com/v1")


def test_the_realtime_pipeline_is_openai_realtime_with_our_turn_detection():
    declaration = load_declarations()["realtime"]
    stage = declaration.speech_to_speech
    assert stage.provider.name == "openai-realtime" and declaration.stt is None
    assert (stage.options.model, stage.options.voice) == ("gpt-realtime", "marin")
    assert declaration.needs() == {"OPENAI_API_KEY"}
    assert declaration.turn_end == "speech-timeout" and _server_turns(declaration) is None
    starts = [type(s).__name__ for s in _local_turns(declaration).start]
    assert starts == ["MinSpeechUserTurnStartStrategy"], "no start waits for a transcript"


def test_turn_end_provider_hands_turns_to_openais_server_vad(tmp_path):
    source = load_declarations()["realtime"].path.read_text()
    path = tmp_path / "vad.toml"
    path.write_text(source.replace("[turn]", '[turn]\nend = "provider"'))
    detection = _server_turns(load_declaration(path))
    assert (detection.type, detection.silence_duration_ms) == ("server_vad", 600)


def test_an_unknown_option_names_the_provider_and_its_options(tmp_path):
    source = load_declarations()["realtime"].path.read_text()
    path = tmp_path / "bad.toml"
    path.write_text(source.replace('voice = "marin"', 'voice = "marin"\ntemperature = 0.8'))
    with pytest.raises(DeclarationError, match="speech_to_speech.temperature: unknown option"):
        load_declaration(path)


def test_the_session_is_mulaw_both_ways_with_the_bots_prompt_and_language():
    access = ProviderAccess({"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    context = ProviderContext(access=access, system_prompt="Be brief.", language="es-MX")
    llm = make_realtime(RealtimeOptions(voice="cedar"), context)
    session = llm.session
    assert llm.base_url == "ws://127.0.0.1:9/v1/realtime?model=gpt-realtime"
    assert session.audio.input.format.type == session.audio.output.format.type == "audio/pcmu"
    assert session.audio.output.voice == "cedar" and session.instructions == "Be brief."
    assert session.audio.input.transcription.language == "es"
