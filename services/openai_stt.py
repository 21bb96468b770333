"""OpenAI transcription (segmented STT) that is cheap to create per call and closes its client."""

from openai import DefaultAsyncHttpxClient
from pipecat.services.openai.stt import OpenAISTTService

from services.tls import shared_tls


class ClosingOpenAISTTService(OpenAISTTService):
    """`OpenAISTTService` with the process's TLS context that releases its HTTP client.

    Stock pipecat 1.14 builds a TLS context for each call's client (~40 ms on the event loop)
    and never closes the client, leaving a keep-alive socket open after every call. It
    transcribes each stretch of speech between the VAD's start and stop as one WAV upload.
    """

    def __init__(self, **kwargs):
        """Like `OpenAISTTService`, with an HTTP client on the shared TLS context."""
        kwargs.setdefault("http_client", DefaultAsyncHttpxClient(verify=shared_tls()))
        super().__init__(**kwargs)

    async def cleanup(self):
        """Clean up, then close the HTTP client."""
        await super().cleanup()
        await self._client.close()
