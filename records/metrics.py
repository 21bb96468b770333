"""Prometheus metrics of the calls: in progress, ended, reply latency, provider errors, refusals.

No label holds a phone number, a call SID or a secret: pipelines, stages, end reasons and
provider names only. With several server processes (`WORKERS`), each writes its figures to
PROMETHEUS_MULTIPROC_DIR (set by `bot.py serve` before they start) and whichever answers
`/metrics` adds them all up.
"""

import os
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from records.record import Event, Turn

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class CallMetrics:
    """One server process's metrics, in a registry of its own (`render` for `/metrics`)."""

    def __init__(self) -> None:
        """A registry of this server's own."""
        self.registry = CollectorRegistry()
        self.in_progress = Gauge(
            "voicebot_calls_in_progress",
            "Calls being served now",
            registry=self.registry,
            multiprocess_mode="livesum",  # every live process's, added up
        )
        self.ended = Counter(
            "voicebot_calls_ended", "Calls ended, by why", ["end_reason"], registry=self.registry
        )
        self.latency = Histogram(
            "voicebot_reply_latency_seconds",
            "The caller's end of speech to the reply's first audio heard (stage=total), and "
            "the time each stage added",
            ["pipeline", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.provider_errors = Counter(
            "voicebot_provider_errors", "Errors reported by providers", ["provider"],
            registry=self.registry,
        )  # fmt: skip
        self.refusals = Counter(
            "voicebot_admission_refusals",
            "Calls refused (server full or draining), by where",
            ["where"],
            registry=self.registry,
        )

    def observer(self, pipeline: str) -> Callable[[Turn | Event], None]:
        """What counts one call's record as it grows (each reply's latency once)."""
        measured: set[int] = set()

        def observe(item: Turn | Event) -> None:
            if isinstance(item, Turn) and item.latency_ms is not None:
                if item.seq not in measured:  # a turn is written again as it goes on
                    measured.add(item.seq)
                    self.reply(pipeline, item)
            elif isinstance(item, Event) and item.kind == "error":
                self.provider_errors.labels(item.name.split("#")[0]).inc()

        return observe

    def reply(self, pipeline: str, turn: Turn) -> None:
        """A reply heard: its latency and its stages."""
        self.latency.labels(pipeline, "total").observe((turn.latency_ms or 0) / 1000)
        if turn.stages:
            for stage, ms in vars(turn.stages).items():
                self.latency.labels(pipeline, stage.removesuffix("_ms")).observe(ms / 1000)

    def render(self) -> bytes:
        """The Prometheus text exposition: every server process's figures."""
        directory = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
        if not directory:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
        return generate_latest(registry)
