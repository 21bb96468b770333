"""How a call is ending, and why: the one place every part of a call asks."""

from loguru import logger
from pipecat.frames.frames import EndWorkerFrame, Frame, TTSSpeakFrame


class CallLifecycle:
    """One call's lifecycle: live, then ending for a reason (the first one given wins).

    The bot ends a call by saying something and hanging up once it has been heard; what
    starts an ending (the farewell tool, a silent caller, the time limit, a server drain,
    a provider that failed) claims it here first, so two endings never overlap, and the
    caller is muted from then on.
    """

    def __init__(self) -> None:
        self.reason: str | None = None  # why the call is ending, once it is
        self.caller_hung_up = False
        # An outbound call until Twilio says who answered it: the callee is not heard yet.
        self.screening = False

    @property
    def ending(self) -> bool:
        """Whether the call is ending (for any reason, the caller's hang-up included)."""
        return self.reason is not None

    def end(self, reason: str) -> bool:
        """Claim the call's ending for `reason`; False if it is already ending."""
        if self.reason is not None:
            return False
        self.reason = reason
        logger.info(f"ending the call: {reason}")
        return True

    def resume(self, reason: str) -> None:
        """The ending claimed for `reason` did not happen (a refused transfer): live again."""
        if self.reason == reason and not self.caller_hung_up:
            self.reason = None
            logger.info(f"the call goes on: {reason} did not happen")

    def caller_left(self) -> None:
        """The caller hung up: nothing more can be heard."""
        self.caller_hung_up = True
        self.reason = self.reason or "the caller hung up"


def spoken_ending(text: str, reason: str) -> list[Frame]:
    """The frames that end a call: say `text` (no barge-in cuts it), then end the pipeline.

    The transport passes `EndWorkerFrame` on only once the audio before it has played, so
    the pipeline ends (and the server hangs up) when the caller has heard `text`.
    """
    speak = TTSSpeakFrame(text)
    speak.interruptible = False
    return [speak, EndWorkerFrame(reason=reason)]
