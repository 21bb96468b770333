"""Frames of our own about the caller's turn."""

from dataclasses import dataclass

from pipecat.frames.frames import ControlFrame, InterruptionFrame, SystemFrame


@dataclass
class CallerPausedFrame(SystemFrame):
    """The caller fell silent mid-turn (before the VAD's stop): a streaming STT finalizes now.

    Broadcast by `SpeculativeTurnStop`, so the words said so far come back final while the
    caller is still silent, in time to answer them speculatively.
    """


@dataclass
class SpeculativeReplyFrame(ControlFrame):
    """The LLM response that follows answers a turn that may not be over: hold it.

    Sent by `ReplyAhead` in order before the speculative context, so it reaches `ReplyHold`
    (after the TTS) before the response's first frame.
    """


@dataclass
class ReplyWithdrawnFrame(InterruptionFrame):
    """The speculative reply answers nothing: the LLM stream and the TTS stop, nothing plays.

    An interruption of the reply alone, from `ReplyAhead` to `ReplyHold`, which drops what it
    held and goes no further: the caller's side, the transport and the context never see it.

    Parameters:
        refused_tool_calls: tool calls the reply asked for, never run; their frames go too.
    """

    refused_tool_calls: frozenset[str] = frozenset()


@dataclass
class RepeatReplyFrame(ControlFrame):
    """The caller asked to hear the bot's last reply again (a keypad shortcut).

    From `Keypad` down to `ReplyRepeater` (between the LLM and the TTS), which knows that reply
    and says it again. Dropped by a barge-in after it, like any reply.
    """
