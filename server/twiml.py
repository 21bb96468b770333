"""TwiML that connects an incoming call to our Media Streams WebSocket."""

from twilio.twiml.voice_response import Connect, Stream, VoiceResponse

# Twilio rejects a <Parameter> whose name plus value reach 500 characters.
_MAX_PARAMETER = 499


def connect_stream(stream_url: str, parameters: dict[str, str]) -> str:
    """`<Connect><Stream url=…>` with one `<Parameter>` per non-empty entry."""
    stream = Stream(url=stream_url)
    for name, value in parameters.items():
        if value:
            stream.parameter(name=name, value=value[: _MAX_PARAMETER - len(name)])
    connect = Connect()
    connect.append(stream)
    response = VoiceResponse()
    response.append(connect)
    return response.to_xml()


def busy(message: str, language: str = "en") -> str:
    """`<Say>` `message` in `language`, then `<Hangup/>`: for a call the server cannot take."""
    response = VoiceResponse()
    response.say(message, language=language)
    response.hangup()
    return response.to_xml()
