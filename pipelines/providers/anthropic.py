"""Anthropic Claude, streamed from the Messages API (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL)."""

from anthropic import AsyncAnthropic, DefaultAsyncHttpxClient, Timeout
from pipecat.frames.frames import CancelFrame, EndFrame, Frame
from pipecat.services.anthropic.llm import AnthropicLLMService
from pydantic import Field

from pipelines.provider import Options, Provider, ProviderContext
from services.tls import shared_tls

DEFAULT_BASE_URL = "https://api.anthropic.com"
KEY = "ANTHROPIC_API_KEY"
# The SDK's default waits 10 minutes and retries twice with backoff: a caller would hear
# silence. A failed turn fails at once instead, and the caller hears the apology.
TIMEOUT = Timeout(20.0, connect=5.0)


class ClaudeOptions(Options):
    """Anthropic's Claude models."""

    model: str = Field(default="claude-haiku-4-5", min_length=1, description="or claude-sonnet-4-5")
    temperature: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, description="default: 4096")


def make_claude(options: ClaudeOptions, context: ProviderContext) -> AnthropicLLMService:
    """Claude at ANTHROPIC_BASE_URL (a stand-in's in tests), with the bot's system prompt."""
    key = context.access[KEY]
    client = AsyncAnthropic(
        api_key=key,
        base_url=context.access.get("ANTHROPIC_BASE_URL", DEFAULT_BASE_URL),
        # One TLS context per process: building one per call blocks the loop for ~30 ms.
        http_client=DefaultAsyncHttpxClient(verify=shared_tls()),
        timeout=TIMEOUT,
        max_retries=0,
    )
    tuning = {"temperature": options.temperature, "max_tokens": options.max_tokens}
    settings = AnthropicLLMService.Settings(
        model=options.model,
        system_instruction=context.system_prompt,
        **{name: value for name, value in tuning.items() if value is not None},
    )
    service = AnthropicLLMService(api_key=key, client=client, settings=settings)
    _close_at_the_end(service, client)
    return service


def _close_at_the_end(service: AnthropicLLMService, client: AsyncAnthropic) -> None:
    """Close the client once the call's pipeline ends or is cancelled.

    pipecat never closes the client it is given, and its pooled connection would stay open
    until garbage collection. Closing the pool per call (no keep-alive) would instead cost a
    TLS handshake on every turn.
    """

    @service.event_handler("on_after_process_frame")
    async def _close(_service: AnthropicLLMService, frame: Frame) -> None:
        if isinstance(frame, (EndFrame, CancelFrame)):
            await client.close()


LLM = [
    Provider(
        "anthropic",
        "Anthropic Claude, streamed Messages API",
        ClaudeOptions,
        make_claude,
        lambda _: (KEY,),
    )
]
