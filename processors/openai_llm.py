"""OpenAI LLM service that is cheap to create per call and closes its HTTP client after."""

from openai import AsyncOpenAI, DefaultAsyncHttpxClient
from pipecat.services.openai.llm import OpenAILLMService

from telephony.shared_tls import shared_tls


class ClosingOpenAILLMService(OpenAILLMService):
    """`OpenAILLMService` with a shared TLS context that releases its HTTP client on cleanup.

    Stock pipecat 1.14 builds a fresh TLS context for every call's client (~40 ms of blocking
    work on the event loop) and never closes the client: each call would leave a keep-alive
    socket open until garbage collection.
    """

    def create_client(
        self,
        api_key=None,
        base_url=None,
        organization=None,
        project=None,
        default_headers=None,
        **kwargs,
    ):
        """An `AsyncOpenAI` client whose HTTP client reuses the process's TLS context."""
        return AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            organization=organization,
            project=project,
            http_client=DefaultAsyncHttpxClient(verify=shared_tls()),
            default_headers=default_headers,
        )

    async def cleanup(self):
        """Clean up, then close the HTTP client."""
        await super().cleanup()
        await self._client.close()
