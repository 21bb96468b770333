"""Hands the call to a person once the caller has heard the hand-off line."""

from collections.abc import Awaitable, Callable

from pipecat.frames.frames import Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from telephony.frames import HandOffFrame

HandOffHandler = Callable[[str], Awaitable[None]]
"""Hands the call to the transfer target it is given by name (Twilio REST, in the server)."""


class HandOff(FrameProcessor):
    """After the transport: runs `hand_off(target)` for each `HandOffFrame` that reaches it.

    | frame in                         | out                                            |
    |----------------------------------|------------------------------------------------|
    | HandOff ↓ (passed on by the      | `hand_off(frame.target)` awaited; not passed on |
    |   transport once the audio       |                                                |
    |   before it was heard)           |                                                |
    | anything else                    | passed on                                      |

    Placed after the transport, it acts only when the caller has heard the hand-off line:
    Twilio takes the call over at once, and a call redirected earlier would cut it.
    """

    def __init__(self, hand_off: HandOffHandler, **kwargs):
        """`hand_off`: what hands the call over to the named target."""
        super().__init__(**kwargs)
        self._hand_off = hand_off

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Hand over on a `HandOffFrame`; pass everything else on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, HandOffFrame) and direction == FrameDirection.DOWNSTREAM:
            await self._hand_off(frame.target)
            return
        await self.push_frame(frame, direction)
