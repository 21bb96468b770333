"""`python bot.py call --offline --pipeline <name>` works for every pipeline that ships."""

import argparse

import pytest

from harness.terminal_call import place_call
from pipelines.declaration import load_declarations

SHIPPED = load_declarations()
# A booking question and a goodbye, in each shipped language.
CALLER = {
    "en": ["book_table.wav", "goodbye.wav"],
    "es": ["es/reservar_mesa.wav", "es/despedida.wav"],
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
async def test_an_offline_call_to_each_shipped_pipeline(name, data, tmp_path, capsys):
    declaration = SHIPPED[name]
    args = argparse.Namespace(offline=True, pipeline=name, out=str(tmp_path / "bot.wav"))
    wavs = [data / wav for wav in CALLER[declaration.bot.language]]
    assert await place_call(args, SHIPPED, wavs) == 0

    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    spoken = [line for line in lines if line.startswith(("bot:", "caller:"))]
    assert spoken[0] == f"bot: {declaration.bot.greeting}"
    assert [line.split(":")[0] for line in spoken] == ["bot", "caller", "bot", "caller", "bot"]
    assert spoken[-1] == f"bot: {declaration.bot.farewell}"
    assert "(the bot ended the call; REST hang-up made)" in lines
    assert (tmp_path / "bot.wav").stat().st_size > 8000
