"""Frames of our own about the caller's turn."""

from dataclasses import dataclass

from pipecat.frames.frames import SystemFrame


@dataclass
class CallerPausedFrame(SystemFrame):
    """The caller fell silent mid-turn (before the VAD's stop): a streaming STT finalizes now.

    Broadcast by `SpeculativeTurnStop`, so the words said so far come back final while the
    caller is still silent, in time to answer them speculatively.
    """
