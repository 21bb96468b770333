"""The caller's audio waiting for an STT socket: sent in batches, kept until it is transcribed."""

from collections.abc import Awaitable, Callable

from loguru import logger


class AudioBacklog:
    """16-bit PCM kept for a socket that may not be open yet, or may fail with audio in flight.

    `add` keeps audio and says when a full batch is ready; while the socket is down it keeps
    the newest `max_secs` and warns once if it has to drop older audio. `drain` sends it all
    in batches; whatever a failed send leaves stays for the next connection.

    Audio sent is not safe until the STT has transcribed it: a socket that dies takes the
    audio in flight and the utterance it was recognizing with it. So sent audio stays
    `unconfirmed` until a final result covers it (`confirm`, in the connection's stream
    time), and `requeue` puts what is left back in front of the backlog for the next
    connection, whose stream time starts at 0 again.

    With `quiet_batch_secs`, audio outside the VAD's speech (from the start: a VAD must run)
    goes in batches of that length (fewer messages on a quiet line), and the speech's start
    sends what is kept (`speech_started` says so), so a VAD's late start holds the speech
    back no longer.

    Silence need not wait for a transcript: once the VAD has shown it is running
    (`speech_started` / `speech_stopped`), audio more than `lead_secs` before the speech
    not yet transcribed (or before now, if there is none) held no words, and is dropped
    rather than sent again. So a reconnect re-sends the utterance, not the seconds of
    silence before it, and `max_secs` is spent on the utterance.
    """

    def __init__(
        self,
        owner: str,
        *,
        batch_secs: float,
        max_secs: float,
        lead_secs: float = 1.0,
        quiet_batch_secs: float | None = None,
    ) -> None:
        """Batches of `batch_secs`; at most `max_secs` kept while down. `owner` names logs.

        `lead_secs`: audio kept before the VAD said speech started (it says so late).
        `quiet_batch_secs`: batches while the VAD says the caller is quiet (None: the same).
        """
        self.pcm = bytearray()
        self.unconfirmed = bytearray()  # sent on this connection, not yet transcribed
        self._unconfirmed_from = 0  # where `unconfirmed` starts in this connection's stream
        self._owner = owner
        self._batch_secs = batch_secs
        self._quiet_batch_secs = max(quiet_batch_secs or batch_secs, batch_secs)
        self._max_secs = max_secs
        self._lead_secs = lead_secs
        self._overflowed = False
        self._kept_while_down = False  # audio added or put back while there was no socket
        # In bytes of all the audio ever added (`_added`), unlike the per-connection positions:
        self._added = 0
        self._vad = False  # a VAD has reported: audio it did not call speech may be dropped
        self._speaking = False  # between the VAD's start and stop (none yet: quiet)
        self._speech_from: int | None = None  # the start of speech not yet transcribed
        self._speech_until: int | None = None  # where that speech had ended (VAD stop)

    @property
    def sent(self) -> int:
        """Bytes sent on the current connection."""
        return self._unconfirmed_from + len(self.unconfirmed)

    def add(self, audio: bytes, sample_rate: int, *, connected: bool) -> bool:
        """Keep `audio`; True when the socket is up and a batch is ready."""
        self.pcm += audio
        self._added += len(audio)
        if connected:
            batch = self._batch_secs if self._speaking else self._quiet_batch_secs
            return len(self.pcm) >= _bytes(batch, sample_rate)
        self._kept_while_down = True
        self._drop_silence(sample_rate)
        excess = len(self.pcm) - _bytes(self._max_secs, sample_rate)
        if excess > 0:
            del self.pcm[:excess]
            if not self._overflowed:
                logger.warning(f"{self._owner}: still not connected; dropping the oldest audio")
                self._overflowed = True
        return False

    async def drain(self, sample_rate: int, send: Callable[[bytes], Awaitable[None]]) -> None:
        """Send everything kept, a batch at a time; raises what `send` raises."""
        batch = _bytes(self._quiet_batch_secs, sample_rate)
        if self._kept_while_down and self.pcm:
            kept_ms = len(self.pcm) / 2 / sample_rate * 1000
            logger.debug(f"{self._owner}: sending {kept_ms:.0f} ms of audio kept while down")
        self._kept_while_down = False
        while self.pcm:
            # A batch is sent when a frame takes it past its size: that frame's overshoot
            # goes with it, not alone after it.
            size = len(self.pcm) if len(self.pcm) < 2 * batch else batch
            chunk = bytes(self.pcm[:size])
            await send(chunk)
            del self.pcm[:size]
            self.unconfirmed += chunk
        self._forget(len(self.unconfirmed) - _bytes(self._max_secs, sample_rate))

    def confirm(self, until_secs: float, sample_rate: int) -> None:
        """A final result covered this connection's audio up to `until_secs`."""
        self._forget(_bytes(until_secs, sample_rate) - self._unconfirmed_from)
        transcribed_to = self._added - len(self.pcm) - len(self.unconfirmed)
        if self._speech_until is not None and transcribed_to >= self._speech_until:
            self._speech_from = self._speech_until = None  # all that speech is transcribed

    def speech_started(self, sample_rate: int) -> None:
        """The VAD heard speech start, up to `lead_secs` ago: keep it until transcribed.

        Whatever is kept should go now (a quiet batch may be holding the speech's start).
        """
        self._vad, self._speaking, self._speech_until = True, True, None
        if self._speech_from is None:
            self._speech_from = max(0, self._added - _bytes(self._lead_secs, sample_rate))

    def speech_stopped(self) -> None:
        """The VAD heard the speech stop: once transcribed past here, none is left."""
        self._vad, self._speaking = True, False
        if self._speech_from is not None:
            self._speech_until = self._added

    def requeue(self, sample_rate: int) -> None:
        """The connection is gone: its untranscribed audio goes first on the next one."""
        self.pcm[:0] = self.unconfirmed
        self._kept_while_down = bool(self.pcm)
        self.unconfirmed.clear()
        self._unconfirmed_from = 0
        self._drop_silence(sample_rate)

    def _drop_silence(self, sample_rate: int) -> None:
        """Drop audio not yet sent on this connection that the VAD says held no speech."""
        if not self._vad:
            return  # no VAD has reported yet: it may not be running at all
        keep_from = self._added - _bytes(self._lead_secs, sample_rate)
        if self._speech_from is not None:
            keep_from = min(keep_from, self._speech_from)
        silence = keep_from - (self._added - len(self.pcm))
        if silence > 0:
            del self.pcm[:silence]

    def _forget(self, n: int) -> None:
        n = min(n, len(self.unconfirmed))
        if n > 0:
            del self.unconfirmed[:n]
            self._unconfirmed_from += n


def _bytes(seconds: float, sample_rate: int) -> int:
    return int(seconds * sample_rate) * 2
