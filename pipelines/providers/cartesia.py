"""Being written."""

from pipelines.provider import Provider

TTS: list[Provider] = []
