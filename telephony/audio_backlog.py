"""The caller's audio waiting for an STT socket: sent in batches, kept while it is down."""

from collections.abc import Awaitable, Callable

from loguru import logger


class AudioBacklog:
    """16-bit PCM kept for a socket that may not be open yet.

    `add` keeps audio and says when a full batch is ready; while the socket is down it keeps
    the newest `max_secs` and warns once if it has to drop older audio. `drain` sends it all
    in batches; whatever a failed send leaves stays for the next connection.
    """

    def __init__(self, owner: str, *, batch_secs: float, max_secs: float) -> None:
        """Batches of `batch_secs`; at most `max_secs` kept while down. `owner` names logs."""
        self.pcm = bytearray()
        self._owner = owner
        self._batch_secs = batch_secs
        self._max_secs = max_secs
        self._overflowed = False

    def add(self, audio: bytes, sample_rate: int, *, connected: bool) -> bool:
        """Keep `audio`; True when the socket is up and a batch is ready."""
        self.pcm += audio
        if connected:
            return len(self.pcm) >= _bytes(self._batch_secs, sample_rate)
        excess = len(self.pcm) - _bytes(self._max_secs, sample_rate)
        if excess > 0:
            del self.pcm[:excess]
            if not self._overflowed:
                logger.warning(f"{self._owner}: still not connected; dropping the oldest audio")
                self._overflowed = True
        return False

    async def drain(self, sample_rate: int, send: Callable[[bytes], Awaitable[None]]) -> None:
        """Send everything kept, a batch at a time; raises what `send` raises."""
        batch = _bytes(self._batch_secs, sample_rate)
        if len(self.pcm) > batch:
            kept_ms = len(self.pcm) / 2 / sample_rate * 1000
            logger.debug(f"{self._owner}: sending {kept_ms:.0f} ms of audio kept while down")
        while self.pcm:
            await send(bytes(self.pcm[:batch]))
            del self.pcm[:batch]


def _bytes(seconds: float, sample_rate: int) -> int:
    return int(seconds * sample_rate) * 2
