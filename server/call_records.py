"""The server's call records: the database, its writer, and a recorder for each call."""

from collections.abc import Callable
from datetime import UTC, datetime

from loguru import logger

from processors.call_time_limit import TIME_UP_REASON
from processors.silent_caller import SILENCE_REASON
from records.database import create_engine, migrate
from records.metrics import CallMetrics
from records.queries import record_json
from records.record import CallInfo, Event, Turn
from records.recorder import CallRecorder
from records.webhook import WebhookSender
from records.writer import RecordWriter
from server.call import FAREWELL_REASON, Call
from server.drain import SHUTDOWN_REASON
from server.logs import masked
from server.transfer import RETURNED_PARAMETER

DIRECTION_PARAMETER = "direction"  # the stream's <Parameter>: "inbound" or "outbound"
LATER_STREAM_SEQ = 10_000  # where a call's stream back from a transfer numbers its turns

# `end_reason` in the records: why the call ended, from what claimed its ending.
END_REASONS = {
    FAREWELL_REASON: "bot_farewell",
    "the caller hung up": "caller_hung_up",
    SILENCE_REASON: "silence",
    TIME_UP_REASON: "time_limit",
    SHUTDOWN_REASON: "shutdown",
}


class CallRecords:
    """Every call's record, written as it happens to the database at `url`."""

    def __init__(
        self,
        url: str,
        metrics: CallMetrics,
        *,
        webhooks: WebhookSender | None = None,
        webhook_url: Callable[[str], str | None] = lambda _pipeline: None,
    ):
        """Records in the database at `url` (an async SQLAlchemy URL), counted in `metrics`.

        A finished call's record goes to `webhook_url(pipeline)`, if any, by `webhooks`.
        """
        self.engine = create_engine(url)
        self.writer = RecordWriter(self.engine)
        self.metrics = metrics
        self.webhooks = webhooks
        self._webhook_url = webhook_url

    async def start(self) -> None:
        """Migrate the schema (raises if the database cannot be reached), start writing."""
        await migrate(self.engine)
        self.writer.start()

    async def close(self) -> None:
        """Write what waits and deliver what is due (bounded), then let go."""
        await self.writer.close()
        if self.webhooks:
            await self.webhooks.close()

    def recorder(self, call: Call) -> CallRecorder:
        """A new recorder for `call`, whose row is written now."""
        start = call.start
        info = CallInfo(
            call_sid=start.call_sid,
            direction=start.parameters.get(DIRECTION_PARAMETER, "inbound"),
            from_number=start.parameters.get("caller", ""),
            to_number=start.parameters.get("called", ""),
            pipeline=call.pipeline,
        )
        self.writer.write(start.call_sid, info)
        self.metrics.in_progress.inc()
        count = self.metrics.observer(call.pipeline)

        def sink(item: CallInfo | Turn | Event) -> None:
            self.writer.write(start.call_sid, item)
            if not isinstance(item, CallInfo):
                count(item)

        # Back from a transfer nobody answered: the same call, a new stream; its turns follow.
        later_stream = bool(start.parameters.get(RETURNED_PARAMETER))
        return CallRecorder(
            info, sink, mask=masked, first_seq=LATER_STREAM_SEQ if later_stream else 1
        )

    def finish(self, recorder: CallRecorder, call: Call, *, failed: bool = False) -> None:
        """The call is over: its end and how it ended go to the record."""
        recorder.info.ended_at = datetime.now(UTC)
        recorder.info.end_reason = end_reason(call, failed=failed)
        if call.transferred_to:  # Twilio has the call now: the bot's part of it is over
            recorder.event("transfer", call.transferred_to, {"result": "handed over to Twilio"})
        if call.recording:  # Twilio's, with `[call] record`: where its audio is fetched
            recorder.event("recording", call.recording.sid, {"url": call.recording.url})
        recorder.finish()
        self.metrics.ended.labels(recorder.info.end_reason).inc()
        self.metrics.in_progress.dec()
        url = self._webhook_url(call.pipeline)
        if url and self.webhooks:
            self.webhooks.send(url, record_json(recorder.info, recorder.turns, recorder.events))
        logger.debug(f"call record: {recorder.info.end_reason}, {len(recorder.turns)} turns")


def end_reason(call: Call, *, failed: bool = False) -> str:
    """Why `call` ended, as the records name it."""
    if failed:
        return "error"
    if call.transferred_to:
        return "transferred"
    reason = call.lifecycle.reason
    if reason is None:
        return "ended"
    return END_REASONS.get(reason, "provider_failure")
