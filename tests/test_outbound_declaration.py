"""What a pipeline declares for the calls it places, and the settings outbound calls need."""

import pytest
from test_declaration import MINIMAL

from pipelines.declaration import DeclarationError, load_declaration
from server.settings import ConfigError, load_settings

SETTINGS = {
    "public_url": "https://bot.example.com",
    "twilio_account_sid": "AC" + "0" * 32,
    "twilio_auth_token": "tok",
}


def test_outbound_calls_have_defaults_and_nothing_to_say_until_declared(tmp_path):
    path = tmp_path / "minimal.toml"
    path.write_text(MINIMAL)
    declaration = load_declaration(path)
    assert declaration.bot.outbound_greeting is None and declaration.bot.voicemail is None
    assert declaration.outbound.caller_id is None
    assert declaration.outbound.machine_detection_timeout_secs == 30
    assert (declaration.outbound.retries, declaration.outbound.retry_delay_secs) == (2, 60.0)
    assert declaration.call.record is False


def test_declared_outbound_lines_recording_and_retries_are_read(tmp_path):
    path = tmp_path / "caller.toml"
    path.write_text(
        MINIMAL.replace('farewell = "Bye."', 'farewell = "Bye."\noutbound_greeting = "Hi {name}."')
        + '[call]\nrecord = true\n[outbound]\ncaller_id = "+15551230000"\nretries = 0\n'
    )
    declaration = load_declaration(path)
    assert declaration.bot.outbound_greeting == "Hi {name}."
    assert declaration.call.record is True
    assert (declaration.outbound.caller_id, declaration.outbound.retries) == ("+15551230000", 0)


@pytest.mark.parametrize(
    ("section", "complaint"),
    [
        ('[outbound]\ncaller_id = "555-0100"', "outbound.caller_id: String should match pattern"),
        ("[outbound]\nmachine_detection_timeout_secs = 60", "outbound.machine_detection_timeout"),
        ("[outbound]\nretries = -1", "outbound.retries: Input should be greater than or equal"),
        (
            "[outbound]\nretry = 3",
            "outbound.retry: unknown option in [outbound]; valid options: caller_id, "
            "machine_detection_timeout_secs, retries, retry_delay_secs",
        ),
        ('[call]\nrecord = "maybe"', "call.record: Input should be a valid boolean"),
    ],
)
def test_a_bad_outbound_declaration_names_the_file_and_the_key(tmp_path, section, complaint):
    path = tmp_path / "bad.toml"
    path.write_text(MINIMAL + section + "\n")
    with pytest.raises(DeclarationError) as e:
        load_declaration(path)
    assert str(e.value).startswith(f"{path}: invalid pipeline declaration")
    assert complaint in str(e.value)


def test_the_api_token_and_the_phone_number_are_optional_and_empty_means_unset():
    settings = load_settings(_env_file=None, **SETTINGS, api_token="", twilio_phone_number="")
    assert settings.api_token is None and settings.twilio_phone_number is None


@pytest.mark.parametrize(
    ("key", "value", "complaint"),
    [
        ("api_token", "short", "API_TOKEN is invalid"),
        ("twilio_phone_number", "5551230000", "TWILIO_PHONE_NUMBER is invalid"),
    ],
)
def test_a_guessable_token_or_a_malformed_number_stops_the_server(key, value, complaint):
    with pytest.raises(ConfigError) as e:
        load_settings(_env_file=None, **SETTINGS, **{key: value})
    assert complaint in str(e.value)
