"""Frames of our own: Twilio playout marks and pauses, sentence boundaries, ending a call."""

from dataclasses import dataclass

from pipecat.frames.frames import (
    ControlFrame,
    Frame,
    InterruptionFrame,
    OutputTransportMessageFrame,
    SystemFrame,
    TTSSpeakFrame,
)


@dataclass
class PlaybackMarkFrame(OutputTransportMessageFrame):
    """Ask Twilio to echo `message` (the mark's name) once the audio before it has played.

    It travels in order with the audio through the output transport's queue; the Twilio
    serializer turns it into a `mark` message.
    """


@dataclass
class PlaybackEchoFrame(SystemFrame):
    """Twilio echoed `mark`: the caller has heard the audio sent before it."""

    mark: str


@dataclass
class PlayoutPauseFrame(InterruptionFrame):
    """The caller may be barging in: stop the bot's audio at the phone now; it may resume.

    As an interruption, it makes the output transport drop its queued audio and marks and the
    serializer send Twilio `clear`; `PlayoutPauseFilter` stops it there, so the rest of the
    graph (the assistant aggregator) does not end the reply.
    """


@dataclass
class EndCallFrame(ControlFrame):
    """Hang up once everything queued before this has played to the caller."""

    reason: str = ""

    def __post_init__(self):
        super().__post_init__()
        self.interruptible = False


def spoken_ending(text: str, reason: str) -> list[Frame]:
    """The frames that end a call: say `text`, then hang up once it has played."""
    return [TTSSpeakFrame(text), EndCallFrame(reason=reason)]
