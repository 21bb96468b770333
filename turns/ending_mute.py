"""A user-mute strategy that keeps the caller from cutting off the bot's last words."""

from pipecat.frames.frames import Frame
from pipecat.turns.user_mute.base_user_mute_strategy import BaseUserMuteStrategy

from telephony.lifecycle import CallLifecycle


class EndingCallMuteStrategy(BaseUserMuteStrategy):
    """Mutes the caller's turns once the call is ending (its lifecycle says so)."""

    def __init__(self, lifecycle: CallLifecycle, **kwargs):
        """Mute while `lifecycle` is ending."""
        super().__init__(**kwargs)
        self._lifecycle = lifecycle

    async def process_frame(self, frame: Frame) -> bool:
        """Mute everything while the bot says its last words."""
        return self._lifecycle.ending
