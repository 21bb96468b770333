"""`[[transfer]]`: the people a call can be handed to, and the tool the LLM hands it with."""

import re
from typing import Literal

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TRANSFER_CALL = "transfer_call"
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")  # E.164
_SIP = re.compile(r"^sips?:[^@\s]+@[^@\s]+$")
_FALLBACKS = ("bot", "hangup")


def _address(value: str, key: str) -> str:
    if _PHONE.match(value) or _SIP.match(value):
        return value
    raise ValueError(
        f"{key} must be an E.164 number (+15551234567) or a SIP address (sip:name@host)"
    )


class TransferTarget(BaseModel):
    """A person the bot can hand the caller to (one `[[transfer]]` entry).

    `mode`: "cold" (the bot says `handoff`, then Twilio dials `to` in its place) or "warm"
    (the caller waits in a Twilio conference on `hold_music` while `to` is dialled and hears
    a summary of the call first). Unanswered within `ring_secs`: the caller hears
    `unanswered` and `fallback` follows: "bot" (back to the bot), "hangup", or a number or
    SIP address to dial instead (a voicemail line).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    to: str
    description: str = Field(min_length=1)
    mode: Literal["cold", "warm"] = "cold"
    caller_id: str | None = None  # unset: the number the caller called
    handoff: str = Field(default="Please hold while I put you through.", min_length=1)
    unanswered: str = Field(
        default="Sorry, nobody is answering right now. Can I help you with anything else?",
        min_length=1,
    )
    ring_secs: int = Field(default=20, ge=5, le=600)  # Twilio's own bounds for a dial
    fallback: str = "bot"
    hold_music: str | None = None  # warm: an MP3/WAV or TwiML URL; unset: Twilio's music

    @field_validator("to")
    @classmethod
    def _to(cls, value: str) -> str:
        return _address(value, "to")

    @field_validator("caller_id")
    @classmethod
    def _caller_id(cls, value: str | None) -> str | None:
        if value is not None and not _PHONE.match(value):
            raise ValueError("caller_id must be an E.164 number (+15551234567)")
        return value

    @field_validator("fallback")
    @classmethod
    def _fallback(cls, value: str) -> str:
        if value in _FALLBACKS:
            return value
        try:
            return _address(value, "fallback")
        except ValueError:
            raise ValueError(
                'fallback must be "bot", "hangup", or a number or SIP address to dial'
            ) from None

    @field_validator("hold_music")
    @classmethod
    def _hold_music(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("hold_music must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _warm_only(self) -> "TransferTarget":
        if self.hold_music and self.mode != "warm":
            raise ValueError('hold_music is for mode = "warm" (a cold transfer has no hold)')
        return self


def transfer_tool(targets: tuple[TransferTarget, ...]) -> FunctionSchema:
    """The `transfer_call` function, offering `targets` by name with their descriptions."""
    who = "; ".join(f"{t.name}: {t.description}" for t in targets)
    return FunctionSchema(
        name=TRANSFER_CALL,
        description="Hand the caller to a person. Call it when the caller asks for someone "
        "or needs what you cannot do; the bot says its hand-off line itself.",
        properties={
            "target": {
                "type": "string",
                "enum": [t.name for t in targets],
                "description": f"Who to transfer to. {who}",
            }
        },
        required=["target"],
    )
