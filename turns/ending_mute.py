"""A user-mute strategy that keeps the caller from cutting off the bot's farewell."""

from pipecat.frames.frames import Frame
from pipecat.turns.user_mute.base_user_mute_strategy import BaseUserMuteStrategy

from processors.playback_state import Playback


class EndingCallMuteStrategy(BaseUserMuteStrategy):
    """Mutes the caller's turns once the bot has decided to end the call."""

    def __init__(self, playback: Playback, **kwargs):
        """Read the ending state from `playback`, the call's shared record."""
        super().__init__(**kwargs)
        self._playback = playback

    async def process_frame(self, frame: Frame) -> bool:
        """Mute everything while the farewell plays."""
        return self._playback.ending
