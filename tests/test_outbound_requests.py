"""What Twilio is asked to place a call, and how a call's end reads as an outcome."""

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from pipelines.declaration import load_declarations
from server.outbound import (
    OutboundRequest,
    create_arguments,
    outcome,
    parse_variables,
    variables_json,
)


def test_a_call_is_placed_with_the_signed_voice_url_callbacks_and_async_machine_detection():
    default = load_declarations()["default"]
    request = OutboundRequest(to="+15550123456", variables={"name": "Ada Lovelace"})
    arguments = create_arguments(
        request, pipeline=default, from_="+15550100000", public_url="https://bot.example.com"
    )
    url = urlsplit(arguments.pop("url"))
    assert (url.scheme, url.netloc, url.path) == ("https", "bot.example.com", "/voice")
    assert parse_qs(url.query) == {
        "pipeline": ["default"],
        "variables": ['{"name":"Ada Lovelace"}'],
    }
    assert arguments == {
        "to": "+15550123456",
        "from_": "+15550100000",
        "status_callback": "https://bot.example.com/twilio/status",
        "status_callback_event": ["answered", "completed"],
        "machine_detection": "DetectMessageEnd",
        "machine_detection_timeout": 30,
        "async_amd": "true",
        "async_amd_status_callback": "https://bot.example.com/twilio/amd",
    }


@pytest.mark.parametrize(
    ("status", "answered_by", "expected"),
    [
        ("in-progress", "human", None),
        ("ringing", None, None),
        ("completed", "human", "answered"),
        ("completed", "unknown", "answered"),
        ("completed", None, "answered"),
        ("completed", "machine_end_beep", "voicemail"),
        ("completed", "machine_end_silence", "voicemail"),
        ("completed", "fax", "failed"),
        ("busy", None, "busy"),
        ("no-answer", None, "no answer"),
        ("failed", None, "failed"),
        ("canceled", None, "failed"),
    ],
)
def test_a_calls_outcome_is_read_from_its_status_and_who_answered(status, answered_by, expected):
    assert outcome(status, answered_by) == expected


def test_variables_travel_as_compact_json_and_a_malformed_parameter_reads_as_none():
    text = variables_json({"name": "Zoë", "id": "7"})
    assert text == '{"id":"7","name":"Zoë"}'
    assert parse_variables(text) == {"id": "7", "name": "Zoë"}
    assert parse_variables("not json") == parse_variables("[1]") == parse_variables(None) == {}
    with pytest.raises(ValueError, match="at most 400"):
        variables_json({"long": "x" * 400})
    assert json.loads(variables_json({})) == {}
