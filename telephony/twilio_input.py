"""The Twilio transport's input: the caller's audio and key presses, and Twilio's mark echoes."""

from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    CancelWorkerFrame,
    ClientConnectedFrame,
    EndFrame,
    InputDTMFFrame,
    StartFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_input import BaseInputTransport

from telephony.frames import MulawAudioFrame
from telephony.line import PhoneLine, TwilioParams
from telephony.media_streams import SAMPLE_RATE, Dtmf, MarkEcho, Media, Stop
from telephony.twilio_output import TwilioOutputTransport

CALLER_HUNG_UP = "the caller hung up"


class TwilioInputTransport(BaseInputTransport):
    """Reads the Media Stream until the caller hangs up.

    | Twilio sends          | what it does                                                    |
    |-----------------------|-----------------------------------------------------------------|
    | (the pipeline starts) | ClientConnected ↓                                               |
    | `media`               | MulawAudioFrame ↓ (8 kHz PCM and Twilio's μ-law bytes, 40 ms)    |
    | `dtmf`                | InputDTMFFrame ↓                                                |
    | `mark`                | to the output, which learns what the caller heard               |
    | `stop`, or the socket | CancelWorker ↑ (the pipeline ends); `caller_hung_up`            |
    |   closes under us     |                                                                 |
    | anything malformed    | dropped with one log line; the call goes on                     |

    The socket is read until `stop` or its close, after End too: while the output plays the
    last audio out, Twilio's echoes still come here.
    """

    def __init__(
        self, line: PhoneLine, params: TwilioParams, output: TwilioOutputTransport, **kwargs
    ):
        """Read `line`; echoes go to `output`."""
        super().__init__(params, **kwargs)
        self._line = line
        self._output = output
        self._reader = None
        self._listening = False  # the caller's audio and keys go into the pipeline
        self._frame_bytes = round(params.audio_in_frame_secs * SAMPLE_RATE)  # of μ-law
        self._ulaw = bytearray()  # the caller's audio not yet in a frame
        self._pcm = bytearray()

    async def start(self, frame: StartFrame):
        """Start reading the stream."""
        await super().start(frame)
        await self.set_transport_ready(frame)
        await self.push_frame(ClientConnectedFrame())
        self._listening = True
        if not self._reader:
            self._reader = self.create_task(self._read(), name="twilio-read")

    async def stop(self, frame: EndFrame):
        """Stop passing the caller's audio on; echoes are still read until the line closes."""
        self._listening = False
        await super().stop(frame)

    async def cancel(self, frame: CancelFrame):
        """Stop reading."""
        self._listening = False
        await super().cancel(frame)
        await self._stop_reading()

    async def cleanup(self):
        """Stop reading."""
        await super().cleanup()
        await self._stop_reading()

    async def _stop_reading(self) -> None:
        if self._reader:
            task, self._reader = self._reader, None
            await self.cancel_task(task)

    async def _read(self) -> None:
        messages = self._line.messages
        async for data in self._line.receive():
            event = messages.read(data)
            if isinstance(event, Media):
                await self._caller_audio(event)
            elif isinstance(event, MarkEcho):
                await self._output.heard(event.name)
            elif isinstance(event, Dtmf) and self._listening:
                await self._push_caller_audio()  # the sound before the key goes first
                await self.push_frame(InputDTMFFrame(event.digit))
            elif isinstance(event, Stop):
                # Nothing follows `stop`, not even a mark echo; the call ends here, without
                # waiting for the socket's close (which a busy loop may deliver much later).
                logger.info("Twilio stopped the stream: the caller hung up")
                break
        await self._hung_up()

    async def _caller_audio(self, media: Media) -> None:
        if not self._listening:
            return
        self._ulaw += media.ulaw
        self._pcm += media.pcm
        if len(self._ulaw) >= self._frame_bytes:
            await self._push_caller_audio()

    async def _push_caller_audio(self) -> None:
        if not self._ulaw:
            return
        frame = MulawAudioFrame(
            audio=bytes(self._pcm),
            sample_rate=SAMPLE_RATE,
            num_channels=1,
            ulaw=bytes(self._ulaw),
        )
        self._ulaw.clear()
        self._pcm.clear()
        await self.push_audio_frame(frame)

    async def _hung_up(self) -> None:
        """The stream ended: if not by us, the caller hung up, and the pipeline ends now."""
        self._reader = None
        if not self._line.ended():
            return  # we closed it: the call was ending anyway
        await self._output.caller_gone()
        await self.push_frame(CancelWorkerFrame(reason=CALLER_HUNG_UP), FrameDirection.UPSTREAM)
