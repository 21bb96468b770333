"""The dial command's input and report: the numbers file, `--var`, progress lines, the summary."""

import re

import pytest

from dialer.campaign import Attempt, Retries, _progress, summary, write_results
from dialer.numbers import NumbersError, Target, parse_variables, read_numbers


def test_each_row_is_a_number_its_pipeline_and_its_variables(tmp_path):
    path = tmp_path / "numbers.csv"
    path.write_text("to,name,pipeline,table\n+15550100001,Ada,,4\n +15550100002 ,Alan,spanish,\n")
    assert read_numbers(path) == [
        Target("+15550100001", None, {"name": "Ada", "table": "4"}),
        Target("+15550100002", "spanish", {"name": "Alan", "table": ""}),
    ]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("number,name\n+1555,Ada\n", "no 'to' column (the header is ['number', 'name'])"),
        ("to,name\n,Ada\n", "numbers.csv:2: no number in the 'to' column"),
        ("to\n", "numbers.csv: no numbers"),
        ("", "no 'to' column"),
    ],
)
def test_a_malformed_numbers_file_is_named_with_its_line(tmp_path, text, complaint):
    path = tmp_path / "numbers.csv"
    path.write_text(text)
    with pytest.raises(NumbersError, match=re.escape(complaint)):
        read_numbers(path)


def test_a_missing_file_and_a_var_without_a_value_are_named(tmp_path):
    with pytest.raises(NumbersError, match="cannot read"):
        read_numbers(tmp_path / "none.csv")
    assert parse_variables(["name=Ada", "note=a=b"]) == {"name": "Ada", "note": "a=b"}
    with pytest.raises(NumbersError, match="--var 'name': write it as name=value"):
        parse_variables(["name"])


def test_the_summary_counts_each_numbers_last_outcome_and_every_call(tmp_path):
    ada, alan = Target("+15550100001"), Target("+15550100002", variables={"name": "Alan"})
    attempts = [
        Attempt(ada, 1, "CA1", "busy"),
        Attempt(alan, 1, "CA2", "voicemail"),
        Attempt(ada, 2, "CA3", "answered"),
    ]
    assert summary(attempts) == (
        "2 numbers, 3 calls: 1 answered, 1 voicemail, 0 busy, 0 no answer, 0 failed"
    )
    write_results(tmp_path / "out.csv", attempts)
    assert (tmp_path / "out.csv").read_text().splitlines() == [
        "to,attempt,call_sid,outcome,error,variables",
        "+15550100001,1,CA1,busy,,",
        "+15550100002,1,CA2,voicemail,,name=Alan",
        "+15550100001,2,CA3,answered,,",
    ]


def test_a_progress_line_says_the_outcome_the_attempt_and_what_comes_next():
    busy = Attempt(Target("+15550100001"), 1, "CA1", "busy")
    assert _progress(busy, Retries(2, 60), True, "[ 3/10]") == (
        "[ 3/10] +15550100001  busy (attempt 1 of 3, CA1); again in 60 s"
    )
    failed = Attempt(Target("+15550100001"), 1, "", "failed", error="HTTP 400: to: must be")
    assert _progress(failed, Retries(0, 60), False, "[1/1]") == (
        "[1/1] +15550100001  failed (attempt 1 of 1, HTTP 400: to: must be)"
    )
