"""HTTP tool calls, over a whole call: a booking checked with the restaurant's booking system.

The default pipeline, with `check_availability` declared in its file (`[[tools]]`) and pointed
at the booking-system stand-in; the LLM stand-in calls it when the caller asks to book and
answers from its result. The faults: the booking system is down, answers HTTP 500, or answers
after the tool's timeout. Each time the caller should hear the bot say it could not check,
never silence, and the call should go on (the next question answered).
"""

import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from harness.faults import Fault, Outcome, bot_with, dial, heard_sentences, outcome_of
from pipelines.declaration import PIPELINES_DIR, Declaration, load_declarations
from recordings import RECORDINGS
from standins.booking_service import API_KEY_HEADER, BookingRequest, BookingServiceStandIn
from standins.openai_chat import OpenAIChatStandIn, RecordedRequest
from standins.script import (
    GREETING,
    TOOL_FAILED_REPLY,
    checking_availability,
    unanswered_tool_result,
)

FILLER = "One moment while I check the booking system."
OPENING_REPLY = "We open at nine on Saturday and close at eleven."
SECRET, API_KEY = "standin-booking-signing-secret", "standin-booking-api-key"
ENV = {"BOOKING_SIGNING_SECRET": SECRET, "BOOKING_API_KEY": API_KEY}
TIMEOUT_SECS = 3.0
# As a person writes it under the default pipeline's other sections.
TOOL_TOML = """
[[tools]]
name = "check_availability"
description = "Check whether a table is free. Call it before confirming any booking."
method = "POST"
url = "{url}/availability/{{date}}"
secret_env = "BOOKING_SIGNING_SECRET"
timeout_secs = {timeout}
filler = "{filler}"
[tools.headers]
{api_key_header} = "BOOKING_API_KEY"
[tools.parameters]
required = ["date", "party_size", "time"]
[tools.parameters.properties.date]
type = "string"
description = "the day, as the caller said it"
[tools.parameters.properties.party_size]
type = "integer"
[tools.parameters.properties.time]
type = "string"
description = "24-hour time, e.g. 19:00"
"""


@dataclass
class ToolRun:
    """A call that asked for a booking, and what the stand-ins saw of it."""

    outcome: Outcome
    tool_requests: list[BookingRequest] = field(default_factory=list)
    llm_requests: list[RecordedRequest] = field(default_factory=list)
    answers: list[dict] = field(default_factory=list)  # the booking system's 200 answers

    def results_sent(self) -> list[dict]:
        """Every tool result the LLM was given, in the order of its requests (repeats kept)."""
        bodies = [r.body["messages"] for r in self.llm_requests if r.body and r.status == 200]
        return [found for m in bodies if (found := unanswered_tool_result(m)) is not None]


def declared_with_tool(url: str, directory: Path, timeout: float = TIMEOUT_SECS) -> Declaration:
    """The default pipeline's file with `check_availability` at `url`, written to `directory`."""
    text = (PIPELINES_DIR / "default.toml").read_text()
    tool = TOOL_TOML.format(url=url, timeout=timeout, filler=FILLER, api_key_header=API_KEY_HEADER)
    (directory / "default.toml").write_text(text + tool)
    return load_declarations(directory)["default"]


async def book(
    *,
    delay: float = 0.0,
    status: int = 200,
    down: bool = False,
    barge_in: bool = False,
    tool_timeout: float = TIMEOUT_SECS,
) -> ToolRun:
    """The caller asks to book a table, hears the bot out, then asks when it opens.

    The booking system answers after `delay`, with `status`, or is `down`; the tool's
    `tool_timeout` is declared in the file. `barge_in`: the caller asks when it opens as soon as
    the bot speaks after the booking question (its filler, while the request still runs).
    """
    service = BookingServiceStandIn(secret=SECRET, api_key=API_KEY, delay=delay, status=status)
    async with service:
        with tempfile.TemporaryDirectory(prefix="pipelines-") as directory:
            declaration = declared_with_tool(service.http_url, Path(directory), tool_timeout)
        if down:
            await service.stop()
        declarations = load_declarations() | {"default": declaration}
        openai = OpenAIChatStandIn(responder=checking_availability)
        async with bot_with(env=ENV, declarations=declarations, openai=openai) as (bot, standins):
            call = await dial(bot)
            try:
                await call.listen()  # the greeting
                await call.say(RECORDINGS / "book_table.wav")
                if barge_in:
                    await call.wait_for_bot_audio(timeout=10)
                else:  # a playout gap between the filler and the answer is not its end
                    await call.listen(timeout=15, quiet=1.5)
                await call.say(RECORDINGS / "opening_hours.wav")
                await call.listen(timeout=15, quiet=2.5 if barge_in else 1.0)
            finally:
                await call.hang_up()
            texts = [GREETING, FILLER, TOOL_FAILED_REPLY, OPENING_REPLY]
            texts += [answer["message"] for answer in service.answers]
            return ToolRun(
                outcome=Outcome(False, heard_sentences(call, texts)),
                tool_requests=list(service.requests),
                llm_requests=list(standins.openai.requests),
                answers=list(service.answers),
            )


def judge(run: ToolRun, *, heard: list[str], error: str | None = None) -> ToolRun:
    """The caller heard exactly `heard`; the LLM was given the booking system's answer.

    With `error`: given an error result that says `error` instead.
    """
    problems = []
    if run.outcome.heard != heard:
        problems.append(f"the caller heard {run.outcome.heard}, expected {heard}")
    results = run.results_sent()
    if error is None and not any(result in run.answers for result in results):
        problems.append("the booking system's answer never reached the LLM")
    if error is not None and not any(error in str(r.get("error")) for r in results):
        problems.append(f"no result told the LLM {error!r} (it got {results})")
    if any(not request.signed for request in run.tool_requests):
        problems.append("a request reached the booking system unsigned")
    run.outcome.figures = f"{len(run.tool_requests)} tool request(s); results given: {results}"
    run.outcome.problems = problems
    run.outcome.survived = not problems
    return run


async def server_down() -> ToolRun:
    """Nothing listens where the tool points: the connection is refused at once."""
    run = await book(down=True)
    heard = [GREETING, TOOL_FAILED_REPLY, OPENING_REPLY]
    return judge(run, heard=heard, error="could not be reached")


async def server_error() -> ToolRun:
    """The booking system answers HTTP 500."""
    run = await book(status=500)
    return judge(run, heard=[GREETING, TOOL_FAILED_REPLY, OPENING_REPLY], error="HTTP 500")


async def server_too_slow() -> ToolRun:
    """The booking system answers after the tool's timeout: the filler, then the failure."""
    run = await book(delay=TIMEOUT_SECS + 2)
    heard = [GREETING, FILLER, TOOL_FAILED_REPLY, OPENING_REPLY]
    return judge(run, heard=heard, error=f"did not answer within {TIMEOUT_SECS:g} s")


FAULTS = [
    Fault(
        "tool server down",
        "nothing listens at the booking system's URL when the LLM calls check_availability",
        partial(outcome_of, server_down),
    ),
    Fault(
        "tool answers HTTP 500",
        "the booking system answers check_availability with HTTP 500",
        partial(outcome_of, server_error),
    ),
    Fault(
        "tool too slow",
        f"the booking system answers {TIMEOUT_SECS + 2:g} s late (tool timeout {TIMEOUT_SECS:g} s)",
        partial(outcome_of, server_too_slow),
    ),
]
