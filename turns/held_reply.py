"""Which reply a speculative marker covers, when its confirmation can overtake it."""


class HeldReply:
    """Follows `SpeculativeReplyFrame` markers and the system frames that settle them.

    A `ReplyConfirmedFrame` is a system frame and may arrive before the marker of the reply it
    confirms (still queued behind the LLM): that reply is then not held at all. A barge-in
    (an interruption) drops the markers in flight, so it forgets everything.
    """

    def __init__(self):
        """No reply marked."""
        self._marked = False  # the next response is speculative
        self._confirmed_ahead = False  # its confirmation came before its marker

    def mark(self) -> None:
        """A marker arrived: the next response is held, unless confirmed already."""
        self._marked, self._confirmed_ahead = not self._confirmed_ahead, False

    def starts_held(self) -> bool:
        """A response starts: whether it is the marked one."""
        held, self._marked = self._marked, False
        return held

    def confirm(self, holding: bool) -> None:
        """The speculation was confirmed; `holding`: its response has started (and is held)."""
        self._confirmed_ahead = not holding and not self._marked
        self._marked = False

    def forget(self) -> None:
        """A withdrawal or a barge-in: nothing is marked or confirmed."""
        self._marked = self._confirmed_ahead = False
