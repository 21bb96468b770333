"""Ends a call that has lasted its maximum length."""

import asyncio

from loguru import logger
from pipecat.frames.frames import CancelFrame, EndFrame, EndWorkerFrame, Frame, StartFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from telephony.lifecycle import CallLifecycle, spoken_ending

TIME_UP_REASON = "the call reached its time limit"
# Between the interruption and the line: a TTS asked to speak in the same instant as it is
# interrupted lost the line's first ~120 ms (Deepgram TTS stand-in, measured), as the audio
# of the new line met the interrupted one's cleanup.
SETTLE_SECS = 0.2


class CallTimeLimit(FrameProcessor):
    """At `max_secs` after the pipeline started, says `time_up` and hangs up.

    | frame               | what it does                                                 |
    |---------------------|--------------------------------------------------------------|
    | Start ↓             | the clock starts                                             |
    | `max_secs` later    | a warning; Interruption ↕, TTSSpeak(time_up) ↓, EndWorker ↓  |
    | EndWorker ↓         | the call is ending anyway: the clock stops                   |
    | End, Cancel         | the clock stops                                              |

    It interrupts whatever the bot is saying or generating: a limit is a limit, and waiting
    for a reply to end would let the caller keep the call going with more turns (until the
    hang-up mutes them). The interruption records what the caller heard of a cut reply, as a
    barge-in does. A call already ending (a farewell, a silent caller's goodbye) is left to
    end on its own. Place it upstream of the LLM, so its line is spoken and recorded like
    any bot speech.
    """

    def __init__(self, lifecycle: CallLifecycle, *, time_up: str, max_secs: float, **kwargs):
        """Limit the call whose lifecycle is `lifecycle` (it knows when it is ending)."""
        super().__init__(**kwargs)
        self._lifecycle = lifecycle
        self._time_up = time_up
        self._max_secs = max_secs
        self._timer: asyncio.Task | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Start the clock on StartFrame, stop it when the call ends; pass every frame on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            self._timer = self.create_task(self._time_limit(), name="call-time-limit")
        elif isinstance(frame, (EndFrame, CancelFrame, EndWorkerFrame)):
            await self._stop()
        await self.push_frame(frame, direction)

    async def _time_limit(self) -> None:
        await asyncio.sleep(self._max_secs)
        self._timer = None
        if not self._lifecycle.end(TIME_UP_REASON):
            return
        logger.warning(f"the call reached its time limit of {self._max_secs:g} s: ending it")
        await self.broadcast_interruption()
        await asyncio.sleep(SETTLE_SECS)
        for frame in spoken_ending(self._time_up, TIME_UP_REASON):
            await self.push_frame(frame)

    async def _stop(self) -> None:
        if self._timer:
            timer, self._timer = self._timer, None
            await self.cancel_task(timer)

    async def cleanup(self):
        """Stop the clock."""
        await super().cleanup()
        await self._stop()
