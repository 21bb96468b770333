"""OpenAI LLM service that closes its HTTP client when the call ends."""

from pipecat.services.openai.llm import OpenAILLMService


class ClosingOpenAILLMService(OpenAILLMService):
    """`OpenAILLMService` that releases its pooled HTTP connection on cleanup.

    Stock pipecat 1.14 never closes its `AsyncOpenAI` client: each call would leave a
    keep-alive socket open until garbage collection.
    """

    async def cleanup(self):
        """Clean up, then close the HTTP client."""
        await super().cleanup()
        await self._client.close()
