"""`[[tools]]` in a pipeline file: what a valid entry gives, and what a bad one says."""

import pytest
from test_declaration import MINIMAL

from pipelines.declaration import DeclarationError, load_declaration
from pipelines.provider import ProviderAccess
from pipelines.routing import load_routes
from server.served_pipelines import served_pipelines
from server.settings import ConfigError

TOOL = """
[[tools]]
name = "check_availability"
description = "Check whether a table is free."
url = "https://booking.example.com/availability/{date}?party={party_size}"
secret_env = "BOOKING_SIGNING_SECRET"
filler = "One moment."
[tools.headers]
Authorization = "BOOKING_AUTHORIZATION"
[tools.parameters]
required = ["date", "party_size"]
[tools.parameters.properties.date]
type = "string"
description = "the day"
[tools.parameters.properties.party_size]
type = "integer"
minimum = 1
"""


def load(tmp_path, text: str):
    path = tmp_path / "bot.toml"
    path.write_text(MINIMAL + text)
    return load_declaration(path)


def problems(tmp_path, text: str) -> str:
    with pytest.raises(DeclarationError) as caught:
        load(tmp_path, text)
    return str(caught.value)


def test_a_declared_tool_is_offered_to_the_llm_with_its_schema(tmp_path):
    declaration = load(tmp_path, TOOL)
    (tool,) = declaration.tools
    assert (tool.method, tool.timeout_secs, tool.filler_after_secs) == ("POST", 5.0, 1.0)
    schema = tool.schema()
    assert schema.name == "check_availability" and schema.required == ["date", "party_size"]
    assert schema.properties == {
        "date": {"type": "string", "description": "the day"},
        "party_size": {"type": "integer", "minimum": 1},
    }


def test_the_variables_a_tool_names_are_needed_to_serve_its_pipeline(tmp_path):
    declaration = load(tmp_path, TOOL)
    assert {"BOOKING_AUTHORIZATION", "BOOKING_SIGNING_SECRET"} <= declaration.needs()
    access = ProviderAccess({"DEEPGRAM_API_KEY": "k", "OPENAI_API_KEY": "k"})
    routes = load_routes("bot", {"bot"}, tmp_path / "routes.toml")
    with pytest.raises(ConfigError) as caught:
        served_pipelines({"bot": declaration}, access, routes)
    assert "BOOKING_SIGNING_SECRET is not set" in str(caught.value)
    assert "needs it for tool 'check_availability'" in str(caught.value)


@pytest.mark.parametrize(
    ("edit", "complaint"),
    [
        (
            ('name = "check_availability"', 'name = "end_call"'),
            "tools[0].name: 'end_call' is built in; choose another name",
        ),
        (
            ('url = "https://booking.example.com', 'method = "FETCH"\nurl = "https://x'),
            "tools[0].method: Input should be 'GET', 'POST', 'PUT', 'PATCH' or 'DELETE'",
        ),
        (
            ("{date}?", "{day}?"),
            "tools[0].url: {day} is not a parameter; declared: date, party_size",
        ),
        (
            ('required = ["date", "party_size"]', 'required = ["party_size"]'),
            "tools[0].url: {date} must be in parameters.required",
        ),
        (
            ("https://booking.example.com", "ftp://booking.example.com"),
            "tools[0].url: must be an http:// or https:// URL with a host",
        ),
        (
            ("https://booking.example.com", "https://{date}.example.com"),
            "tools[0].url: the host cannot hold a {parameter}",
        ),
        (
            ('"BOOKING_AUTHORIZATION"', '"Bearer abc"'),
            "tools[0].headers.Authorization: must name an environment variable",
        ),
        (
            ('filler = "One moment."', 'filler = "One moment."\nfiller_after_secs = 6'),
            "tools[0].filler_after_secs: must be less than timeout_secs (5)",
        ),
        (
            ('filler = "One moment."', 'filler = "One moment."\nretries = 2'),
            "tools[0].retries: unknown option in [tools[0]]; valid options: name, description",
        ),
        (
            ('type = "integer"', 'type = "int"'),
            "tools[0].parameters.properties.party_size.type: Input should be 'string'",
        ),
    ],
)
def test_a_bad_tool_is_named_with_its_key_and_the_choices(tmp_path, edit, complaint):
    old, new = edit
    assert old in TOOL
    assert complaint in problems(tmp_path, TOOL.replace(old, new))


def test_a_get_tool_sends_its_arguments_only_in_the_url_and_cannot_be_signed(tmp_path):
    text = TOOL.replace("[[tools]]", '[[tools]]\nmethod = "GET"').replace("?party={party_size}", "")
    said = problems(tmp_path, text)
    assert "tools[0].parameters.properties.party_size: a GET tool sends its arguments only" in said
    assert "tools[0].secret_env: the signature covers the request body" in said


def test_two_tools_of_one_name_are_refused(tmp_path):
    assert "tools[1].name: 'check_availability' is declared twice" in problems(
        tmp_path, TOOL + TOOL
    )
