"""The TwiML of a transfer, literal in, literal out."""

from pipelines.transfer import TransferTarget
from server import transfer_twiml
from server.stream_tokens import StreamTokens

MANAGER = TransferTarget(name="manager", to="+15555550100", description="The manager.")
XML = '<?xml version="1.0" encoding="UTF-8"?>'


def test_a_cold_transfer_dials_the_target_with_its_caller_id_ring_time_and_action():
    twiml = transfer_twiml.cold(MANAGER, "+15557650000", "https://bot.example.com/t?x=1")
    assert twiml == (
        f'{XML}<Response><Dial action="https://bot.example.com/t?x=1" callerId="+15557650000" '
        'method="POST" timeout="20"><Number>+15555550100</Number></Dial></Response>'
    )


def test_a_sip_target_is_dialled_as_sip():
    desk = MANAGER.model_copy(update={"to": "sip:desk@pbx.example.com"})
    assert "<Sip>sip:desk@pbx.example.com</Sip>" in transfer_twiml.cold(desk, "+1555", "u")


def test_the_caller_holds_in_a_conference_they_do_not_start():
    assert transfer_twiml.hold("transfer-CA1", "https://m.example.com/h.mp3") == (
        f'{XML}<Response><Dial><Conference beep="false" endConferenceOnExit="true" '
        'startConferenceOnEnter="false" waitUrl="https://m.example.com/h.mp3">transfer-CA1'
        "</Conference></Dial></Response>"
    )
    assert "waitUrl" not in transfer_twiml.hold("transfer-CA1", None), "Twilio's own music"


def test_the_person_hears_the_summary_then_starts_the_conference():
    assert transfer_twiml.whisper("The caller wants a table.", "transfer-CA1", "en") == (
        f'{XML}<Response><Say language="en">The caller wants a table.</Say><Dial><Conference '
        'endConferenceOnExit="true" startConferenceOnEnter="true">transfer-CA1</Conference>'
        "</Dial></Response>"
    )


def test_nobody_answering_goes_back_to_the_bot_or_to_the_fallback():
    back = "https://bot.example.com/voice?pipeline=default&transfer=manager&leg=ab"
    assert transfer_twiml.fallback(MANAGER, back, "en") == (
        f'{XML}<Response><Redirect method="POST">{back.replace("&", "&amp;")}</Redirect></Response>'
    )
    hangup = MANAGER.model_copy(update={"fallback": "hangup"})
    assert transfer_twiml.fallback(hangup, back, "en").endswith(
        f'<Say language="en">{MANAGER.unanswered}</Say><Hangup /></Response>'
    )
    voicemail = MANAGER.model_copy(update={"fallback": "+15555550199"})
    assert transfer_twiml.fallback(voicemail, back, "en").endswith(
        "<Dial><Number>+15555550199</Number></Dial></Response>"
    )


async def test_a_call_back_from_a_transfer_opens_its_stream_as_a_new_leg():
    claimed: set[str] = set()

    async def claim(stream: str, expires: float) -> bool:
        fresh = stream not in claimed
        claimed.add(stream)
        return fresh

    tokens = StreamTokens("token", claim=claim)
    first = tokens.issue("CA1")
    back = tokens.issue("CA1", "manager-ab12")
    assert await tokens.redeem(first) == "CA1"
    assert await tokens.redeem(back) == "CA1", "the same call, its second stream"
    assert claimed == {"CA1", "CA1~manager-ab12"}
