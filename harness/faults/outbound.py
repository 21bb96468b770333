"""Outbound call faults: Twilio's answering machine verdict never comes.

The detection timeout is shortened to Twilio's minimum (3 s) by copying the shipped default
pipeline, so the call takes seconds.
"""

from dataclasses import dataclass, field, replace
from functools import partial

from loguru import logger

from dialer.api import BotAPI
from harness.faults import Fault, Outcome, bot_with, heard_sentences, outcome_of
from pipelines.declaration import Declaration, load_declarations
from recordings import RECORDINGS
from server.answer_screening import VERDICT_GRACE_SECS
from standins.callee import Callee

API_TOKEN = "faults-api-token-0123456789"
CALLEE = "+15550123456"
DETECTION_SECS = 3  # Twilio's least MachineDetectionTimeout
GREETING = (
    "Hi Ada, this is Luigi's restaurant calling about your table booking. Do you have a moment?"
)
FAREWELL = "Thanks for calling Luigi's. Goodbye!"


@dataclass
class LostVerdictRun:
    """A call whose verdict never came: what the callee heard, and when, and the log."""

    outcome: Outcome
    greeted_after: float | None = None  # seconds from the pick-up to the greeting's first audio
    amd_posts: int = 0  # verdicts the stand-in posted (none: it was lost)
    logs: list[str] = field(default_factory=list)  # WARNING and above
    status: str = ""  # how Twilio saw the call end


def quick_detection() -> dict[str, Declaration]:
    """The shipped pipelines, the default detecting machines for at most 3 s."""
    shipped = load_declarations()
    default = shipped["default"]
    outbound = default.outbound.model_copy(
        update={"machine_detection_timeout_secs": DETECTION_SECS}
    )
    return shipped | {"default": replace(default, outbound=outbound)}


async def verdict_never_comes() -> LostVerdictRun:
    """A person answers an outbound call; Twilio never posts who answered.

    They should be greeted once the verdict is overdue, and talk with the bot as usual.
    """
    logs: list[str] = []
    sink = logger.add(lambda m: logs.append(m.record["message"]), level="WARNING")
    env = {"API_TOKEN": API_TOKEN, "TWILIO_PHONE_NUMBER": "+15550100000"}
    try:
        async with bot_with(env=env, declarations=quick_detection()) as (bot, standins):
            standins.twilio.amd_callbacks = False
            standins.twilio.callees[CALLEE] = Callee(says=(RECORDINGS / "goodbye.wav",))
            call_sid = await BotAPI(bot.url, API_TOKEN).place(CALLEE, variables={"name": "Ada"})
            callee = await standins.twilio.answered(call_sid)
            status = await standins.twilio.wait_ended(call_sid, timeout=60)
            heard = heard_sentences(callee, [GREETING, FAREWELL])
            run = LostVerdictRun(
                outcome=Outcome(False, heard),
                greeted_after=callee.heard[0].start if callee.heard else None,
                amd_posts=len([c for c in standins.twilio.callbacks if c.kind == "amd"]),
                logs=logs,
                status=status,
            )
    finally:
        logger.remove(sink)
    return judge(run)


def judge(run: LostVerdictRun) -> LostVerdictRun:
    """Survived: greeted in full once the verdict was overdue, the call went on and ended."""
    problems = []
    if run.outcome.heard != [GREETING, FAREWELL]:
        problems.append(f"expected the greeting, then the farewell; heard {run.outcome.heard}")
    if run.amd_posts:
        problems.append(f"{run.amd_posts} verdict(s) were posted: the fault was not injected")
    if not any("no answering-machine verdict" in line for line in run.logs):
        problems.append("no warning that the verdict never came")
    if run.status != "completed":
        problems.append(f"the call ended {run.status!r} at Twilio")
    wait = DETECTION_SECS + VERDICT_GRACE_SECS
    greeted = "never" if run.greeted_after is None else f"{run.greeted_after:.1f} s"
    run.outcome.figures = (
        f"greeted {greeted} after the pick-up (detection timeout {DETECTION_SECS} s "
        f"+ {VERDICT_GRACE_SECS:g} s grace = {wait:g} s)"
    )
    run.outcome.problems, run.outcome.survived = problems, not problems
    return run


FAULTS = [
    Fault(
        "the AMD callback never comes",
        "Twilio never posts AsyncAmdStatusCallback for an outbound call a person answers",
        partial(outcome_of, verdict_never_comes),
    ),
]
