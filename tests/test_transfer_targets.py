"""`[[transfer]]` in a pipeline file: what a valid one gives the LLM, what a bad one says."""

import pytest
from test_declaration import MINIMAL, write

from pipelines.build import call_context, turns
from pipelines.declaration import DeclarationError, load_declaration, load_declarations
from telephony.lifecycle import CallLifecycle

MANAGER = """
[[transfer]]
name = "manager"
to = "+15555550100"
description = "The manager."
"""


def offered(declaration) -> list[str]:
    context, _ = call_context(declaration, turns(declaration), CallLifecycle(), None)
    return [tool.name for tool in context.tools.standard_tools]


def test_the_shipped_default_offers_its_manager_to_the_llm():
    default = load_declarations()["default"]
    (manager,) = default.transfers
    assert (manager.name, manager.mode, manager.fallback) == ("manager", "cold", "bot")
    assert offered(default) == ["end_call", "transfer_call"]


def test_transfer_call_is_offered_only_when_targets_are_declared(tmp_path):
    assert offered(load_declaration(write(tmp_path, MINIMAL))) == ["end_call"]
    with_one = load_declaration(write(tmp_path, MINIMAL + MANAGER))
    assert offered(with_one) == ["end_call", "transfer_call"]


def test_a_target_takes_a_number_or_a_sip_address_and_its_defaults(tmp_path):
    sip = MANAGER.replace('"+15555550100"', '"sip:desk@pbx.example.com"')
    (target,) = load_declaration(write(tmp_path, MINIMAL + sip)).transfers
    assert target.to == "sip:desk@pbx.example.com"
    assert (target.ring_secs, target.caller_id, target.hold_music) == (20, None, None)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ('to = "555-0100"', "transfer[0].to: to must be an E.164 number (+15551234567) or a SIP"),
        ('mode = "hot"', "transfer[0].mode: Input should be 'cold' or 'warm' (got 'hot')"),
        ('fallback = "voicemail"', 'transfer[0].fallback: fallback must be "bot", "hangup", or'),
        ("ring_secs = 2", "transfer[0].ring_secs: Input should be greater than or equal to 5"),
        ('hold_music = "https://x.example/m.mp3"', 'hold_music is for mode = "warm"'),
        ('caller_id = "sip:a@b.c"', "transfer[0].caller_id: caller_id must be an E.164 number"),
        (
            'numbr = "+1"',
            "transfer[0].numbr: unknown option in [transfer[0]]; valid options: name, to,",
        ),
    ],
)
def test_a_bad_target_names_the_file_the_key_and_the_choices(tmp_path, line, says):
    key = line.split(" =")[0]
    target = [kept for kept in MANAGER.splitlines() if not kept.startswith(f"{key} =")]
    path = write(tmp_path, MINIMAL + "\n".join([*target, line]) + "\n")
    with pytest.raises(DeclarationError) as raised:
        load_declaration(path)
    assert str(raised.value).startswith(f"{path}: invalid pipeline declaration")
    assert says in str(raised.value)


def test_two_targets_of_one_name_are_refused(tmp_path):
    with pytest.raises(DeclarationError, match="the name 'manager' is declared more than once"):
        load_declaration(write(tmp_path, MINIMAL + MANAGER + MANAGER))


def test_transfer_must_be_a_list_of_tables(tmp_path):
    bad = MINIMAL + '[transfer]\nname = "manager"\n'
    with pytest.raises(DeclarationError, match=r"transfer: must be a list of tables"):
        load_declaration(write(tmp_path, bad))
