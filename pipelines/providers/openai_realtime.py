"""Being written."""

from pipelines.provider import Provider

SPEECH_TO_SPEECH: list[Provider] = []
