"""OpenAI LLM service for phone calls: fails a turn fast and clearly, closes its client after."""

import asyncio
from collections.abc import AsyncIterator

import httpx
from loguru import logger
from openai import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncOpenAI,
    AsyncStream,
    DefaultAsyncHttpxClient,
)
from openai.types.chat import ChatCompletionChunk
from pipecat.frames.frames import ErrorFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.utils.errors import ErrorCategory

from services.tls import shared_tls

FIRST_TOKEN_TIMEOUT_SECS = 1.5
CHUNK_TIMEOUT_SECS = 1.0
RETRY_DELAY_SECS = 0.05
# A last resort for requests without our deadlines (out-of-band, non-streamed inference).
CLIENT_TIMEOUT = httpx.Timeout(20.0, connect=5.0)


class LLMStreamError(Exception):
    """A completion stream that failed the turn; the next turn may well succeed."""


class NoFirstToken(LLMStreamError):
    """Nothing streamed within the first-token deadline."""


class StreamStalled(LLMStreamError):
    """The stream went quiet between two chunks for longer than allowed."""


class StreamCut(LLMStreamError):
    """The stream ended (or the connection dropped) before a `finish_reason`."""


class ClosingOpenAILLMService(OpenAILLMService):
    """`OpenAILLMService` that fails a turn within a deadline and releases its HTTP client.

    Stock pipecat 1.14 leaves failures to the openai client: two retries with backoff on a 500
    and a 600 s timeout, far too slow for a caller waiting on the line. Here the client never
    retries; the first chunk must arrive within `first_token_timeout_secs` of the request
    (one immediate retry fits in that time when a request fails before streaming: a 5xx or a
    refused connection), each later chunk within `chunk_timeout_secs` of the one before, and
    a stream that ends without a `finish_reason` counts as cut. Each failure reaches pipecat's
    error handling as an exception, so the turn ends with an `ErrorFrame` upstream and an
    `LLMFullResponseEndFrame` downstream:

    | LLMContextFrame ↓, and the provider…      | out                                        |
    |-------------------------------------------|--------------------------------------------|
    | streams a reply                           | LLMFullResponseStart, LLMText…, End ↓      |
    | fails once before streaming (5xx, refused)| the same, after one retry at once          |
    | answers 5xx twice                         | Start, End ↓; ErrorFrame ↑ SERVER          |
    | sends nothing by the first-token deadline | Start, End ↓; ErrorFrame ↑ NoFirstToken    |
    | goes quiet, or ends without a finish      | Start, LLMText… so far, End ↓;             |
    |                                           |   ErrorFrame ↑ StreamStalled / StreamCut   |
    | refuses the connection twice              | Start, End ↓; ErrorFrame ↑ CONNECTIVITY    |
    | rejects the key (401)                     | Start, End ↓; ErrorFrame ↑ AUTHENTICATION, |
    |                                           |   and the service is no longer usable      |

    The stream errors are filed as SERVER (the provider failed), which keeps the service
    usable and lets `LLMFailureApology` answer the turn.

    It also shares one TLS context (stock builds one per call, ~40 ms of blocking work) and
    closes its client on cleanup (stock leaves a keep-alive socket open until garbage
    collection).
    """

    def __init__(
        self,
        *,
        first_token_timeout_secs: float = FIRST_TOKEN_TIMEOUT_SECS,
        chunk_timeout_secs: float = CHUNK_TIMEOUT_SECS,
        **kwargs,
    ):
        """Create the service; `kwargs` are `OpenAILLMService`'s."""
        if first_token_timeout_secs <= 0 or chunk_timeout_secs <= 0:
            raise ValueError("first_token_timeout_secs and chunk_timeout_secs must be positive")
        self._first_token_timeout = first_token_timeout_secs
        self._chunk_timeout = chunk_timeout_secs
        super().__init__(**kwargs)

    def create_client(
        self,
        api_key=None,
        base_url=None,
        organization=None,
        project=None,
        default_headers=None,
        **kwargs,
    ):
        """An `AsyncOpenAI` client on the process's TLS context that never retries by itself."""
        self._openai = AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            organization=organization,
            project=project,
            http_client=DefaultAsyncHttpxClient(verify=shared_tls()),
            default_headers=default_headers,
            max_retries=0,
            timeout=CLIENT_TIMEOUT,
        )
        return self._openai

    async def get_chat_completions(self, context: LLMContext) -> AsyncStream[ChatCompletionChunk]:
        """The completion stream, once its first chunk has arrived within the deadline."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self._first_token_timeout
        try:
            return await self._first_chunk_by(deadline, context)
        except (APIStatusError, APIConnectionError) as e:
            # A retry needs time for a whole answer: only a failure in the first half qualifies.
            if not _retryable(e) or loop.time() - started > self._first_token_timeout / 2:
                raise
            logger.warning(f"{self}: chat completion failed before streaming ({e}); retrying once")
        await asyncio.sleep(RETRY_DELAY_SECS)
        return await self._first_chunk_by(deadline, context)

    async def _first_chunk_by(self, deadline: float, context: LLMContext) -> "_GuardedStream":
        try:
            async with asyncio.timeout_at(deadline):
                stream = await super().get_chat_completions(context)
        except TimeoutError:
            raise NoFirstToken(f"no response within {self._first_token_timeout} s") from None
        chunks = aiter(stream)
        try:
            async with asyncio.timeout_at(deadline):
                first = await anext(chunks)
        except BaseException as e:
            await stream.close()
            if isinstance(e, TimeoutError):
                raise NoFirstToken(f"no token within {self._first_token_timeout} s") from None
            if isinstance(e, StopAsyncIteration):
                raise StreamCut("the stream ended before its first chunk") from None
            if isinstance(e, (APIConnectionError, httpx.TransportError)):
                raise StreamCut(f"the stream broke before its first chunk ({e})") from e
            raise
        return _GuardedStream(stream, chunks, first, self._chunk_timeout)

    async def push_error_frame(self, error: ErrorFrame, force_treat_as_permanent: bool = False):
        """Report an error, filing the failures pipecat cannot classify (it would say UNKNOWN)."""
        if error.category is None and error.exception is not None:
            error.category = _category(error.exception)
        await super().push_error_frame(error, force_treat_as_permanent=force_treat_as_permanent)

    async def cleanup(self):
        """Clean up, then close the HTTP client."""
        await super().cleanup()
        await self._openai.close()


def _category(error: BaseException) -> ErrorCategory | None:
    """Stalls and cuts are the provider's failures; a refused connection is connectivity."""
    if isinstance(error, LLMStreamError):
        return ErrorCategory.SERVER
    if isinstance(error, APIConnectionError):  # carries no HTTP status for pipecat to read
        return ErrorCategory.CONNECTIVITY
    return None


def _retryable(error: APIStatusError | APIConnectionError) -> bool:
    """A server error or a connection that failed outright, not one that timed out."""
    if isinstance(error, APIStatusError):
        return error.status_code >= 500
    return not isinstance(error, APITimeoutError)


class _GuardedStream:
    """A completion stream whose chunks must keep coming and that must end with a finish."""

    def __init__(
        self,
        stream: AsyncStream[ChatCompletionChunk],
        chunks: AsyncIterator[ChatCompletionChunk],
        first: ChatCompletionChunk,
        chunk_timeout: float,
    ) -> None:
        self._stream = stream
        self._chunks = chunks
        self._first = first
        self._chunk_timeout = chunk_timeout

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self._guarded()

    async def _guarded(self) -> AsyncIterator[ChatCompletionChunk]:
        chunk, count, finished = self._first, 1, False
        while True:
            finished = finished or any(c.finish_reason for c in chunk.choices or [])
            yield chunk
            try:
                async with asyncio.timeout(self._chunk_timeout):
                    chunk = await anext(self._chunks)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise StreamStalled(f"no chunk for {self._chunk_timeout} s after {count}") from None
            except (APIConnectionError, httpx.TransportError) as e:
                raise StreamCut(f"the stream broke after {count} chunks ({e})") from e
            count += 1
        if not finished:
            raise StreamCut(f"the stream ended after {count} chunks without a finish_reason")

    async def close(self) -> None:
        """Close the HTTP response."""
        await self._stream.close()
