"""The far end of an outbound call the Twilio stand-in places: a person or a voicemail box.

Twilio dials the number; the callee is busy, does not answer, cannot be reached, or picks up.
On pick-up Twilio posts the call's signed voice webhook and opens the media stream its TwiML
names (`SimulatedCall.join`), while its answering machine detection listens: a person is
detected soon after the pick-up, a voicemail box once its greeting and beep have played.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from recordings import RECORDINGS
from standins.audio import SAMPLE_RATE, read_wav
from standins.caller import SimulatedCall

Answer = Literal["person", "voicemail", "busy", "no-answer", "failed"]
ANSWERS: tuple[Answer, ...] = ("person", "voicemail", "busy", "no-answer", "failed")
# A voicemail box's greeting: three seconds of real recorded speech, a pause, then the beep.
GREETING = RECORDINGS / "aepyx_8k_60s.wav"
GREETING_SECS, BEEP_PAUSE_SECS, BEEP_SECS, BEEP_HZ = 3.0, 0.3, 0.5, 1000
PERSON_DETECTED_SECS = 0.5  # Twilio's verdict on a person, after the pick-up
LAST_WORDS_SECS = 20.0  # a person who said everything waits this long for the bot to hang up


@dataclass(frozen=True)
class Callee:
    """Who answers the calls placed to one number: `answers[n]` for attempt n, the last repeats.

    A person says `says` (recordings), one after each thing the bot says, the greeting first;
    with nothing to say the test drives the call itself (`TwilioRestStandIn.answered`).
    """

    answers: tuple[Answer, ...] = ("person",)
    says: tuple[Path, ...] = ()
    ring_secs: float = 0.2

    def __post_init__(self):
        if not self.answers or not set(self.answers) <= set(ANSWERS):
            raise ValueError(f"answers must be some of {ANSWERS} (got {self.answers!r})")

    def answer(self, attempt: int) -> Answer:
        """How attempt `attempt` (from 0) is answered."""
        return self.answers[min(attempt, len(self.answers) - 1)]


def voicemail_greeting() -> bytes:
    """A voicemail box's greeting and its beep, as 16-bit 8 kHz PCM."""
    speech = read_wav(GREETING)[: int(GREETING_SECS * SAMPLE_RATE) * 2]
    pause = bytes(int(BEEP_PAUSE_SECS * SAMPLE_RATE) * 2)
    t = np.arange(int(BEEP_SECS * SAMPLE_RATE)) / SAMPLE_RATE
    beep = (8000 * np.sin(2 * np.pi * BEEP_HZ * t)).astype(np.int16).tobytes()
    return speech + pause + beep


async def converse(call: SimulatedCall, says: tuple[Path, ...]) -> None:
    """A person: after each thing the bot says, say the next line; then wait for the end."""
    for line in says:
        await call.listen(timeout=30)
        await call.say(line)
    try:
        await call.wait_closed(timeout=LAST_WORDS_SECS)
    except TimeoutError:
        await call.hang_up()


async def play_greeting(call: SimulatedCall) -> None:
    """A voicemail box: its greeting and beep (it records what follows until the call ends)."""
    await call.say(voicemail_greeting())
