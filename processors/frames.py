"""Frames of our own: Twilio playout marks, sentence boundaries in TTS audio, ending a call."""

from dataclasses import dataclass

from pipecat.frames.frames import (
    ControlFrame,
    DataFrame,
    OutputTransportMessageFrame,
    SystemFrame,
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
class SentenceAudioEndFrame(DataFrame):
    """The TTS audio of one sentence ends here, in order with the audio frames."""

    text: str


@dataclass
class EndCallFrame(ControlFrame):
    """Hang up once everything queued before this has played to the caller."""

    reason: str = ""

    def __post_init__(self):
        super().__post_init__()
        self.interruptible = False
