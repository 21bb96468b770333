"""A local Anthropic Messages API: `POST /v1/messages`, streamed as Anthropic's SSE events.

Requests carry `x-api-key` and `anthropic-version` headers (and `anthropic-beta` when the
client uses beta features, with `?beta=true`), and a JSON body with `model`, `max_tokens`,
`messages`, and optionally `system` (a string or text blocks), `tools`, `stream`. A streamed
answer is `message_start`, then per content block `content_block_start`, its deltas
(`text_delta`, or `input_json_delta` for a `tool_use` block) and `content_block_stop`, a
`ping` after the first block opens, then `message_delta` (`stop_reason`, cumulative `usage`)
and `message_stop`; each as `event: <type>` and `data: <json>`. Errors are
`{"type": "error", "error": {"type", "message"}, "request_id"}` with Anthropic's status: 401
`authentication_error` for a missing or wrong key, 400 `invalid_request_error` for a missing
version or field, or a `tool_use` whose `tool_result` is not in the next message.

What it answers is `reply_to`'s scripted receptionist (the OpenAI stand-in's), to the last
text the user said; a reply longer than `max_tokens` stops there with `max_tokens`.
"""

import asyncio
import inspect
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from aiohttp import web
from loguru import logger

from standins.http_server import LocalServer, pause_unless_closed
from standins.openai_replies import Reply, reply_to

MODEL = "claude-haiku-4-5"
_TOKEN = re.compile(r"\s*\S+\s*")  # one token = one word with its surrounding spaces
_JSON_FRAGMENT = 8  # characters of tool input JSON per input_json_delta

Responder = Callable[[list[dict], list[dict] | None], Reply | Awaitable[Reply]]
"""Maps a request's `messages` and `tools` (None when absent) to a reply; may be async."""


def user_text(messages: list[dict]) -> str:
    """The text of the last user message that has any (tool results are not the user talking)."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content") or ""
        if isinstance(content, str):
            return content
        texts = [
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        ]
        if texts:
            return " ".join(texts)
    return ""


def scripted_reply(messages: list[dict], tools: list[dict] | None) -> Reply:
    """The shared receptionist, for a Messages request's messages and tools."""
    return reply_to(user_text(messages), {tool.get("name") for tool in tools or []})


@dataclass
class MessagesRequest:
    """One request as it reached the stand-in, and the HTTP status it got."""

    path: str
    query: str
    api_key: str | None
    version: str | None
    beta: str | None  # the anthropic-beta header
    body: dict | None = None
    status: int = 0
    index: int = 0  # its place among every request the stand-in received
    at: float = field(default_factory=time.monotonic)

    @property
    def system(self) -> str:
        """The system prompt, its text blocks joined."""
        system = (self.body or {}).get("system") or ""
        if isinstance(system, list):
            return "".join(block.get("text", "") for block in system)
        return system

    @property
    def messages(self) -> list[dict]:
        """The conversation sent."""
        return (self.body or {}).get("messages") or []

    @property
    def tools(self) -> list[dict]:
        """The tools offered."""
        return (self.body or {}).get("tools") or []


@dataclass
class MessageRecord:
    """How one answered (HTTP 200) request ended; a token is one text or tool-input delta."""

    stream: bool
    tokens_planned: int
    tokens_sent: int = 0
    stop_reason: str = ""
    completed: bool = False
    cancelled: bool = False
    first_token_at: float | None = None  # time.monotonic() when the first delta was written


class _Answer:
    """The Messages API wire shapes (events, or one body) of one reply to one request."""

    def __init__(self, body: dict, reply: Reply) -> None:
        self.id = f"msg_{uuid.uuid4().hex[:24]}"
        self.model = body.get("model") or MODEL
        words = f"{json.dumps(body.get('system') or '')} {json.dumps(body.get('messages'))}"
        self.input_tokens = len(words.split())
        budget = int(body.get("max_tokens") or 0)
        self.tokens = _TOKEN.findall(reply.text)[:budget]
        self.calls = [(f"toolu_{uuid.uuid4().hex[:24]}", call) for call in reply.tool_calls]
        self.stop_reason = "tool_use" if self.calls else "end_turn"
        if len(_TOKEN.findall(reply.text)) > budget:
            self.stop_reason, self.calls = "max_tokens", []
        self.headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}"}

    def token_count(self) -> int:
        """Text deltas plus tool-input fragments this reply streams."""
        return len(self.tokens) + sum(len(_fragments(call.arguments)) for _, call in self.calls)

    def _usage(self, output_tokens: int) -> dict:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
        }

    def _message(self, content: list[dict], stop_reason: str | None, output_tokens: int) -> dict:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {**self._usage(output_tokens), "service_tier": "standard"},
        }

    def events(self) -> Iterator[tuple[dict, bool]]:
        """Yield (event, counts as a token) in the order api.anthropic.com streams them."""
        yield {"type": "message_start", "message": self._message([], None, 1)}, False
        blocks = ([{"type": "text", "text": ""}] if self.tokens or not self.calls else []) + [
            {"type": "tool_use", "id": call_id, "name": call.name, "input": {}}
            for call_id, call in self.calls
        ]
        for index, block in enumerate(blocks):
            yield {"type": "content_block_start", "index": index, "content_block": block}, False
            if index == 0:
                yield {"type": "ping"}, False
            for delta in self._deltas(block):
                yield {"type": "content_block_delta", "index": index, "delta": delta}, True
            yield {"type": "content_block_stop", "index": index}, False
        delta = {"stop_reason": self.stop_reason, "stop_sequence": None}
        usage = self._usage(self.token_count())
        yield {"type": "message_delta", "delta": delta, "usage": usage}, False
        yield {"type": "message_stop"}, False

    def _deltas(self, block: dict) -> list[dict]:
        if block["type"] == "text":
            return [{"type": "text_delta", "text": token} for token in self.tokens]
        call = next(call for call_id, call in self.calls if call_id == block["id"])
        fragments = ["", *_fragments(call.arguments)]  # Anthropic opens with an empty fragment
        return [{"type": "input_json_delta", "partial_json": f} for f in fragments]

    def whole(self) -> dict:
        """The one `message` body of a non-streamed reply."""
        content = [{"type": "text", "text": "".join(self.tokens)}] if self.tokens else []
        content += [
            {"type": "tool_use", "id": call_id, "name": call.name, "input": call.arguments}
            for call_id, call in self.calls
        ]
        return self._message(content, self.stop_reason, self.token_count())


def _fragments(arguments: dict) -> list[str]:
    """The JSON of a tool's input cut into the small pieces the API streams (none for {})."""
    text = json.dumps(arguments, separators=(",", ":")) if arguments else ""
    return [text[i : i + _JSON_FRAGMENT] for i in range(0, len(text), _JSON_FRAGMENT)]


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _error(status: int, message: str) -> web.Response:
    request_id = f"req_{uuid.uuid4().hex[:24]}"
    body = {
        "type": "error",
        "error": {"type": _ERROR_TYPES[status], "message": message},
        "request_id": request_id,
    }
    return web.json_response(body, status=status, headers={"request-id": request_id})


def _invalid(body: object) -> str | None:
    """What Anthropic says about a request body it refuses, if it does."""
    if not isinstance(body, dict):
        return "There was an error parsing the body of your request."
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            return f"{name}: Field required"
    messages = body["messages"]
    for index, message in enumerate(messages):
        calls = [b["id"] for b in _blocks(message) if b.get("type") == "tool_use"]
        following = messages[index + 1] if index + 1 < len(messages) else {}
        answered = {
            b.get("tool_use_id") for b in _blocks(following) if b.get("type") == "tool_result"
        }
        missing = [call for call in calls if call not in answered]
        if missing:
            return (
                f"messages.{index + 1}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )
    return None


def _blocks(message: dict) -> list[dict]:
    content = message.get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _sse(event: dict) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


class AnthropicMessagesStandIn(LocalServer):
    """Serves `POST /v1/messages` like api.anthropic.com.

    Knobs are plain attributes and may be changed between requests: `responder` (default: the
    scripted receptionist), `ttft` (seconds before the first delta), `tokens_per_second` (None:
    as fast as possible), `fail_next` (answer the next N requests with `fail_status`: 529
    overloaded, 500 or 429), `api_key` (None: any key is accepted). Tests read `requests` and
    `responses`.
    """

    def __init__(
        self,
        *,
        responder: Responder = scripted_reply,
        ttft: float = 0.0,
        tokens_per_second: float | None = None,
        fail_next: int = 0,
        fail_status: int = 529,
        api_key: str | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.responder = responder
        self.ttft, self.tokens_per_second = ttft, tokens_per_second
        self.fail_next, self.fail_status = fail_next, fail_status
        self.api_key = api_key
        self.requests: list[MessagesRequest] = []
        self.responses: list[MessageRecord] = []
        self._ended = asyncio.Condition()

    def routes(self) -> list[web.RouteDef]:
        """The Messages route."""
        return [web.post("/v1/messages", self._messages)]

    async def wait_for_responses(
        self,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - a test helper's deadline
    ) -> list[MessageRecord]:
        """Wait until `count` responses have completed or been cancelled; return them all."""
        async with self._ended:
            await asyncio.wait_for(
                self._ended.wait_for(
                    lambda: sum(r.completed or r.cancelled for r in self.responses) >= count
                ),
                timeout,
            )
        return self.responses

    def _refusal(self, recorded: MessagesRequest) -> web.Response | None:
        """The error response this request gets before any work, if any."""
        if not recorded.api_key:
            return _error(401, "x-api-key header is required")
        if self.api_key is not None and recorded.api_key != self.api_key:
            return _error(401, "invalid x-api-key")
        if not recorded.version:
            return _error(400, "anthropic-version: header is required")
        if self.fail_next > 0:
            self.fail_next -= 1
            messages = {529: "Overloaded", 500: "Internal server error", 429: "Rate limited"}
            return _error(self.fail_status, messages[self.fail_status])
        problem = _invalid(recorded.body)
        return _error(400, problem) if problem else None

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        headers = request.headers
        try:  # read first: a test reading `requests` never sees one half-read
            body = await request.json()
        except ValueError:
            body = None
        recorded = MessagesRequest(
            path=request.path,
            query=request.query_string,
            api_key=headers.get("x-api-key"),
            version=headers.get("anthropic-version"),
            beta=headers.get("anthropic-beta"),
            index=len(self.requests),
            body=body,
        )
        self.requests.append(recorded)
        refusal = self._refusal(recorded)
        if refusal is not None:
            recorded.status = refusal.status
            return refusal
        assert recorded.body is not None
        recorded.status = 200
        reply = self.responder(recorded.messages, recorded.body.get("tools"))
        reply = await reply if inspect.isawaitable(reply) else reply
        answer = _Answer(recorded.body, reply)
        record = MessageRecord(bool(recorded.body.get("stream")), answer.token_count())
        record.stop_reason = answer.stop_reason
        self.responses.append(record)
        try:
            if record.stream:
                return await self._stream(request, answer, record)
            await asyncio.sleep(self.ttft)
            record.tokens_sent, record.completed = record.tokens_planned, True
            return web.json_response(answer.whole(), headers=answer.headers)
        finally:
            async with self._ended:
                self._ended.notify_all()

    async def _stream(
        self, request: web.Request, answer: _Answer, record: MessageRecord
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers=answer.headers)
        response.content_type = "text/event-stream"
        response.charset = "utf-8"
        await response.prepare(request)
        try:
            events = answer.events()
            await response.write(_sse(next(events)[0]))  # message_start goes out at once
            await pause_unless_closed(request, self.ttft)
            first_token = asyncio.get_running_loop().time()
            for event, is_token in events:
                if is_token and record.tokens_sent and self.tokens_per_second:
                    due = first_token + record.tokens_sent / self.tokens_per_second
                    await pause_unless_closed(request, due - asyncio.get_running_loop().time())
                await response.write(_sse(event))
                if is_token:
                    record.tokens_sent += 1
                    record.first_token_at = record.first_token_at or time.monotonic()
            await response.write_eof()
            record.completed = True
        except (ConnectionResetError, asyncio.CancelledError) as exc:
            # A client that closes the stream surfaces as a dropped transport or a failed write,
            # or as a cancelled handler when aiohttp cancels handlers (always on shutdown).
            record.cancelled = True
            logger.debug(f"messages stream closed by client after {record.tokens_sent} tokens")
            if isinstance(exc, asyncio.CancelledError):
                raise
        return response
