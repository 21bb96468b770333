"""The words of the bot's replies at their place in its audio, and which of them were heard."""

from dataclasses import dataclass, field

from telephony.playout import SAMPLE_RATE

_DEFAULT_SAMPLES_PER_CHAR = 0.065 * SAMPLE_RATE  # speech rate for text not timed yet


@dataclass
class _Unit:
    """A text frame of the reply: a sentence, or a word."""

    text: str
    start: int | None = None  # where its audio starts, when the TTS said (a word's timestamp)
    end: int | None = None  # where its audio ends, when the TTS said (a SentenceEndFrame)


@dataclass
class SpokenReply:
    """One reply (TTSStarted to TTSStopped): its text on the call's audio timeline (samples).

    Text is timed by what the TTS service tells: a word frame's timestamp gives where the word
    starts (and the word before it ends); a `SentenceEndFrame` gives where a sentence ends;
    text with neither is spread over the audio in proportion to its letters.
    """

    start: int
    end: int | None = None  # known once the TTS has stopped
    units: list[_Unit] = field(default_factory=list)
    _first_pts: int | None = None

    def add_text(self, text: str) -> None:
        """A sentence (or any text frame) whose audio comes after what came before it."""
        if text.strip():
            self.units.append(_Unit(text.strip()))

    def add_word(self, text: str, pts: int) -> int:
        """A word whose audio starts `pts` (pipeline clock, ns) into the reply; its position.

        Word timestamps count from the reply's first word, which starts with its audio.
        """
        if self._first_pts is None:
            self._first_pts = pts
        position = self.start + round((pts - self._first_pts) * SAMPLE_RATE / 1e9)
        if text.strip():
            self.units.append(_Unit(text.strip(), start=position))
        return position

    def end_sentence(self, at: int) -> None:
        """The audio of the first sentence not yet timed ends at `at`."""
        for unit in self.units:
            if unit.end is None and unit.start is None:
                unit.end = at
                return

    def finish(self, at: int) -> None:
        """The reply's audio ends at `at`."""
        self.end = at

    def spoken(self) -> str:
        """Every word of the reply given to the transport, heard or not."""
        return " ".join(unit.text for unit in self.units)

    def heard(self, position: int, accepted: int) -> str:
        """The words heard once the caller's phone reached `position`.

        Whole units before it, then the share of the words of the unit playing there (a word
        counts once half of it has played). `accepted`: the reply's audio known so far.
        """
        words: list[str] = []
        for unit, (start, end) in zip(self.units, self._spans(accepted), strict=True):
            if position >= end:
                words += unit.text.split()
            else:
                if position > start:
                    share = (position - start) / max(end - start, 1)
                    words += _words_within(unit.text.split(), share)
                break
        return " ".join(words)

    def _spans(self, accepted: int) -> list[tuple[int, int]]:
        """Each unit's (start, end): as timed, or in proportion to the letters of the untimed."""
        ends = [self._known_end(i) for i in range(len(self.units))]
        spans: list[tuple[int, int]] = []
        cursor, run = self.start, []
        for i, unit in enumerate(self.units):
            if unit.start is not None and not run:
                cursor = max(cursor, unit.start)
            run.append(i)
            end = ends[i]
            if end is None and i < len(self.units) - 1:
                continue
            if end is None:  # the reply's last text so far, its end not known yet
                chars = sum(len(self.units[j].text) for j in run)
                end = max(accepted, cursor + int(chars * self._samples_per_char()))
            spans += _shares(cursor, end, [self.units[j].text for j in run])
            cursor, run = end, []
        return spans

    def _known_end(self, i: int) -> int | None:
        unit = self.units[i]
        if unit.end is not None:
            return unit.end
        if i + 1 < len(self.units) and self.units[i + 1].start is not None:
            return self.units[i + 1].start
        if i == len(self.units) - 1 and self.end is not None:
            return self.end
        return None

    def _samples_per_char(self) -> float:
        timed = [(u.text, u.end) for u in self.units if u.end is not None and u.start is None]
        if not timed:
            return _DEFAULT_SAMPLES_PER_CHAR
        chars = sum(len(text) for text, _ in timed)
        return (timed[-1][1] - self.start) / chars if chars else _DEFAULT_SAMPLES_PER_CHAR


def _shares(start: int, end: int, texts: list[str]) -> list[tuple[int, int]]:
    """Split [start, end) among `texts` in proportion to their letters."""
    total = sum(len(text) for text in texts) or 1
    spans, cursor, done = [], start, 0
    for text in texts:
        done += len(text)
        stop = start + (end - start) * done // total
        spans.append((cursor, stop))
        cursor = stop
    return spans


def _words_within(words: list[str], share: float) -> list[str]:
    """The words spoken in the first `share` of a unit's audio.

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
