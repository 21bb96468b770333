"""OpenAI transcription (segmented STT) that is cheap to create per call and closes its client."""

from openai import DefaultAsyncHttpxClient
from pipecat.services.openai.stt import OpenAISTTService

from services.tls import shared_tls


class ClosingOpenAISTTService(OpenAISTTService):
    """`OpenAISTTService` on the process's TLS context that releases its HTTP client.

    Stock pipecat 1.14 builds a TLS context for each call's client (~40 ms on the event loop)
    and never closes the client, leaving a keep-alive socket open after every call. It
    transcribes each stretch of speech between the VAD's start and stop as one WAV upload.

    | in                                     | out                                 |
    |----------------------------------------|-------------------------------------|
    | VADUserStarted, audio…, VADUserStopped | TranscriptionFrame (one per upload) |
    | (cleanup)                              | its HTTP client closed              |
    """

    def __init__(self, *, http_client: DefaultAsyncHttpxClient | None = None, **kwargs):
        """Like `OpenAISTTService`; its HTTP client defaults to one on the shared TLS context."""
        http_client = http_client or DefaultAsyncHttpxClient(verify=shared_tls())
        super().__init__(http_client=http_client, **kwargs)
        self._http_client = http_client  # ours to close: pipecat never closes it

    async def cleanup(self):
        """Clean up, then close the HTTP client."""
        await super().cleanup()
        await self._http_client.aclose()
