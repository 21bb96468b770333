import xml.etree.ElementTree as ET

from twilio.request_validator import RequestValidator

from server.twilio_urls import media_stream_url, webhook_url
from server.twiml import connect_stream


def test_stream_url_follows_the_public_scheme():
    assert media_stream_url("https://bot.example.com") == "wss://bot.example.com/media"
    assert media_stream_url("http://127.0.0.1:8765") == "ws://127.0.0.1:8765/media"
    assert media_stream_url("https://example.com/bot/") == "wss://example.com/bot/media"
    token = "CA1.1700000000.abc_-"
    assert (
        media_stream_url("https://bot.example.com", token) == f"wss://bot.example.com/media/{token}"
    )


def test_webhook_url_keeps_the_query_string_twilio_signed():
    assert webhook_url("https://bot.example.com", "/voice") == "https://bot.example.com/voice"
    assert webhook_url("https://b.io/", "/voice", "a=1") == "https://b.io/voice?a=1"


def test_twiml_connects_a_stream_with_parameters():
    twiml = connect_stream("wss://bot.example.com/media", {"caller": "+1555", "empty": ""})
    stream = ET.fromstring(twiml).find("./Connect/Stream")
    assert stream.get("url") == "wss://bot.example.com/media"
    assert [(p.get("name"), p.get("value")) for p in stream] == [("caller", "+1555")]


def test_twiml_parameters_stay_under_twilios_limit():
    twiml = connect_stream("wss://x/media", {"caller": "9" * 800})
    (parameter,) = ET.fromstring(twiml).find("./Connect/Stream")
    assert len(parameter.get("name") + parameter.get("value")) < 500


def test_twilios_documented_signature_vector_validates():
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert RequestValidator("12345").validate(url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
