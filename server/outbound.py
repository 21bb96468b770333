"""Outbound calls: what `POST /calls` accepts, what Twilio is asked, and how a call ended."""

import json
from typing import Literal
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field

from pipelines.declaration import Declaration
from pipelines.routing import PIPELINE_PARAMETER
from server.answered_by import answerer
from server.twilio_urls import AMD_PATH, STATUS_PATH, VOICE_PATH, webhook_url

VARIABLES_PARAMETER = "variables"  # the call's variables, JSON, on /voice and in the stream
# The variables travel as one <Parameter> (under 500 characters with its name).
MAX_VARIABLES_CHARS = 400
FINAL_STATUSES = ("completed", "busy", "no-answer", "failed", "canceled")
Outcome = Literal["answered", "voicemail", "busy", "no answer", "failed"]


class OutboundRequest(BaseModel):
    """The body of `POST /calls`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    to: str = Field(pattern=r"^(\+[1-9][0-9]{6,14}|sip:\S+@\S+)$")  # E.164 or a SIP address
    pipeline: str | None = None  # default: the server's PIPELINE
    variables: dict[str, str] = Field(default_factory=dict)


def create_arguments(
    request: OutboundRequest, *, pipeline: Declaration, from_: str, public_url: str
) -> dict:
    """`calls.create`'s arguments for `request`, placed with `pipeline`.

    Twilio fetches the same signed `/voice` an incoming call does (the pipeline and the
    variables in its query string, which Twilio signs too), reports the call's progress to
    `/twilio/status` and, listening to the callee while the stream runs, who answered to
    `/twilio/amd` once a machine's greeting has ended.
    """
    query = {PIPELINE_PARAMETER: pipeline.name}
    if request.variables:
        query[VARIABLES_PARAMETER] = variables_json(request.variables)
    return {
        "to": request.to,
        "from_": from_,
        "url": webhook_url(public_url, VOICE_PATH, urlencode(query)),
        "status_callback": webhook_url(public_url, STATUS_PATH),
        "status_callback_event": ["answered", "completed"],
        "machine_detection": "DetectMessageEnd",
        "machine_detection_timeout": pipeline.outbound.machine_detection_timeout_secs,
        "async_amd": "true",
        "async_amd_status_callback": webhook_url(public_url, AMD_PATH),
    }


def variables_json(variables: dict[str, str]) -> str:
    """The variables as they travel with the call; ValueError if too long to."""
    text = json.dumps(variables, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    if len(text) > MAX_VARIABLES_CHARS:
        raise ValueError(f"variables take {len(text)} characters as JSON; at most 400")
    return text


def parse_variables(text: str | None) -> dict[str, str]:
    """The variables a stream parameter carries ({} if none or malformed)."""
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def outcome(status: str, answered_by: str | None) -> Outcome | None:
    """How a call ended, from its final status and who answered; None while it goes on."""
    if status not in FINAL_STATUSES:
        return None
    if status in ("busy", "failed"):
        return status
    if status == "no-answer":
        return "no answer"
    if status == "canceled":
        return "failed"
    kind = answerer(answered_by)
    return "answered" if kind == "person" else "voicemail" if kind == "machine" else "failed"
