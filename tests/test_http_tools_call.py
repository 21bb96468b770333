"""HTTP tools declared in the pipeline file, over whole calls (harness/faults/tools.py).

The caller asks to book a table; the LLM stand-in calls `check_availability`, declared in the
default pipeline's file and pointed at the booking-system stand-in, and answers from its
result; then the caller asks when the restaurant opens.
"""

from harness.faults.tools import API_KEY, FILLER, OPENING_REPLY, SECRET, book
from standins.booking_service import API_KEY_HEADER
from standins.script import BOOKING_ARGUMENTS, GREETING


async def test_the_caller_hears_the_answer_the_booking_system_gave(debug_lines):
    run = await book()

    assert len(run.tool_requests) == 1 and len(run.answers) == 1
    request, answer = run.tool_requests[0], run.answers[0]
    assert request.method == "POST" and request.path == "/availability/tomorrow"
    assert request.arguments == BOOKING_ARGUMENTS
    assert request.signed and request.headers[API_KEY_HEADER] == API_KEY
    assert answer in run.results_sent(), "the JSON answer went back to the LLM"
    assert run.outcome.heard == [GREETING, answer["message"], OPENING_REPLY]
    assert FILLER not in run.outcome.heard, "a prompt answer needs no filler"
    assert not [line for line in debug_lines if API_KEY in line or SECRET in line]


async def test_a_slow_booking_system_gets_the_filler_line_once_then_its_answer():
    run = await book(delay=2.5)

    answer = run.answers[0]
    assert run.outcome.heard == [GREETING, FILLER, answer["message"], OPENING_REPLY]
    assert answer in run.results_sent()


async def test_a_caller_who_talks_over_the_filler_still_gets_the_booking_answer():
    run = await book(delay=5.0, tool_timeout=8.0, barge_in=True)

    answer = run.answers[0]
    greeting, filler, *rest = run.outcome.heard
    assert greeting == GREETING
    assert filler.endswith("…") and FILLER.startswith(filler[:-1]), "the filler was cut"
    assert rest == [OPENING_REPLY, answer["message"]], "the question answered, then the result"
    assert answer in run.results_sent(), "the result landed in the context"
