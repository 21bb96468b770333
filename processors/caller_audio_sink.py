"""Stops the caller's audio once turn detection has heard it."""

from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


class CallerAudioSink(FrameProcessor):
    """Drops `InputAudioRawFrame`s; everything else passes.

    Pipecat passes the caller's audio down the whole pipeline (LLM, TTS, output, …), where
    nothing reads it: 50 frames a second through every processor's queue. Placed after the
    user aggregator (the last reader: VAD and turn detection), it ends that trip.
    """

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Pass on anything but the caller's audio."""
        await super().process_frame(frame, direction)
        if not isinstance(frame, InputAudioRawFrame):
            await self.push_frame(frame, direction)
