"""What the caller's phone has played of the bot's audio, kept true by Twilio's mark echoes."""

from collections import deque
from dataclasses import dataclass

SAMPLE_RATE = 8000  # samples per second of 16-bit mono PCM on a phone line
_MAX_UNECHOED = 20_000  # marks remembered until Twilio echoes them (a whole long call's worth)


def ms(samples: int) -> float:
    """A position or length on the timeline, in milliseconds."""
    return samples * 1000 / SAMPLE_RATE


@dataclass
class _Chunk:
    """Accepted audio at its place on the timeline."""

    start: int  # samples into the call's bot audio
    pcm: bytes
    interruptible: bool

    @property
    def end(self) -> int:
        return self.start + len(self.pcm) // 2


class Playout:
    """The bot's audio on its way to the caller: accepted, sent to Twilio, heard.

    One timeline per call, in samples of bot audio: each chunk accepted takes the next stretch
    of it. Chunks go to Twilio in order, a mark after each; Twilio echoes a mark once the audio
    before it has played, which is what was *heard*. Between echoes the phone is assumed to
    play at real time, never past the next mark. The audio not heard yet stays here, so that:

    | operation | Twilio is sent  | what happens to the audio not heard yet                 |
    |-----------|-----------------|---------------------------------------------------------|
    | pause     | `clear`         | kept; sending stops where the caller stopped hearing    |
    | resume    | it again        | sent again from where it paused                         |
    | cut       | `clear`         | dropped, but for uninterruptible audio (played next)    |

    A mark is named `<generation>:<end sample>`; every pause and cut starts a generation, so
    the echoes Twilio sends for cleared marks never count as heard.
    """

    def __init__(self) -> None:
        self.accepted = 0  # the end of the audio accepted so far
        self.heard = 0  # heard for sure: up to the last echo (or where a pause/cut stopped)
        self.paused = False
        self._chunks: deque[_Chunk] = deque()  # accepted, not all heard, in timeline order
        self._sent = 0  # sent to Twilio up to here (in this generation)
        self._generation = 0
        self._pending: deque[tuple[str, int]] = deque()  # (mark, end) sent, not yet echoed
        self._unechoed: dict[str, None] = {}  # every mark sent and not echoed, any generation
        self._echoed_at = 0.0  # when the phone was last known to be at `heard`
        self._play_until = 0.0  # when all audio sent will have played (the send clock)

    @property
    def playing(self) -> bool:
        """Audio accepted that the caller has not heard yet."""
        return self.accepted > self.heard

    def heard_at(self, now: float) -> int:
        """Where the caller's phone is at `now`: the last echo plus real-time playout since."""
        if self.paused or not self._pending:
            return self.heard
        played = self.heard + round((now - self._echoed_at) * SAMPLE_RATE)
        return min(played, self._pending[0][1])

    def interruptible_at(self, now: float) -> bool:
        """Whether the audio playing at `now` may be cut (a barge-in may pause it)."""
        position = self.heard_at(now)
        chunk = next((c for c in self._chunks if c.end > position), None)
        return chunk is not None and chunk.interruptible

    # -- audio in and out -------------------------------------------------------------------

    def accept(self, pcm: bytes, *, interruptible: bool = True) -> None:
        """Queue 8 kHz 16-bit mono audio after everything accepted before it."""
        if pcm:
            self._chunks.append(_Chunk(self.accepted, pcm, interruptible))
            self.accepted += len(pcm) // 2

    def send_delay(self, now: float, lead_secs: float) -> float:
        """Seconds to wait before sending more, keeping `lead_secs` queued at the phone."""
        return max(0.0, self._play_until - now - lead_secs)

    def take(self, now: float) -> tuple[bytes, str] | None:
        """The next audio to send and the mark to send after it; None if none (or paused)."""
        if self.paused:
            return None
        chunk = next((c for c in self._chunks if c.end > self._sent), None)
        if chunk is None:
            return None
        pcm = chunk.pcm[(self._sent - chunk.start) * 2 :]
        if not self._pending:
            self._echoed_at = now  # the phone starts playing this now, from `heard`
        self._sent = chunk.end
        name = f"{self._generation}:{chunk.end}"
        self._pending.append((name, chunk.end))
        self._remember(name)
        self._play_until = max(now, self._play_until) + len(pcm) / 2 / SAMPLE_RATE
        return pcm, name

    def echo(self, name: str, now: float) -> bool:
        """Twilio echoed the mark `name`; whether that advanced what was heard."""
        self._unechoed.pop(name, None)
        if not self._pending or name not in (pending for pending, _ in self._pending):
            return False  # a mark Twilio's `clear` echoed, or one already passed
        while self._pending:
            pending, end = self._pending.popleft()
            if pending == name:
                break
        self.heard, self._echoed_at = end, now
        while self._chunks and self._chunks[0].end <= self.heard:
            self._chunks.popleft()
        return True

    def sent_by_us(self, name: str) -> bool:
        """Whether `name` is a mark this call sent and Twilio has not echoed yet."""
        return name in self._unechoed

    # -- the caller speaks ------------------------------------------------------------------

    def pause(self, now: float) -> int:
        """Stop where the caller's phone is (returned); Twilio must be sent `clear` now."""
        self.heard = self.heard_at(now)
        self._restart_from_heard(now)
        self.paused = True
        return self.heard

    def resume(self) -> None:
        """Send again from where the pause stopped."""
        self.paused = False

    def cut(self, now: float) -> int:
        """Drop the interruptible audio not heard yet; returns where the caller stopped hearing.

        Twilio must be sent `clear` now (unless paused already, which has cleared it).
        """
        self.heard = self.heard_at(now)
        kept = [c for c in self._chunks if not c.interruptible and c.end > self.heard]
        self._chunks.clear()
        self.accepted = self.heard
        for chunk in kept:  # played right after what was heard, in order
            self.accept(chunk.pcm, interruptible=False)
        self._restart_from_heard(now)
        self.paused = False
        return self.heard

    def _restart_from_heard(self, now: float) -> None:
        while self._chunks and self._chunks[0].end <= self.heard:
            self._chunks.popleft()
        self._generation += 1
        self._pending.clear()
        self._sent = self.heard
        self._play_until = now

    def _remember(self, name: str) -> None:
        self._unechoed[name] = None
        if len(self._unechoed) > _MAX_UNECHOED:  # a phone that never echoes: forget the oldest
            del self._unechoed[next(iter(self._unechoed))]
