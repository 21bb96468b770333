"""Chat completions, streamed: OpenAI itself, or any OpenAI-compatible server by base URL."""

from urllib.parse import urlsplit

from pydantic import Field, field_validator

from pipelines.provider import Options, Provider, ProviderContext
from services.openai_llm import (
    CHUNK_TIMEOUT_SECS,
    FIRST_TOKEN_TIMEOUT_SECS,
    ClosingOpenAILLMService,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
KEY = "OPENAI_API_KEY"


class OpenAIOptions(Options):
    """OpenAI chat completions (OPENAI_API_KEY, OPENAI_BASE_URL)."""

    model: str = Field(default="gpt-4.1-mini", min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    first_token_timeout_secs: float = Field(
        default=FIRST_TOKEN_TIMEOUT_SECS,
        gt=0,
        le=30,
        description="no reply started by then: the caller hears the apology",
    )
    chunk_timeout_secs: float = Field(
        default=CHUNK_TIMEOUT_SECS,
        gt=0,
        le=30,
        description="a reply that goes quiet this long has failed",
    )


class CompatibleOptions(OpenAIOptions):
    """Any server that speaks OpenAI chat completions: Groq, vLLM, Ollama, Together."""

    model: str = Field(min_length=1)
    base_url: str = Field(description="e.g. https://api.groq.com/openai/v1")
    api_key_env: str | None = Field(
        default=None, description="the environment variable holding its key; none for no key"
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value.rstrip("/")


def make_openai(options: OpenAIOptions, context: ProviderContext) -> ClosingOpenAILLMService:
    """OpenAI's chat completions at OPENAI_BASE_URL (a stand-in's in tests)."""
    return _service(
        options,
        context,
        context.access[KEY],
        context.access.get("OPENAI_BASE_URL", DEFAULT_BASE_URL),
    )


def make_compatible(
    options: CompatibleOptions, context: ProviderContext
) -> ClosingOpenAILLMService:
    """The same client at the declared base URL, with the declared key (if any)."""
    key = context.access[options.api_key_env] if options.api_key_env else "none"
    return _service(options, context, key, options.base_url)


def _service(
    options: OpenAIOptions, context: ProviderContext, key: str, base_url: str
) -> ClosingOpenAILLMService:
    tuning = {"temperature": options.temperature, "max_completion_tokens": options.max_tokens}
    settings = ClosingOpenAILLMService.Settings(
        model=options.model,
        system_instruction=context.system_prompt,
        **{name: value for name, value in tuning.items() if value is not None},
    )
    return ClosingOpenAILLMService(
        api_key=key,
        base_url=base_url,
        settings=settings,
        first_token_timeout_secs=options.first_token_timeout_secs,
        chunk_timeout_secs=options.chunk_timeout_secs,
    )


LLM = [
    Provider("openai", "OpenAI chat completions", OpenAIOptions, make_openai, lambda _: (KEY,)),
    Provider(
        "openai-compatible",
        "any OpenAI-compatible server (Groq, vLLM, Ollama, …) by base URL",
        CompatibleOptions,
        make_compatible,
        lambda options: (options.api_key_env,) if options.api_key_env else (),
    ),
]
