"""OpenAI's spoken replies as the phone plays them, and where to truncate one the caller cut."""

from dataclasses import dataclass, field

from services.realtime_caller_audio import PHONE_RATE

KEPT_REPLIES = 8  # replies kept for a cut, the latest (more than a phone plays at once)


@dataclass
class ItemAudio:
    """The audio of one output item of a response, as received (μ-law: 8 bytes a ms)."""

    item_id: str
    content_index: int
    ms: float = 0.0


@dataclass(frozen=True)
class Truncation:
    """Where OpenAI must cut an item: the caller heard `audio_end_ms` of it."""

    item_id: str
    content_index: int
    audio_end_ms: int


@dataclass
class Reply:
    """One response's audio and words: a TTSStarted…TTSStopped on the phone line."""

    response_id: str
    items: list[ItemAudio] = field(default_factory=list)
    text: str = ""
    done: bool = False

    def add_audio(self, item_id: str, content_index: int, ulaw_bytes: int) -> None:
        """More audio of `item_id` (deltas come in playback order, item after item)."""
        if not self.items or self.items[-1].item_id != item_id:
            self.items.append(ItemAudio(item_id, content_index))
        self.items[-1].ms += ulaw_bytes * 1000 / PHONE_RATE

    def truncations(self, heard_ms: float) -> list[Truncation]:
        """What to truncate when the caller heard `heard_ms` of this reply: none if all."""
        cuts: list[Truncation] = []
        offset = 0.0
        for item in self.items:
            end_ms = int(max(heard_ms - offset, 0.0))
            if end_ms < item.ms:
                cuts.append(Truncation(item.item_id, item.content_index, end_ms))
            offset += item.ms
        return cuts


class Replies:
    """The replies whose audio the caller may not have heard in full yet, in order."""

    def __init__(self) -> None:
        """None yet."""
        self._replies: list[Reply] = []

    def begin(self, response_id: str) -> Reply:
        """The first delta of a response: its reply begins."""
        reply = Reply(response_id)
        self._replies = [*self._replies[-(KEPT_REPLIES - 1) :], reply]
        return reply

    def of(self, response_id: str) -> Reply | None:
        """The reply of `response_id`, if it has begun."""
        return next((r for r in reversed(self._replies) if r.response_id == response_id), None)

    def heard(self) -> None:
        """The caller heard every reply OpenAI has finished (the bot stopped speaking)."""
        self._replies = [r for r in self._replies if not r.done]

    def cut(self, spoken: str) -> Reply | None:
        """The reply the transport cut, named by its words (else the latest); all forgotten.

        The transport cuts the first reply the caller had not heard in full, and drops them
        all: replies after it were never heard. It names the words it was given of that
        reply, which may stop short of ours (the frames still on their way were dropped).
        """
        replies, self._replies = self._replies, []
        given = _letters(spoken)
        named = [r for r in replies if given and _letters(r.text).startswith(given)]
        return named[0] if named else (replies[-1] if replies else None)


def _letters(text: str) -> str:
    """`text` without its spaces: transcript deltas may split words where the transport won't."""
    return "".join(text.split())
