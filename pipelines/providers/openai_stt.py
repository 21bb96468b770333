"""Being written."""

from pipelines.provider import Provider

STT: list[Provider] = []
