"""Configuration: read once from the environment (and `.env`), validated at start-up."""

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipelines.provider import ProviderAccess
from records.database import database_url

PROVIDER_PREFIXES = ("deepgram_", "openai_", "cartesia_", "elevenlabs_", "anthropic_")
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")  # a phone number as Twilio takes it
# Calls per server process when MAX_CALLS is not set: the capacity knee BENCHMARKS.md measured
# (12 calls on 2 processes; at 16 the caller's audio came in over 100 ms late).
CALLS_PER_WORKER = 6

# What to do about each variable when it is missing or malformed.
_HINTS = {
    "PUBLIC_URL": "set it to the https URL Twilio reaches this server at, e.g. https://bot.example.com",
    "TWILIO_ACCOUNT_SID": "copy it from the Twilio console: AC followed by 32 hex digits",
    "TWILIO_AUTH_TOKEN": "copy it from the Twilio console; it validates X-Twilio-Signature",
    "TWILIO_PHONE_NUMBER": "your Twilio number in E.164 form, e.g. +15551230000",
    "API_TOKEN": "a long random secret, e.g. `openssl rand -hex 32`; unset turns the API off",
    "DATABASE_URL": "postgresql://user:password@host:5432/database, or unset it for SQLite",
    "CALL_WEBHOOK_SECRET": "a long random string your webhook receiver shares",
}
MIN_API_TOKEN = 16  # characters: a bearer token short enough to guess is refused


class ConfigError(Exception):
    """The configuration is missing or malformed; the message names each variable."""


class Settings(BaseSettings):
    """Everything the server reads from its environment; see `.env.example`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    port: int = Field(default=8765, ge=1, le=65535)
    public_url: str
    # Provider keys are optional here: the pipelines say which ones this server needs.
    deepgram_api_key: SecretStr | None = None
    deepgram_base_url: str = "wss://api.deepgram.com"
    openai_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    cartesia_api_key: SecretStr | None = None
    cartesia_base_url: str = "wss://api.cartesia.ai"
    elevenlabs_api_key: SecretStr | None = None
    elevenlabs_base_url: str = "wss://api.elevenlabs.io"
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    twilio_account_sid: str
    twilio_auth_token: SecretStr = Field(min_length=1)
    twilio_api_base_url: str = "https://api.twilio.com"
    twilio_phone_number: str | None = Field(default=None, pattern=E164.pattern)
    # The operator API (POST /calls, GET /calls/{sid}) and the console: off while unset.
    api_token: SecretStr | None = None
    pipeline: str = "default"
    workers: int = Field(default=0, ge=0)  # 0: one per CPU core
    max_calls: int | None = Field(default=None, ge=0)  # unset: CALLS_PER_WORKER per worker
    drain_timeout_secs: float = Field(default=30.0, ge=0, le=3600)
    data_dir: Path = Path("data")  # where the SQLite call records live without DATABASE_URL
    database_url: SecretStr | None = None  # postgresql://… (it may hold a password)
    call_webhook_url: str | None = None  # each finished call's record is POSTed here
    # Signs what is POSTed (HMAC-SHA256); checked even when unset (with a webhook it must be).
    call_webhook_secret: SecretStr | None = Field(default=None, validate_default=True)

    @property
    def worker_count(self) -> int:
        """Server processes to run: WORKERS, or one per CPU core this process may use."""
        return self.workers or len(os.sched_getaffinity(0))

    @property
    def shared_database(self) -> bool:
        """Whether DATABASE_URL is a PostgreSQL every instance shares (calls counted there)."""
        url = self.database_url.get_secret_value() if self.database_url else None
        return database_url(url, self.data_dir).startswith("postgresql")

    @property
    def call_limit(self) -> int | None:
        """Concurrent calls the whole server admits: MAX_CALLS (0: no limit, None)."""
        if self.max_calls is None:
            return CALLS_PER_WORKER * self.worker_count
        return self.max_calls or None

    @field_validator("twilio_phone_number", "api_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        return _base_url(value, ("http", "https"))

    def provider_access(
        self, others: Iterable[str] = (), environ: Mapping[str, str] | None = None
    ) -> ProviderAccess:
        """Provider credentials and base URLs by variable name.

        Plus the `others` that pipelines name themselves (an OpenAI-compatible server's key),
        from `environ`, or else from the process's environment and `.env`.
        """
        values = {
            name.upper(): value.get_secret_value() if isinstance(value, SecretStr) else value
            for name, value in self
            if name.startswith(PROVIDER_PREFIXES) and value
        }
        if environ is None:
            environ = dotenv_values(self.model_config["env_file"]) | dict(os.environ)
        for name in others:
            if environ.get(name):
                values.setdefault(name, str(environ[name]))
        return ProviderAccess(values)

    @field_validator("deepgram_base_url", "cartesia_base_url", "elevenlabs_base_url")
    @classmethod
    def _websocket_url(cls, value: str) -> str:
        return _base_url(value, ("ws", "wss"))

    @field_validator("openai_base_url", "anthropic_base_url", "twilio_api_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _base_url(value, ("http", "https"), allow_path=True)

    @field_validator("call_webhook_url")
    @classmethod
    def _call_webhook_url(cls, value: str | None) -> str | None:
        return _base_url(value, ("http", "https"), allow_path=True) if value else None

    @field_validator("call_webhook_secret")
    @classmethod
    def _call_webhook_secret(cls, value: SecretStr | None, info: ValidationInfo):
        if info.data.get("call_webhook_url") and not value:
            raise ValueError("is needed to sign what is POSTed to CALL_WEBHOOK_URL")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            database_url(value.get_secret_value(), Path("."))  # raises naming what is wrong
        return value

    @field_validator("api_token")
    @classmethod
    def _api_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_API_TOKEN:
            raise ValueError(f"must be at least {MIN_API_TOKEN} characters (or unset: no API)")
        return value

    @field_validator("twilio_account_sid")
    @classmethod
    def _account_sid(cls, value: str) -> str:
        if not _ACCOUNT_SID.match(value):
            raise ValueError("must be AC followed by 32 hex digits")
        return value


def _base_url(value: str, schemes: tuple[str, ...], *, allow_path: bool = False) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"must be a {' or '.join(s + '://' for s in schemes)} URL with a host")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query string or fragment")
    if parts.path.strip("/") and not allow_path:
        raise ValueError("must be a bare base URL, without a path")
    return value.strip().rstrip("/")


def load_settings(**overrides) -> Settings:
    """Read and validate the configuration, or raise ConfigError naming every bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as e:
        raise ConfigError(_describe(e)) from None


def _describe(error: ValidationError) -> str:
    lines = ["configuration error:"]
    for issue in error.errors():
        name = str(issue["loc"][0]).upper() if issue["loc"] else "?"
        message = issue["msg"].removeprefix("Value error, ")
        problem = "is not set" if issue["type"] == "missing" else f"is invalid: {message}"
        hint = _HINTS.get(name, "see .env.example")
        lines.append(f"  {name} {problem} ({hint})")
    return "\n".join(lines)
