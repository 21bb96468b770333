"""A local OpenAI chat-completions server: SSE streaming, tool calls, knobs, observable cancels."""

import asyncio
import inspect
import json
import time
from dataclasses import dataclass, field

from aiohttp import web
from loguru import logger

from standins.http_server import LocalServer
from standins.openai_replies import (
    MODEL,
    Completion,
    Reply,
    Responder,
    ToolCall,
    fixed_reply,
    scripted_reply,
)

__all__ = [
    "OpenAIChatStandIn",
    "RecordedRequest",
    "Reply",
    "ResponseRecord",
    "ToolCall",
    "fixed_reply",
    "scripted_reply",
]

_SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"


@dataclass
class RecordedRequest:
    """One request as it reached the stand-in, and the HTTP status it got."""

    path: str
    authorization: str | None
    body: dict | None = None
    status: int = 0
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass
class ResponseRecord:
    """How one answered (HTTP 200) completion ended; a token is one content or argument chunk."""

    stream: bool
    tokens_planned: int
    tokens_sent: int = 0
    completed: bool = False
    cancelled: bool = False
    first_token_at: float | None = None  # time.monotonic() when the first token was written
    sentence_at: float | None = None  # ... and the token that ends the first sentence


def _error(status: int, message: str, kind: str, code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.json_response(body, status=status)


def _invalid(body: object) -> web.Response | None:
    """The 400 a completion request gets for a body that is not JSON or lacks messages."""
    if not isinstance(body, dict):
        return _error(400, "We could not parse the JSON body.", "invalid_request_error")
    if "messages" not in body:
        return _error(400, "Missing required parameter: 'messages'.", "invalid_request_error")
    return None


async def _pause(request: web.Request, seconds: float) -> None:
    """Sleep, but raise ConnectionResetError as soon as the client goes away."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        # aiohttp drops `request.transport` when the peer closes, before any write fails.
        if request.transport is None:
            raise ConnectionResetError("client closed the connection")
        await asyncio.sleep(min(left, 0.01))


def _time_token(record: ResponseRecord, payload: dict) -> None:
    now = time.monotonic()
    record.first_token_at = record.first_token_at or now
    text = payload["choices"][0]["delta"].get("content") or ""
    if record.sentence_at is None and text.rstrip().endswith((".", "!", "?")):
        record.sentence_at = now


def _sse(payload: dict | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


class OpenAIChatStandIn(LocalServer):
    """Serves `POST /v1/chat/completions` and `GET /v1/models` like api.openai.com.

    Knobs are plain attributes and may be changed between requests: `ttft` (seconds before the
    first token), `tokens_per_second` (None: as fast as possible), `fail_next` (answer the next
    N requests with HTTP 500), `api_key` (None: any bearer key is accepted).
    """

    def __init__(
        self,
        *,
        responder: Responder = scripted_reply,
        ttft: float = 0.0,
        tokens_per_second: float | None = None,
        fail_next: int = 0,
        api_key: str | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.responder = responder
        self.ttft = ttft
        self.tokens_per_second = tokens_per_second
        self.fail_next = fail_next
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self.responses: list[ResponseRecord] = []
        self._ended = asyncio.Condition()

    def routes(self) -> list[web.RouteDef]:
        """The chat-completions and model-list routes."""
        return [
            web.post("/v1/chat/completions", self._completions),
            web.get("/v1/models", self._models),
        ]

    async def wait_for_responses(
        self,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - a test helper's deadline
    ) -> list[ResponseRecord]:
        """Wait until `count` responses have completed or been cancelled; return them all."""
        async with self._ended:
            await asyncio.wait_for(
                self._ended.wait_for(lambda: self._ended_count() >= count), timeout
            )
        return self.responses

    def _ended_count(self) -> int:
        return sum(r.completed or r.cancelled for r in self.responses)

    def _refusal(self, recorded: RecordedRequest) -> web.Response | None:
        """The error response this request gets before any work, if any."""
        if self.fail_next > 0:
            self.fail_next -= 1
            return _error(500, _SERVER_ERROR, "server_error")
        auth = recorded.authorization or ""
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return _error(401, "You didn't provide an API key.", "invalid_request_error")
        if self.api_key is not None and auth[7:] != self.api_key:
            msg = "Incorrect API key provided."
            return _error(401, msg, "invalid_request_error", "invalid_api_key")
        return None

    async def _models(self, request: web.Request) -> web.Response:
        recorded = RecordedRequest(request.path, request.headers.get("Authorization"))
        self.requests.append(recorded)
        response = self._refusal(recorded)
        if response is None:
            model = {"id": MODEL, "object": "model", "created": 0, "owned_by": "system"}
            response = web.json_response({"object": "list", "data": [model]})
        recorded.status = response.status
        return response

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        recorded = RecordedRequest(request.path, request.headers.get("Authorization"))
        self.requests.append(recorded)
        try:
            recorded.body = await request.json()
        except ValueError:
            recorded.body = None
        refusal = self._refusal(recorded) or _invalid(recorded.body)
        if refusal is not None:
            recorded.status = refusal.status
            return refusal
        recorded.status = 200
        reply = self.responder(recorded.body.get("messages", []), recorded.body.get("tools"))
        reply = await reply if inspect.isawaitable(reply) else reply
        completion = Completion(recorded.body, reply)
        record = ResponseRecord(bool(recorded.body.get("stream")), completion.token_count())
        self.responses.append(record)
        try:
            if record.stream:
                return await self._stream(request, completion, record)
            await asyncio.sleep(self.ttft)
            record.tokens_sent, record.completed = record.tokens_planned, True
            return web.json_response(completion.whole(), headers=completion.headers)
        finally:
            async with self._ended:
                self._ended.notify_all()

    async def _stream(
        self, request: web.Request, completion: Completion, record: ResponseRecord
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers=completion.headers)
        response.content_type = "text/event-stream"
        await response.prepare(request)
        try:
            await _pause(request, self.ttft)
            first_token = asyncio.get_running_loop().time()
            for payload, is_token in completion.chunks():
                if is_token and record.tokens_sent and self.tokens_per_second:
                    due = first_token + record.tokens_sent / self.tokens_per_second
                    await _pause(request, due - asyncio.get_running_loop().time())
                await response.write(_sse(payload))
                record.tokens_sent += is_token
                if is_token:
                    _time_token(record, payload)
            await response.write(_sse("[DONE]"))
            await response.write_eof()
            record.completed = True
        except (ConnectionResetError, asyncio.CancelledError) as exc:
            # A client that closes the stream surfaces as a dropped transport or a failed write,
            # or as a cancelled handler when aiohttp cancels handlers (always on shutdown).
            record.cancelled = True
            logger.debug(f"chat stream closed by client after {record.tokens_sent} tokens")
            if isinstance(exc, asyncio.CancelledError):
                raise
        return response
