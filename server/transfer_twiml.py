"""TwiML of a transfer: dial the person, wait in a conference, whisper, or fall back."""

from twilio.twiml.voice_response import Conference, Dial, VoiceResponse

from pipelines.transfer import TransferTarget


def _dial_to(dial: Dial, to: str) -> Dial:
    """`to` as the `<Number>` or `<Sip>` noun of `dial`."""
    if to.startswith(("sip:", "sips:")):
        dial.sip(to)
    else:
        dial.number(to)
    return dial


def cold(target: TransferTarget, caller_id: str, action: str) -> str:
    """`<Dial>` the target in the bot's place; Twilio posts how it went to `action`."""
    response = VoiceResponse()
    dial = Dial(caller_id=caller_id, timeout=target.ring_secs, action=action, method="POST")
    response.append(_dial_to(dial, target.to))
    return response.to_xml()


def hold(room: str, hold_music: str | None) -> str:
    """The caller waits in conference `room` on hold music until the person joins it.

    The caller does not start the conference (they hear `hold_music`, or Twilio's own);
    when they leave it, it ends.
    """
    conference = Conference(
        room,
        start_conference_on_enter=False,
        end_conference_on_exit=True,
        beep=False,
        **({"wait_url": hold_music} if hold_music else {}),
    )
    return _in_dial(conference)


def whisper(summary: str, room: str, language: str) -> str:
    """What the person hears on answering: the summary, then they join (and start) `room`."""
    response = VoiceResponse()
    response.say(summary, language=language)
    conference = Conference(room, start_conference_on_enter=True, end_conference_on_exit=True)
    response.append(Dial().append(conference))
    return response.to_xml()


def fallback(target: TransferTarget, back_to_bot: str, language: str) -> str:
    """Nobody answered: back to the bot at `back_to_bot` (it tells the caller), or its fallback.

    `back_to_bot`: the webhook URL that reconnects the call to the bot's stream.
    """
    response = VoiceResponse()
    if target.fallback == "bot":
        response.redirect(back_to_bot, method="POST")
        return response.to_xml()
    response.say(target.unanswered, language=language)
    if target.fallback == "hangup":
        response.hangup()
    else:
        response.append(_dial_to(Dial(), target.fallback))
    return response.to_xml()


def _in_dial(conference: Conference) -> str:
    response = VoiceResponse()
    response.append(Dial().append(conference))
    return response.to_xml()
