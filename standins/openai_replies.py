"""What the OpenAI stand-in answers (text, tool calls, a scripted receptionist), on the wire.

The receptionist (`reply_to`) is shared with the other LLM stand-ins (Anthropic).
"""

import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterator
from dataclasses import dataclass, field

MODEL = "gpt-4.1-mini"
LONG_REPLY = (
    "Thank you for calling the Green Olive, the finest little restaurant by the harbour. "
    "Tonight our chef is preparing a slow roasted lamb with rosemary potatoes and a fresh salad. "
    "We also have a vegetarian risotto with wild mushrooms that our regulars love. "
    "If you would like a table, I can check what we have free for you right away."
)
UNCLEAR = "Sorry, could you say that again?"
_TOKEN = re.compile(r"\s*\S+\s*")  # one token = one word with its surrounding spaces

_SCRIPT = [
    (
        r"book a table",
        "Of course. A table for two tomorrow at seven. May I have a name for the booking?",
    ),
    (r"\bopen", "We open at nine on Saturday and close at eleven."),
    (r"\bcancel", "No problem. Which reservation would you like to change?"),
    (r"\byes\b", "Great, you're all set."),
    (r"^the caller pressed", "Thank you. I have noted the number you entered."),  # keypad
    # The Spanish receptionist (tests/data/es).
    (r"reservar una mesa", "Claro. Una mesa para dos mañana a las siete. ¿A nombre de quién?"),
    (r"\babren\b", "Abrimos a las nueve el sábado y cerramos a las once."),
]
_GOODBYE = re.compile(r"\bgoodbye\b|\bthat's all\b|\badiós\b|\beso es todo\b")
_MANAGER = re.compile(r"\bmanager\b")
_SUMMARY_REQUEST = re.compile(r"^summari[sz]e this call\b", re.IGNORECASE)
NO_TRANSFER = "Sorry, I can't put you through to anyone from here."


@dataclass
class ToolCall:
    """A function call the model asks the client to make."""

    name: str
    arguments: dict = field(default_factory=dict)


@dataclass
class Reply:
    """What the model answers: text, tool calls, or both."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)


Responder = Callable[[list[dict], list[dict] | None], Reply | Awaitable[Reply]]
"""Maps a request's `messages` and `tools` (None when absent) to a reply; may be async."""


def last_user_text(messages: list[dict]) -> str:
    """Text of the last user message ("" if none); content may be a string or a list of parts."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content") or ""
            if isinstance(content, list):
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return content
    return ""


def scripted_reply(messages: list[dict], tools: list[dict] | None) -> Reply:
    """The receptionist of `reply_to`, for a chat-completions request's messages and tools."""
    said = last_user_text(messages)
    if _SUMMARY_REQUEST.search(said):
        return Reply(text=summary_of(messages))
    offered = {tool.get("function", {}).get("name") for tool in tools or []}
    return reply_to(said, offered)


def summary_of(messages: list[dict]) -> str:
    """A summary of the call for a person taking it over: what the caller said, verbatim."""
    said = [str(m["content"]) for m in messages if m.get("role") == "user"][:-1]
    return "The caller said: " + " ".join(said)


def reply_to(said: str, offered: Collection[str | None]) -> Reply:
    """A tiny restaurant-booking receptionist keyed on what the caller last said.

    Keywords are matched case-insensitively, first match wins: "book a table", "open", "cancel",
    "yes" (and two in Spanish), then "goodbye"/"that's all"/"adiós", which calls the `end_call`
    tool when it is `offered` and says "Goodbye!" otherwise, then "manager", which calls
    `transfer_call` to target "manager" when it is offered. Anything else asks the caller to
    repeat. Every stand-in LLM answers with it, whatever its wire format. (An OpenAI request
    asking to "Summarize this call" gets the caller's words: `scripted_reply`.)
    """
    said = said.lower().replace("\u2019", "'")
    for pattern, answer in _SCRIPT:
        if re.search(pattern, said):
            return Reply(text=answer)
    if _GOODBYE.search(said):
        if "end_call" in offered:
            return Reply(tool_calls=[ToolCall("end_call")])
        return Reply(text="Goodbye!")
    if _MANAGER.search(said):
        if "transfer_call" in offered:
            return Reply(tool_calls=[ToolCall("transfer_call", {"target": "manager"})])
        return Reply(text=NO_TRANSFER)
    return Reply(text=UNCLEAR)


def fixed_reply(text: str = LONG_REPLY) -> Responder:
    """A responder that always answers `text`; by default a long four-sentence reply."""
    return lambda messages, tools: Reply(text=text)


class Completion:
    """The chat-completion wire shapes (chunks, or one body) of one reply to one request."""

    def __init__(self, body: dict, reply: Reply) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model = body.get("model") or MODEL
        self.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self.prompt_tokens = sum(
            len(str(m.get("content") or "").split()) for m in body.get("messages", [])
        )
        self.tokens = _TOKEN.findall(reply.text)
        self.calls = [(f"call_{uuid.uuid4().hex[:24]}", c) for c in reply.tool_calls]
        self.finish = "tool_calls" if self.calls else "stop"
        self.headers = {"x-request-id": f"req_{uuid.uuid4().hex}", "openai-model": self.model}

    def token_count(self) -> int:
        """Content chunks plus tool-argument fragments this reply streams."""
        return len(self.tokens) + sum(len(_fragments(c.arguments)) for _, c in self.calls)

    def _usage(self) -> dict:
        done = self.token_count()
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": done,
            "total_tokens": self.prompt_tokens + done,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }

    def _chunk(self, delta: dict, finish: str | None = None) -> dict:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**self._envelope("chat.completion.chunk"), "choices": [choice]}

    def _envelope(self, kind: str) -> dict:
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": "fp_standin",
        }

    def chunks(self) -> Iterator[tuple[dict, bool]]:
        """Yield (chunk, counts as a token) in the order api.openai.com streams them."""
        role = {"role": "assistant", "content": "" if self.tokens or not self.calls else None}
        if self.tokens or not self.calls:
            yield self._chunk({**role, "refusal": None}), False
            role = {}
        for token in self.tokens:
            yield self._chunk({"content": token}), True
        for index, (call_id, call) in enumerate(self.calls):
            # A reply that only calls tools carries the role in its first tool-call chunk.
            yield self._chunk({**role, "tool_calls": [_head(index, call_id, call.name)]}), False
            role = {}
            for fragment in _fragments(call.arguments):
                yield self._chunk({"tool_calls": [_arguments(index, fragment)]}), True
        yield self._chunk({}, self.finish), False
        if self.include_usage:
            usage = {"choices": [], "usage": self._usage()}
            yield {**self._envelope("chat.completion.chunk"), **usage}, False

    def whole(self) -> dict:
        """The one `chat.completion` body of a non-streamed reply."""
        message = {"role": "assistant", "content": "".join(self.tokens) or None, "refusal": None}
        if self.calls:
            message["tool_calls"] = [
                {
                    "id": i,
                    "type": "function",
                    "function": {
                        "name": c.name,
                        "arguments": json.dumps(c.arguments, separators=(",", ":")),
                    },
                }
                for i, c in self.calls
            ]
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish}
        return {**self._envelope("chat.completion"), "choices": [choice], "usage": self._usage()}


def _fragments(arguments: dict, size: int = 8) -> list[str]:
    """The JSON of `arguments` cut into the small pieces the API streams."""
    text = json.dumps(arguments, separators=(",", ":"))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _head(index: int, call_id: str, name: str) -> dict:
    """The first delta of a streamed tool call: its id, type and name."""
    return {
        "index": index,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": ""},
    }


def _arguments(index: int, fragment: str) -> dict:
    """A later delta of a streamed tool call: one fragment of its JSON arguments."""
    return {"index": index, "function": {"arguments": fragment}}
