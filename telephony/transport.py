"""A Twilio Media Streams call as a pipecat transport: the phone line, both ways."""

from fastapi import WebSocket
from pipecat.transports.base_transport import BaseTransport

from telephony.line import PhoneLine, TwilioParams
from telephony.twilio_input import TwilioInputTransport
from telephony.twilio_output import TwilioOutputTransport


class TwilioTransport(BaseTransport):
    """One call's Media Stream, after its `start` message: `input()` and `output()`.

    The input turns the caller's audio and key presses into frames; the output plays the bot's
    audio, knows from Twilio's marks what the caller has heard, and tells the graph (see
    `TwilioOutputTransport`). When the caller hangs up, the input cancels the pipeline and
    `caller_hung_up` says so.
    """

    def __init__(self, websocket: WebSocket, stream_sid: str, params: TwilioParams | None = None):
        """The call on `websocket` (accepted, past `start`) whose stream is `stream_sid`."""
        super().__init__()
        self.params = params or TwilioParams()
        self.line = PhoneLine(websocket, stream_sid)
        self._output = TwilioOutputTransport(self.line, self.params)
        self._input = TwilioInputTransport(self.line, self.params, self._output)

    def input(self) -> TwilioInputTransport:
        """The caller's side: audio and key presses in."""
        return self._input

    def output(self) -> TwilioOutputTransport:
        """The bot's side: audio out, and what the caller heard."""
        return self._output

    @property
    def caller_hung_up(self) -> bool:
        """Whether the caller ended the call (rather than us)."""
        return self.line.caller_hung_up
