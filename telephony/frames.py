"""Frames of the phone line: what services tell the Twilio transport, what it tells the graph."""

from dataclasses import dataclass, field

from pipecat.frames.frames import ControlFrame, DataFrame, InputAudioRawFrame, SystemFrame


@dataclass
class MulawAudioFrame(InputAudioRawFrame):
    """The caller's audio as 8 kHz PCM, and as the μ-law bytes Twilio sent.

    A μ-law service (OpenAI Realtime) takes `ulaw` as it came: re-encoding the PCM is not
    exact, since G.711 decodes both 0xFF and 0x7F to 0.
    """

    ulaw: bytes = b""


@dataclass
class SentenceEndFrame(DataFrame):
    """The audio before this frame ends the sentence `text` (whose TTSTextFrame came first).

    A TTS service that knows where each sentence's audio ends (it flushes per sentence, or
    fetches one sentence per request) says so in order with its audio, and the transport
    times what the caller heard by it. Without it, a sentence is timed in proportion to
    the audio of its reply.
    """

    text: str


@dataclass
class ReplyCutFrame(SystemFrame):
    """The caller cut the bot's reply short; the transport says what they heard of it.

    Pushed both ways right after the transport handled the interruption: downstream it
    makes the context honest, upstream it tells a speech-to-speech service where to cut
    its own record of the reply.

    Parameters:
        heard: the words the caller heard (empty if none).
        spoken: every word of the reply the transport had been given.
        heard_ms: how much of the reply's audio the caller heard.
    """

    heard: str
    spoken: str
    heard_ms: float


@dataclass
class HandOffFrame(ControlFrame):
    """Hand the call to the transfer target `target` once the audio before it has been heard.

    It follows the hand-off line down the pipeline; the transport passes it on when the
    caller has heard that line, and `HandOff` after the transport acts on it. No barge-in
    drops it: the call is being handed over.
    """

    target: str
    interruptible: bool = field(default=False, init=False)
