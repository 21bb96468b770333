"""A call's record as it grows: the call, its turns in order, its events, its usage."""

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime


@dataclass
class Stages:
    """Where a reply's latency went, in ms, stage by stage along the critical path.

    Each stage counts only the time it added after the one before it, so the five add up
    to the turn's `latency_ms`; work done ahead (a speculative reply) counts 0.
    """

    stt_ms: int  # the caller's voice ended → the final transcript
    turn_end_ms: int  # → the turn was declared over
    llm_ms: int  # → the reply's first LLM token
    tts_ms: int  # → the reply's first synthesized audio
    playout_ms: int  # → the first of it heard at the phone (its mark echoed)


@dataclass
class Turn:
    """One turn of the conversation: the caller's (words or keys) or the bot's."""

    seq: int
    speaker: str  # "caller" or "bot"
    text: str
    at_ms: int  # from the call's start
    heard: str | None = None  # bot: the words the caller heard
    interrupted: bool = False
    dtmf: str | None = None  # caller: the keys pressed
    latency_ms: int | None = None  # bot: the caller's end of speech → first audio heard
    stages: Stages | None = None

    def row(self) -> dict:
        """The turn as the `turns` table holds it."""
        row = asdict(self)
        row["stages"] = asdict(self.stages) if self.stages else None
        return row


@dataclass
class Event:
    """Something that happened besides the talk: a tool call, a transfer, a provider error."""

    seq: int
    kind: str  # "tool_call", "transfer", "error"
    name: str  # the tool, the transfer target, the provider
    at_ms: int
    detail: dict = field(default_factory=dict)  # arguments and result, or the error

    def row(self) -> dict:
        """The event as the `call_events` table holds it (results made JSON)."""
        row = asdict(self)
        row["detail"] = json.loads(json.dumps(self.detail, default=str))
        return row


@dataclass
class Usage:
    """What the call consumed of each provider."""

    llm_prompt_tokens: int = 0
    llm_completion_tokens: int = 0
    tts_characters: int = 0
    stt_audio_secs: float = 0.0

    def as_json(self) -> dict:
        """The `usage` object of the API."""
        return {
            "llm_tokens": self.llm_prompt_tokens + self.llm_completion_tokens,
            "llm_prompt_tokens": self.llm_prompt_tokens,
            "llm_completion_tokens": self.llm_completion_tokens,
            "tts_characters": self.tts_characters,
            "stt_audio_secs": round(self.stt_audio_secs, 2),
        }


@dataclass
class CallInfo:
    """The call itself: who, to whom, through which pipeline, when, how it ended."""

    call_sid: str
    direction: str  # "inbound" or "outbound"
    from_number: str
    to_number: str
    pipeline: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended_at: datetime | None = None
    end_reason: str | None = None
    usage: Usage = field(default_factory=Usage)

    def row(self) -> dict:
        """The call as the `calls` table holds it."""
        row = asdict(self)
        row["usage"] = self.usage.as_json()
        return row
