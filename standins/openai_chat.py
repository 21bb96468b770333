"""A local OpenAI chat-completions server: SSE streaming, tool calls, knobs, observable cancels."""

import asyncio
import inspect
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web
from loguru import logger

from standins.http_server import LocalServer, pause_unless_closed
from standins.openai_replies import (
    MODEL,
    Completion,
    Reply,
    Responder,
    ToolCall,
    fixed_reply,
    last_user_text,
    scripted_reply,
)

__all__ = [
    "ChatFault",
    "OpenAIChatStandIn",
    "RecordedRequest",
    "Reply",
    "ResponseRecord",
    "ToolCall",
    "fixed_reply",
    "request_number",
    "saying",
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
    index: int = 0  # its place among every request the stand-in received
    fault: str | None = None  # the ChatFault kind injected on it, if any
    gave_up_at: float | None = None  # a stalled request: when the client closed it


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
    cut: bool = False  # ended mid-reply on purpose (a "cut" or "truncate" fault)
    answering: str = ""  # the last user message of the request it answers


FaultKind = Literal["500", "stall", "stall-after-headers", "cut", "truncate"]
Selector = Callable[["RecordedRequest"], bool]


def saying(text: str) -> Selector:
    """Selects completion requests whose last user message contains `text` (any case)."""
    return lambda request: text.lower() in last_user_text(_messages(request)).lower()


def in_turn(number: int) -> Selector:
    """Selects requests answering the caller's `number`th turn (as many user messages).

    Every request a turn makes, speculative or not: an outage for the length of one turn.
    """
    return lambda request: sum(m.get("role") == "user" for m in _messages(request)) == number


def request_number(*indexes: int) -> Selector:
    """Selects requests by their index among all the stand-in received (0 is the first)."""
    return lambda request: request.index in indexes


def _messages(request: "RecordedRequest") -> list[dict]:
    body = request.body if isinstance(request.body, dict) else {}
    return body.get("messages") or []


@dataclass
class ChatFault:
    """A fault injected on the completion requests `when` selects, the first `times` of them.

    `kind`: "500" answers OpenAI's server-error JSON; "stall" accepts the request and sends
    nothing; "stall-after-headers" sends 200 and the SSE headers, then nothing; "cut" streams
    `after_tokens` content chunks, then drops the connection (no `finish_reason`, no
    `data: [DONE]`, no end of the chunked body); "truncate" ends the body cleanly at that point
    (still no `finish_reason` or `[DONE]`). A stall lasts until the client gives up.
    """

    kind: FaultKind
    when: Selector = lambda request: True
    times: int = 1
    after_tokens: int = 3
    injected: int = 0  # how many requests got it so far

    def takes(self, request: "RecordedRequest") -> bool:
        """Whether `request` gets this fault (counting it if so)."""
        if self.injected >= self.times or not self.when(request):
            return False
        self.injected += 1
        return True


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


def _time_token(record: ResponseRecord, payload: dict) -> None:
    now = time.monotonic()
    record.first_token_at = record.first_token_at or now
    text = payload["choices"][0]["delta"].get("content") or ""
    if record.sentence_at is None and text.rstrip().endswith((".", "!", "?")):
        record.sentence_at = now


async def _cut(
    request: web.Request, response: web.StreamResponse, record: ResponseRecord, kind: str
) -> web.StreamResponse:
    """End the stream mid-reply: no `finish_reason`, no `data: [DONE]`.

    "cut" closes the connection mid-body, as a crashed server or proxy does (the client reads
    an incomplete chunked body); "truncate" ends the body cleanly.
    """
    logger.debug(f"chat stand-in: {kind} after {record.tokens_sent} tokens")
    record.cut = True
    if kind == "truncate":
        await response.write_eof()
    elif request.transport is not None:
        request.transport.close()  # flushes what was written, then closes
    return response


def _sse(payload: dict | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


class OpenAIChatStandIn(LocalServer):
    """Serves `POST /v1/chat/completions` and `GET /v1/models` like api.openai.com.

    Knobs are plain attributes and may be changed between requests: `ttft` (seconds before the
    first token), `tokens_per_second` (None: as fast as possible), `fail_next` (answer the next
    N requests with HTTP 500), `faults` (`ChatFault`s: a 500, a stall or a cut stream on chosen
    completion requests; the first that takes a request applies), `api_key` (None: any bearer
    key is accepted). Each request records the fault it got (`injected` lists them).
    """

    def __init__(
        self,
        *,
        responder: Responder = scripted_reply,
        ttft: float = 0.0,
        tokens_per_second: float | None = None,
        fail_next: int = 0,
        faults: list[ChatFault] | None = None,
        api_key: str | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.responder = responder
        self.ttft = ttft
        self.tokens_per_second = tokens_per_second
        self.fail_next = fail_next
        self.faults = list(faults or [])
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
        """Wait until `count` responses have completed, been cancelled or cut; return them all."""
        async with self._ended:
            await asyncio.wait_for(
                self._ended.wait_for(lambda: self._ended_count() >= count), timeout
            )
        return self.responses

    def response_to(self, text: str) -> ResponseRecord:
        """The latest response to a request whose last user message contains `text` (any case).

        Speculative requests at the caller's pauses answer partial words, so a test picks the
        reply it means by what it answered, not by its place.
        """
        return [r for r in self.responses if text.lower() in r.answering.lower()][-1]

    @property
    def injected(self) -> list[RecordedRequest]:
        """The requests that got a fault, in order."""
        return [r for r in self.requests if r.fault]

    def _ended_count(self) -> int:
        return sum(r.completed or r.cancelled or r.cut for r in self.responses)

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

    def _record(self, request: web.Request) -> RecordedRequest:
        recorded = RecordedRequest(request.path, request.headers.get("Authorization"))
        recorded.index = len(self.requests)
        self.requests.append(recorded)
        return recorded

    async def _models(self, request: web.Request) -> web.Response:
        recorded = self._record(request)
        response = self._refusal(recorded)
        if response is None:
            model = {"id": MODEL, "object": "model", "created": 0, "owned_by": "system"}
            response = web.json_response({"object": "list", "data": [model]})
        recorded.status = response.status
        return response

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        # Recorded once its body is in: a test reading `requests` never sees one half-read.
        try:
            body = await request.json()
        except ValueError:
            body = None
        recorded = self._record(request)
        recorded.body = body
        refusal = self._refusal(recorded) or _invalid(recorded.body)
        if refusal is not None:
            recorded.status = refusal.status
            return refusal
        fault = next((f for f in self.faults if f.takes(recorded)), None)
        recorded.fault = fault.kind if fault else None
        if fault and fault.kind in ("500", "stall", "stall-after-headers"):
            return await self._inject(request, recorded, fault.kind)
        recorded.status = 200
        reply = self.responder(recorded.body.get("messages", []), recorded.body.get("tools"))
        reply = await reply if inspect.isawaitable(reply) else reply
        completion = Completion(recorded.body, reply)
        record = ResponseRecord(bool(recorded.body.get("stream")), completion.token_count())
        record.answering = last_user_text(_messages(recorded))
        self.responses.append(record)
        try:
            if record.stream:
                return await self._stream(request, completion, record, fault)
            await asyncio.sleep(self.ttft)
            record.tokens_sent, record.completed = record.tokens_planned, True
            return web.json_response(completion.whole(), headers=completion.headers)
        finally:
            async with self._ended:
                self._ended.notify_all()

    async def _inject(
        self, request: web.Request, recorded: RecordedRequest, kind: FaultKind
    ) -> web.StreamResponse:
        """Answer a 500, or stall (before or after the headers) until the client gives up."""
        logger.debug(f"chat stand-in injects {kind!r} on request {recorded.index}")
        if kind == "500":
            recorded.status = 500
            return _error(500, _SERVER_ERROR, "server_error")
        response = web.StreamResponse(headers={"x-request-id": f"req_stall{recorded.index}"})
        if kind == "stall-after-headers":
            recorded.status = 200
            response.content_type = "text/event-stream"
            await response.prepare(request)
        try:
            await pause_unless_closed(request, 3600)
        except ConnectionResetError:
            recorded.gave_up_at = time.monotonic()
            logger.debug(f"chat stand-in: client gave up on stalled request {recorded.index}")
        return response

    async def _stream(
        self,
        request: web.Request,
        completion: Completion,
        record: ResponseRecord,
        fault: ChatFault | None = None,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers=completion.headers)
        response.content_type = "text/event-stream"
        await response.prepare(request)
        try:
            await pause_unless_closed(request, self.ttft)
            first_token = asyncio.get_running_loop().time()
            for payload, is_token in completion.chunks():
                if is_token and record.tokens_sent and self.tokens_per_second:
                    due = first_token + record.tokens_sent / self.tokens_per_second
                    await pause_unless_closed(request, due - asyncio.get_running_loop().time())
                if fault and is_token and record.tokens_sent == fault.after_tokens:
                    return await _cut(request, response, record, fault.kind)
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
