"""Keeps a playout pause inside the output transport, and notes what came out of it."""

from pipecat.frames.frames import Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from processors.frames import PlayoutPauseFrame
from processors.playback_state import Playback


class PlayoutPauseFilter(FrameProcessor):
    """Sits right after the output transport.

    | frame           | what it does                                                      |
    |-----------------|-------------------------------------------------------------------|
    | PlayoutPause ↓  | dropped: the assistant aggregator would end the reply, which may  |
    |                 | yet resume                                                        |
    | anything else   | passes; no longer in the transport (`Playback.in_transport`)      |
    """

    def __init__(self, playback: Playback, **kwargs):
        """Note into `playback`, the call's shared record."""
        super().__init__(**kwargs)
        self._playback = playback

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Drop a pause; pass anything else on."""
        if isinstance(frame, PlayoutPauseFrame):
            return  # not even to super(): as an interruption, it would drop our queued frames
        await super().process_frame(frame, direction)
        self._playback.in_transport.discard(frame.id)
        await self.push_frame(frame, direction)
