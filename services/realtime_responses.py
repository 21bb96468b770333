"""The responses of one OpenAI Realtime session: asked for one at a time, some cut short."""

from dataclasses import dataclass

from pipecat.metrics.metrics import LLMTokenUsage
from pipecat.services.openai.realtime import events


@dataclass
class Ask:
    """A response to ask OpenAI for: say `text` word for word, or (None) answer the caller.

    `event_id`: of the `response.create` that asked for it, once sent.
    """

    text: str | None = None
    event_id: str | None = None


class Responses:
    """What OpenAI is running and what is to be asked of it next, in order.

    OpenAI refuses a `response.create` while a response runs, so asks wait their turn; an
    ask is in flight from its `response.create` to its `response.created`. A response cut
    short by the caller is dropped: its late deltas are not played.
    """

    def __init__(self) -> None:
        """Nothing asked yet."""
        self._waiting: list[Ask] = []
        self.asked: Ask | None = None  # in flight
        self.active: str | None = None  # the running response
        self._drop_asked = False  # the ask in flight was cut before it was created
        self._dropped: set[str] = set()
        self._saying: set[str] = set()  # responses saying a text

    def want(self, ask: Ask) -> None:
        """Ask for it once OpenAI is free."""
        self._waiting.append(ask)

    def next_ask(self) -> Ask | None:
        """The ask to send now (it is in flight from here on), if OpenAI is free for it."""
        if self.asked or self.active or not self._waiting:
            return None
        self.asked = self._waiting.pop(0)
        return self.asked

    def created(self, response_id: str) -> None:
        """A response began: the one asked for, or one OpenAI's server VAD started."""
        self.active = response_id
        ask, self.asked = self.asked, None
        if ask and ask.text is not None:
            self._saying.add(response_id)
        if ask and self._drop_asked:
            self._dropped.add(response_id)
        self._drop_asked = False

    def refused(self, event_id: str | None, *, retry: bool) -> bool:
        """OpenAI refused the event `event_id`; True if it was the ask in flight.

        `retry`: a response was running after all; the ask goes first once it is done.
        """
        if self.asked is None or event_id != self.asked.event_id:
            return False
        ask, self.asked = self.asked, None
        if retry:
            self._waiting.insert(0, Ask(ask.text))
        return True

    def cut(self) -> None:
        """The caller cut in: what runs, or was asked for, is dropped."""
        if self.active:
            self._dropped.add(self.active)
        self._drop_asked = self.asked is not None

    def dropped(self, response_id: str) -> bool:
        """Whether the response was cut short (its deltas are not played)."""
        return response_id in self._dropped

    def done(self, response_id: str) -> None:
        """A response ended."""
        if self.active == response_id:
            self.active = None
        self._dropped.discard(response_id)
        self._saying.discard(response_id)

    def saying_something(self) -> bool:
        """Whether a text is yet to be said in full."""
        return bool(
            self._saying
            or (self.asked and self.asked.text is not None)
            or any(ask.text is not None for ask in self._waiting)
        )

    def forget_says(self) -> None:
        """Nothing waiting will be said (the session is gone, or the end could not wait)."""
        self._waiting.clear()
        self._saying.clear()
        if self.asked and self.asked.text is not None:
            self.asked = None


def token_usage(response: events.Response) -> LLMTokenUsage | None:
    """What a finished response used, as pipecat's metrics count it."""
    usage = response.usage
    if usage is None:
        return None
    given, produced = usage.input_token_details, usage.output_token_details
    cached = given.cached_tokens_details if given else None
    return LLMTokenUsage(
        prompt_tokens=usage.input_tokens or 0,
        completion_tokens=usage.output_tokens or 0,
        total_tokens=usage.total_tokens or 0,
        cache_read_input_tokens=given.cached_tokens if given else None,
        input_audio_tokens=given.audio_tokens if given else None,
        output_audio_tokens=produced.audio_tokens if produced else None,
        cache_read_input_audio_tokens=cached.audio_tokens if cached else None,
    )
