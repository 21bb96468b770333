import pytest

from pipelines.provider import MissingVariable
from server.settings import ConfigError, load_settings

VALID = {
    "public_url": "https://bot.example.com",
    "deepgram_api_key": "dg",
    "openai_api_key": "sk",
    "twilio_account_sid": "AC" + "0" * 32,
    "twilio_auth_token": "tok",
}


def test_defaults_fill_in_what_is_optional():
    settings = load_settings(_env_file=None, **VALID)
    assert settings.port == 8765
    assert settings.deepgram_base_url == "wss://api.deepgram.com"
    assert settings.twilio_api_base_url == "https://api.twilio.com"


def test_every_missing_variable_is_named_with_what_to_do():
    with pytest.raises(ConfigError) as e:
        load_settings(_env_file=None)
    for name in ("PUBLIC_URL", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        assert f"{name} is not set (" in str(e.value)


@pytest.mark.parametrize(
    ("key", "value", "complaint"),
    [
        ("public_url", "bot.example.com", "PUBLIC_URL is invalid: must be a http:// or https://"),
        ("public_url", "https://bot.example.com/x?y=1", "PUBLIC_URL is invalid: must not have"),
        ("deepgram_base_url", "https://api.deepgram.com", "DEEPGRAM_BASE_URL is invalid"),
        ("twilio_account_sid", "AC123", "TWILIO_ACCOUNT_SID is invalid: must be AC followed"),
        ("port", "eighty", "PORT is invalid"),
        ("port", "70000", "PORT is invalid"),
        ("api_token", "short", "API_TOKEN is invalid: must be at least 16 characters"),
    ],
)
def test_a_malformed_variable_is_named(key, value, complaint):
    with pytest.raises(ConfigError, match=complaint.replace("?", r"\?")):
        load_settings(_env_file=None, **(VALID | {key: value}))


def test_variables_come_from_the_environment(monkeypatch):
    for key, value in VALID.items():
        monkeypatch.setenv(key.upper(), value)
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1234/v1/")
    settings = load_settings(_env_file=None)
    assert settings.port == 9000
    assert settings.openai_base_url == "http://127.0.0.1:1234/v1"
    assert "sk" not in repr(settings)  # secrets never print


def test_provider_variables_reach_the_providers_by_name_and_others_come_from_the_environment():
    settings = load_settings(_env_file=None, **VALID, cartesia_api_key="ck")
    access = settings.provider_access({"GROQ_API_KEY"}, {"GROQ_API_KEY": "gsk", "OTHER": "x"})
    assert access["DEEPGRAM_API_KEY"] == "dg" and access["CARTESIA_API_KEY"] == "ck"
    assert access["DEEPGRAM_BASE_URL"] == "wss://api.deepgram.com"
    assert access["GROQ_API_KEY"] == "gsk"
    assert "OTHER" not in access.values  # only what a pipeline names
    with pytest.raises(MissingVariable, match="TWILIO_AUTH_TOKEN is not set"):
        access["TWILIO_AUTH_TOKEN"]  # not a provider's


@pytest.mark.parametrize(
    ("url", "shared"),
    [(None, False), ("sqlite:///calls.db", False), ("postgresql://u@db:5432/calls", True)],
)
def test_only_postgresql_is_a_database_instances_share(url, shared):
    settings = load_settings(_env_file=None, **(VALID | {"database_url": url}))
    assert settings.shared_database is shared
