"""Transfer faults: the person the caller is handed to does not answer."""

from dataclasses import dataclass, field, replace

from harness.faults import Fault, Outcome, bot_with, dial, heard_sentences, spoken_texts
from harness.faults.records import API_TOKEN, finished_record
from pipelines.declaration import Declaration, load_declarations
from recordings import RECORDINGS
from standins.caller import SimulatedCall
from standins.script import BOOKING_REPLY

MANAGER_WAV = RECORDINGS / "manager.wav"
BOOK_TABLE_WAV = RECORDINGS / "book_table.wav"
RING_SECS = 5  # Twilio's shortest ring


def with_manager(**changes) -> dict[str, Declaration]:
    """The shipped pipelines, the default one's manager changed by `changes`."""
    shipped = load_declarations()
    default = shipped["default"]
    (manager,) = default.transfers
    manager = manager.model_copy(update=changes)
    return shipped | {"default": replace(default, transfers=(manager,))}


@dataclass
class UnansweredRun:
    """A warm transfer nobody answered: the outcome, and what the stand-ins saw."""

    outcome: Outcome
    call: SimulatedCall | None = None
    person_status: str = ""  # the person's call at Twilio
    callbacks: list[dict[str, str]] = field(default_factory=list)  # its status callbacks
    hangups: list[str] = field(default_factory=list)  # REST hang-ups of the caller
    unanswered_line: str = ""
    record: dict | None = None  # the call's record: both its streams


async def nobody_answers() -> UnansweredRun:
    """The caller asks for the manager (warm, ringing 5 s); nobody answers; then a booking."""
    declarations = with_manager(mode="warm", ring_secs=RING_SECS)
    (manager,) = declarations["default"].transfers
    env = {"API_TOKEN": API_TOKEN}
    async with bot_with(declarations=declarations, env=env) as (bot, standins):
        twilio = standins.twilio
        twilio.voice.unanswered = {manager.to}
        call = await dial(bot)
        twilio.voice.attach(call)
        await call.listen()
        await call.say(MANAGER_WAV)
        await call.listen()
        await call.wait_closed()
        await call.listen(timeout=RING_SECS + 15, after=call.events("closed")[0].t)
        await call.say(BOOK_TABLE_WAV)
        await call.listen()
        texts = [*spoken_texts(standins), BOOKING_REPLY]
        run = UnansweredRun(
            outcome=Outcome(False, heard_sentences(call, texts)),
            call=call,
            person_status=twilio.calls.get(next(iter(twilio.created), ""), ""),
            callbacks=[form for url, form in twilio.voice.callbacks if "/transfer/status" in url],
            hangups=list(twilio.hangups),
            unanswered_line=manager.unanswered,
        )
        await call.hang_up()
        run.record = await finished_record(bot.url, call.call_sid, min_turns=6)
    return judge_unanswered(run)


def judge_unanswered(run: UnansweredRun) -> UnansweredRun:
    """Survived: the caller heard the hand-off, then the unanswered line, then the booking."""
    problems = []
    heard = " ".join(run.outcome.heard)
    if not heard.endswith(f"{run.unanswered_line} {BOOKING_REPLY}"):
        problems.append(f"the caller did not hear the unanswered line, then the reply: {heard}")
    if run.person_status != "no-answer":
        problems.append(f"the person's call ended {run.person_status!r}, not 'no-answer'")
    if [form["CallStatus"] for form in run.callbacks] != ["no-answer"]:
        problems.append(f"status callbacks: {run.callbacks}")
    if run.hangups:
        problems.append(f"the caller was hung up: {run.hangups}")
    turns = [(t["speaker"], t["heard"]) for t in (run.record or {}).get("turns", [])]
    if [speaker for speaker, _ in turns] != ["bot", "caller", "bot"] * 2:
        problems.append(f"the call's record, both streams: {turns}")
    elif turns[3][1] != run.unanswered_line or turns[5][1] != BOOKING_REPLY:
        problems.append(f"the record of the stream back from the transfer: {turns[3:]}")
    events = [(e["kind"], e["name"]) for e in (run.record or {}).get("events", [])]
    if ("tool_call", "transfer_call") not in events or ("transfer", "manager") not in events:
        problems.append(f"the transfer is not on record: {events}")
    run.outcome.problems, run.outcome.survived = problems, not problems
    run.outcome.figures = f"rang {RING_SECS} s; back on the bot on a new stream"
    return run


async def _nobody_answers() -> Outcome:
    return (await nobody_answers()).outcome


FAULTS = [
    Fault(
        "the transfer target not answering",
        f"a warm transfer whose person never answers ({RING_SECS} s ring)",
        _nobody_answers,
    ),
]
