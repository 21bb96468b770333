"""Twilio Media Streams messages: what is read from Twilio and what is written to it."""

import base64
import json

import pytest

from telephony.media_streams import Dtmf, MarkEcho, Media, MediaStreamMessages, Stop
from telephony.mulaw import pcm_to_ulaw, ulaw_to_pcm

EVERY_BYTE = bytes(range(256))


def media(payload: str) -> str:
    return json.dumps({"event": "media", "streamSid": "MZ1", "media": {"payload": payload}})


def test_media_is_read_as_the_bytes_twilio_sent_and_as_8khz_pcm():
    event = MediaStreamMessages("MZ1").read(media(base64.b64encode(EVERY_BYTE).decode()))
    assert event == Media(EVERY_BYTE, ulaw_to_pcm(EVERY_BYTE))
    assert len(event.pcm) == 2 * len(EVERY_BYTE)  # 16-bit, nothing resampled


def test_re_encoding_decoded_mulaw_loses_only_negative_zero():
    # Why the bytes travel with the PCM: G.711 decodes 0x7F ("negative zero") and 0xFF to 0.
    assert pcm_to_ulaw(ulaw_to_pcm(EVERY_BYTE)) == EVERY_BYTE.replace(b"\x7f", b"\xff")


def test_bot_audio_is_written_as_mulaw_media_for_the_stream():
    pcm = b"\x10\x00" * 320
    message = json.loads(MediaStreamMessages("MZ9").media(pcm))
    assert message["event"] == "media" and message["streamSid"] == "MZ9"
    assert base64.b64decode(message["media"]["payload"]) == pcm_to_ulaw(pcm)


def test_marks_and_clear_are_written_as_twilio_documents_them():
    messages = MediaStreamMessages("MZ9")
    assert json.loads(messages.mark("3:800")) == {
        "event": "mark",
        "streamSid": "MZ9",
        "mark": {"name": "3:800"},
    }
    assert json.loads(messages.clear()) == {"event": "clear", "streamSid": "MZ9"}


def test_marks_keys_and_stop_are_read_as_their_events():
    messages = MediaStreamMessages("MZ1")
    echo = {"event": "mark", "streamSid": "MZ1", "mark": {"name": "0:160"}}
    dtmf = {"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": "5"}}
    assert messages.read(json.dumps(echo)) == MarkEcho("0:160")
    assert messages.read(json.dumps(dtmf)) == Dtmf("5")
    assert messages.read(json.dumps({"event": "stop", "stop": {}})) == Stop()


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        ("not json at all", "not JSON"),
        (json.dumps({"no": "event"}), "without an 'event'"),
        (json.dumps({"event": "surprise"}), "unknown event 'surprise'"),
        (json.dumps({"event": "start"}), "a second 'start'"),
        (media("!!!not base64!!!"), "not valid base64"),
        (json.dumps({"event": "media", "media": {}}), "without media.payload"),
        (json.dumps({"event": "mark", "mark": {"name": 7}}), "without mark.name"),
        (json.dumps({"event": "dtmf", "dtmf": {"digit": "x"}}), "digit 'x'"),
        ("x" * 1_000_000, "1000000-byte message"),
        (b"\x00\x01", "binary message"),
        ('{"event": "media", "x": ' + "[" * 30_000 + "]" * 30_000 + "}", "nested too deeply"),
    ],
)
def test_malformed_input_is_dropped_with_a_warning_naming_the_problem(
    message, complaint, log_lines
):
    assert MediaStreamMessages("MZ1").read(message) is None
    assert len(log_lines) == 1 and complaint in log_lines[0]


def test_a_flood_of_bad_messages_logs_a_few_lines_not_thousands(log_lines):
    messages = MediaStreamMessages("MZ1")
    for _ in range(1000):
        messages.read("garbage")
    assert 3 < len(log_lines) <= 13
    assert "(1000 so far)" in log_lines[-1]
