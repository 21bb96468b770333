"""`python bot.py providers`: every provider with its options, and the README shows the same."""

from pathlib import Path

from pipelines.catalogue import describe_providers
from pipelines.registry import STAGES

README = Path(__file__).parent.parent / "README.md"


def test_every_provider_and_option_is_listed():
    text = describe_providers()
    for providers in STAGES.values():
        for name, provider in providers.items():
            assert f'provider = "{name}"  # {provider.summary}' in text
            for option in provider.options.model_fields:
                assert f"    {option} = " in text


def test_the_readme_lists_the_providers_as_the_registry_has_them():
    assert describe_providers() in README.read_text(), "paste `python bot.py providers` in README"
