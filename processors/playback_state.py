"""What the caller has heard of the bot's replies, shared by the processors of one call."""

import re
from collections import deque
from dataclasses import dataclass, field

INTERRUPTED_NOTE = "[The caller interrupted here; they heard only the words above.]"
NOTHING_HEARD_NOTE = "[The caller interrupted before hearing any of this reply.]"
_DEFAULT_MS_PER_CHAR = 65.0  # speech rate used for a sentence whose audio end is not known yet


@dataclass
class Sentence:
    """One sentence of a reply and where its audio sits in the reply's audio (ms)."""

    text: str
    end_ms: float | None = None


@dataclass
class Reply:
    """One stretch of bot speech (a TTS context): its sentences, audio sent and heard."""

    id: int
    sentences: list[Sentence] = field(default_factory=list)
    audio_ms: float = 0.0  # audio received from the TTS: sent, or held while paused
    heard_ms: float = 0.0
    echoed_at: float = 0.0
    pending: deque[float] = field(default_factory=deque)  # marks sent, not yet echoed (ms)
    synthesized: bool = False
    paused_ms: float | None = None  # where playout stopped for a possible barge-in

    @property
    def playing(self) -> bool:
        """Audio of this reply is still to be heard (paused, sent and unechoed, or coming)."""
        return self.paused_ms is not None or bool(self.pending) or not self.synthesized

    def heard_at(self, now: float) -> float:
        """Audio heard by `now` (ms), between Twilio's echoes.

        The last echo plus real-time playout since, but not past the next unechoed mark;
        while paused, where the pause stopped it.
        """
        if self.paused_ms is not None:
            return self.paused_ms
        if not self.pending:
            return self.heard_ms
        return min(self.heard_ms + (now - self.echoed_at) * 1000, self.pending[0])

    def pause(self, now: float) -> float:
        """Playout stops at `now`; returns where (ms), which is what the caller has heard."""
        self.paused_ms = self.heard_at(now)
        return self.paused_ms

    def resume(self, now: float) -> float:
        """Playout restarts at `now` from where it paused (returned); no mark is pending."""
        start, self.paused_ms = self.paused_ms or 0.0, None
        self.heard_ms, self.echoed_at = start, now
        self.pending.clear()
        return start

    def spoken_text(self) -> str:
        """Every sentence sent to the caller's phone, heard or not."""
        return " ".join(s.text.strip() for s in self.sentences)

    def heard_text(self, heard_ms: float) -> str:
        """The words of the first `heard_ms` of audio.

        Whole sentences, then a proportional share of the words of the sentence playing then.
        """
        words: list[str] = []
        start = 0.0
        for sentence in self.sentences:
            end = self._end_of(sentence, start)
            sentence_words = sentence.text.split()
            if heard_ms >= end:
                words += sentence_words
            elif heard_ms > start:
                share = (heard_ms - start) / max(end - start, 1.0)
                words += _words_within(sentence_words, share)
                break
            else:
                break
            start = end
        return " ".join(words)

    def _end_of(self, sentence: Sentence, start: float) -> float:
        if sentence.end_ms is not None:
            return sentence.end_ms
        if self.synthesized and sentence is self.sentences[-1]:
            return self.audio_ms
        return max(self.audio_ms, start + len(sentence.text) * self._ms_per_char())

    def _ms_per_char(self) -> float:
        timed = [s for s in self.sentences if s.end_ms is not None]
        chars = sum(len(s.text) for s in timed)
        return timed[-1].end_ms / chars if timed and chars else _DEFAULT_MS_PER_CHAR


def _words_within(words: list[str], share: float) -> list[str]:
    """The words spoken in the first `share` of a sentence's audio.

    Time is shared by letters (speech runs at a roughly even rate of letters, not of words);
    a word counts as heard once half of it has played.
    """
    weights = [len(word) + 1 for word in words]
    total, done, heard = sum(weights), 0, []
    for word, weight in zip(words, weights, strict=True):
        if (done + weight / 2) / total > share:
            break
        heard.append(word)
        done += weight
    return heard


@dataclass
class Correction:
    """An interrupted reply: what was sent and what the caller actually heard."""

    spoken: str
    heard: str

    def message(self) -> str:
        """The assistant message the LLM should see for this reply."""
        if not self.heard:
            return NOTHING_HEARD_NOTE
        return f"{self.heard}… {INTERRUPTED_NOTE}"


class Playback:
    """Per call: the reply playing now, the pending context correction, whether we're ending."""

    def __init__(self) -> None:
        self.reply: Reply | None = None
        self.correction: Correction | None = None
        self.ending = False
        self.history: list[Correction] = []
        # Ids of frames passed to the output transport that have not come out of it yet (a
        # pause makes it drop them): the tracker adds, the pause filter removes.
        self.in_transport: set[int] = set()
        self._next_id = 0

    def start_reply(self) -> Reply:
        """A new stretch of bot speech begins."""
        self._next_id += 1
        self.reply = Reply(id=self._next_id)
        return self.reply

    def interrupt(self, now: float) -> Correction | None:
        """The caller barged in at `now`: close the reply and remember what they heard."""
        reply, self.reply = self.reply, None
        if reply is None or not reply.playing or not reply.sentences:
            return None
        correction = Correction(reply.spoken_text(), reply.heard_text(reply.heard_at(now)))
        self.correction = correction
        self.history.append(correction)
        return correction


def same_reply(message: str, spoken: str) -> bool:
    """Whether a context message holds (a prefix of) the spoken reply."""
    a, b = _normal(message), _normal(spoken)
    return bool(a) and (b.startswith(a[:40]) or a.startswith(b[:40]))


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
