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
class StartSpeculationFrame(ControlFrame):
    """A speculation the stop strategy asked for starts when this comes back to it.

    Broadcast by `SpeculationLedger` through the user aggregator's queue, so the speculative
    context leaves in order with the verdicts before and after it. `ReplyAhead` drops it.
    """


@dataclass
class SpeculationWithdrawnFrame(ControlFrame):
    """The stop strategy withdrew the speculative reply whose context went down before this.

    Broadcast by `SpeculationLedger` in order with the contexts (pipecat's
    `EagerEndOfTurnCancelFrame`, a system frame, may overtake the very context it withdraws),
    so `ReplyAhead` knows which reply it withdraws.
    """


@dataclass
class SpeculationConfirmedFrame(ControlFrame):
    """The caller's turn ended on the words of the speculative context before this: it plays.

    Broadcast by `SpeculationLedger` in order with the contexts, as `SpeculationWithdrawnFrame`.
    """


@dataclass
class ReplyConfirmedFrame(SystemFrame):
    """The held speculative reply answers the turn that ended: it plays now.

    From `ReplyAhead` to `ReplyHold`, ahead of the reply's own frames (which may still be on
    their way: see `HeldReply`).
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
