"""Twilio's playout buffer for the bot's audio, as the caller's phone experiences it."""

from collections import deque
from dataclasses import dataclass, field

from standins.audio import FRAME_SAMPLES


@dataclass
class Stretch:
    """A stretch of bot audio that played out without a gap; times in stream seconds."""

    start: float
    ulaw: bytearray = field(default_factory=bytearray)

    @property
    def end(self) -> float:
        """When the last of it finished playing."""
        return self.start + len(self.ulaw) / 8000


class PlayoutBuffer:
    """Queues outbound media in order; plays 20 ms per tick; echoes marks when reached.

    `clear` empties the queue and echoes every pending mark, as Twilio does.
    """

    def __init__(self) -> None:
        self._queue: deque[bytes | str] = deque()  # audio bytes, or a mark's name
        self._partial = b""
        self.stretches: list[Stretch] = []
        self._playing = False

    @property
    def pending_ms(self) -> float:
        """Audio queued but not yet played."""
        queued = sum(len(item) for item in self._queue if isinstance(item, bytes))
        return (queued + len(self._partial)) / 8

    @property
    def playing(self) -> bool:
        """Whether bot audio played during the last tick."""
        return self._playing

    def add_audio(self, ulaw: bytes) -> list[str]:
        """Queue media; returns marks to echo now (none: audio never releases a mark)."""
        self._queue.append(ulaw)
        return []

    def add_mark(self, name: str) -> list[str]:
        """Queue a mark; echoed at once if nothing is queued before it."""
        if not self._queue and not self._partial:
            return [name]
        self._queue.append(name)
        return []

    def clear(self) -> list[str]:
        """Drop queued audio; returns every pending mark, all echoed now."""
        marks = [item for item in self._queue if isinstance(item, str)]
        self._queue.clear()
        self._partial = b""
        return marks

    def tick(self, now: float) -> tuple[bytes, list[str]]:
        """Play up to 20 ms at stream time `now`; returns the audio played and marks reached.

        A phone plays in real time: ticks catching up after a starved event loop play
        nothing while the audio already played reaches past `now` by more than a tick (else
        marks would be echoed before the caller could have heard the audio before them).
        """
        if self.stretches and self.stretches[-1].end > now + FRAME_SAMPLES / 8000:
            return b"", []
        played, marks = bytearray(self._partial), []
        self._partial = b""
        while self._queue and len(played) < FRAME_SAMPLES:
            item = self._queue.popleft()
            if isinstance(item, str):
                marks.append(item)
            else:
                played.extend(item)
        if len(played) > FRAME_SAMPLES:
            self._partial = bytes(played[FRAME_SAMPLES:])
            del played[FRAME_SAMPLES:]
        while self._queue and isinstance(self._queue[0], str) and not self._partial:
            marks.append(self._queue.popleft())  # marks right after audio that just finished
        self._record(now, bytes(played))
        return bytes(played), marks

    def _record(self, now: float, played: bytes) -> None:
        self._playing = bool(played)
        if not played:
            return
        last = self.stretches[-1] if self.stretches else None
        # A tick a little late plays on in the same stretch; a longer wait was a gap.
        if last is None or now - last.end > 0.03:
            last = Stretch(start=now)
            self.stretches.append(last)
        last.ulaw.extend(played)
