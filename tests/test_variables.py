"""A call's variables in its bot's lines: filled where named, checked before the call is placed."""

from dataclasses import replace

import pytest

from pipelines.declaration import load_declarations
from pipelines.variables import VariablesError, check, fill, placeholders, with_variables


@pytest.fixture
def default():
    return load_declarations()["default"]


def test_named_variables_are_filled_and_other_braces_left_alone():
    text = 'Hi {name}, your code is {code}. Reply as JSON: {"ok": true} or {{name}}.'
    assert fill(text, {"name": "Ada"}) == (
        'Hi Ada, your code is {code}. Reply as JSON: {"ok": true} or {Ada}.'
    )
    assert placeholders(text) == {"name", "code"}
    assert placeholders(None) == set()


def test_a_call_gets_its_prompt_and_outbound_lines_filled_and_the_pipeline_is_untouched(default):
    prompted = replace(
        default, bot=default.bot.model_copy(update={"system_prompt": "Call {name}."})
    )
    filled = with_variables(prompted, {"name": "Ada"})
    assert filled.bot.system_prompt == "Call Ada."
    assert filled.bot.outbound_greeting.startswith("Hi Ada, this is Luigi's")
    assert filled.bot.voicemail.startswith("Hi Ada, this is Luigi's")
    assert filled.bot.greeting == default.bot.greeting
    assert prompted.bot.system_prompt == "Call {name}."
    assert with_variables(default, {}) is default


def test_variables_the_outbound_lines_name_must_be_given(default):
    check(default, {"name": "Ada", "extra": "kept"})
    with pytest.raises(VariablesError, match=r"says \{name\} in its outbound lines: give name"):
        check(default, {})
    with pytest.raises(VariablesError, match="must be identifiers"):
        check(default, {"name": "Ada", "first-name": "Ada"})
