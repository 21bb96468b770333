"""A user-mute strategy that keeps an answering machine's greeting out of the conversation."""

from pipecat.frames.frames import Frame
from pipecat.turns.user_mute.base_user_mute_strategy import BaseUserMuteStrategy

from telephony.lifecycle import CallLifecycle


class ScreeningMuteStrategy(BaseUserMuteStrategy):
    """Mutes the callee of an outbound call until Twilio says who answered it.

    While `lifecycle.screening`, a voicemail box's greeting is not a turn the LLM answers.
    """

    def __init__(self, lifecycle: CallLifecycle, **kwargs):
        """Mute while `lifecycle` is screening the callee."""
        super().__init__(**kwargs)
        self._lifecycle = lifecycle

    async def process_frame(self, frame: Frame) -> bool:
        """Muted until the verdict."""
        return self._lifecycle.screening
