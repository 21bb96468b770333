"""The caller's μ-law on its way to OpenAI: held until the session takes it, kept to replay."""

from typing import Any

PHONE_RATE = 8000  # samples per second, and μ-law bytes per second
# After a clear of OpenAI's input buffer, the caller's speech is replayed from this long before
# the VAD's start (the VAD fires `start_secs` into speech, give or take a window).
ONSET_MARGIN_SECS = 0.3
NO_ONSET_REPLAY_SECS = 0.5  # replayed when no VAD start was seen
SAME_SPEECH_SECS = 1.0  # a VAD start this soon after a stop continues the same speech
RECENT_SECS = 10.0  # the caller's latest audio kept for that replay
HELD_SECS = 10.0  # audio kept while the session is not yet μ-law (the latest)


class CallerAudio:
    """The caller's audio as appended to OpenAI's input buffer, and where their speech began.

    With local turn detection a barge-in clears OpenAI's input buffer, which holds the words
    the caller spoke before the barge-in was confirmed: `onset_replay()` gives them back.
    """

    def __init__(self) -> None:
        """Nothing heard yet."""
        self._held: list[Any] = []  # audio (bytearray) and events, before the session is ready
        self._recent = bytearray()  # the latest RECENT_SECS appended, as sent
        self._appended = 0  # μ-law bytes appended in all
        self._onset: int | None = None  # where (in `_appended`) the caller's speech began
        self._speech_ended = -int(PHONE_RATE * SAME_SPEECH_SECS)

    def hold(self, ulaw: bytes) -> None:
        """Keep audio that OpenAI cannot take yet (the latest HELD_SECS of it)."""
        if self._held and isinstance(self._held[-1], bytearray):
            self._held[-1] += ulaw
        else:
            self._held.append(bytearray(ulaw))
        excess = sum(len(a) for a in self._held if isinstance(a, bytearray))
        excess -= int(HELD_SECS * PHONE_RATE)
        for audio in (a for a in self._held if isinstance(a, bytearray)):
            if excess <= 0:
                break
            cut = min(excess, len(audio))
            del audio[:cut]
            excess -= cut

    def hold_event(self, event: Any) -> None:
        """Keep an event about the audio held (a commit) in its place among it."""
        self._held.append(event)

    def take_held(self) -> list[bytes | Any]:
        """What was held, in order: audio to append (bytes) and events to send."""
        held, self._held = self._held, []
        return [bytes(item) if isinstance(item, bytearray) else item for item in held]

    def appended(self, ulaw: bytes) -> None:
        """`ulaw` went into OpenAI's input buffer."""
        self._appended += len(ulaw)
        self._recent += ulaw
        del self._recent[: -int(RECENT_SECS * PHONE_RATE)]

    def speech_started(self, vad_start_secs: float) -> None:
        """The VAD heard speech, `vad_start_secs` after it began."""
        if self._onset is not None and (
            self._appended - self._speech_ended < SAME_SPEECH_SECS * PHONE_RATE
        ):
            return  # more of the same speech
        back = int((vad_start_secs + ONSET_MARGIN_SECS) * PHONE_RATE)
        self._onset = self._appended - back

    def speech_stopped(self) -> None:
        """The VAD heard the speech stop."""
        self._speech_ended = self._appended

    def turn_committed(self) -> None:
        """The caller's turn went to OpenAI: its speech is no longer ours to replay."""
        self._onset = None

    def onset_replay(self) -> bytes:
        """The caller's speech so far, from its onset, as it was appended."""
        if self._onset is not None:
            start = self._onset
        else:
            start = self._appended - int(NO_ONSET_REPLAY_SECS * PHONE_RATE)
        wanted = self._appended - start
        return bytes(self._recent[max(0, len(self._recent) - wanted) :]) if wanted > 0 else b""
