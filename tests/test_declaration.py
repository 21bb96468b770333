"""Pipeline files: what a valid one gives, and what a bad one says (file, key, valid choices)."""

import pytest

from pipelines.declaration import (
    ENGLISH_LINES,
    DeclarationError,
    load_declaration,
    load_declarations,
)
from pipelines.provider import ProviderAccess, ProviderContext
from pipelines.registry import STAGES

MINIMAL = """
[bot]
system_prompt = "Be brief."
greeting = "Hello."
farewell = "Bye."
[stt]
provider = "deepgram"
[llm]
provider = "openai"
[tts]
provider = "deepgram"
"""


CLAUDE_AND_ELEVENLABS = MINIMAL.replace(
    '[llm]\nprovider = "openai"', '[llm]\nprovider = "anthropic"'
).replace('[tts]\nprovider = "deepgram"', '[tts]\nprovider = "elevenlabs"\nvoice = "21m00Tcm4T"')

# A bot in Spanish says every line in Spanish (here: placeholders that are not the English ones).
SPANISH_BOT = '[bot]\nlanguage = "es"\n' + "".join(f'{key} = "¡{key}!"\n' for key in ENGLISH_LINES)


def write(tmp_path, text: str, name: str = "bad"):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_every_shipped_pipeline_is_valid():
    declarations = load_declarations()
    assert {"default", "spanish"} <= set(declarations)
    assert "routes" not in declarations  # the routing table is not a pipeline
    for declaration in declarations.values():
        assert declaration.bot.greeting and declaration.stages


def test_a_minimal_file_gets_defaults(tmp_path):
    declaration = load_declaration(write(tmp_path, MINIMAL, "mini"))
    assert declaration.name == "mini"
    assert declaration.bot.language == "en"
    assert declaration.turn.user_speech_timeout == 0.4
    assert declaration.turn_end == "speech-timeout"
    assert declaration.stt.provider.name == "deepgram"
    assert declaration.stt.options.model == "nova-3-general"
    assert declaration.summary() == "stt=deepgram llm=openai tts=deepgram"
    assert declaration.needs() == {"DEEPGRAM_API_KEY", "OPENAI_API_KEY"}


def test_each_stage_offers_its_providers():
    assert set(STAGES) == {"stt", "llm", "tts", "speech_to_speech"}
    assert {"deepgram", "openai-compatible", "openai"} <= {
        name for stage in STAGES.values() for name in stage
    }


@pytest.mark.parametrize(
    ("edit", "complaint"),
    [
        (
            ('provider = "deepgram"\n[llm]', 'provider = "whisper"\n[llm]'),
            "stt.provider: 'whisper' is not a known STT provider; choose one of: deepgram",
        ),
        (
            ("[tts]\n", "[tts]\nspeed = 2\n"),
            "tts.speed: unknown option of TTS provider 'deepgram'; valid options: voice",
        ),
        (
            ("[stt]\n", '[stt]\nmodle = "nova-2"\n'),
            "stt.modle: unknown option of STT provider 'deepgram'; valid options: model, language",
        ),
        (('greeting = "Hello."\n', ""), "bot.greeting: required, but missing"),
        (("[stt]", "[turn]\nvad_confidence = 3\n[stt]"), "turn.vad_confidence: Input should"),
        (
            ("[stt]", '[turn]\nend = "magic"\n[stt]'),
            "turn.end: Input should be 'speech-timeout', 'smart-turn' or 'provider'",
        ),
        (
            ("[stt]", '[turn]\nend = "provider"\n[stt]'),
            "turn.end: stt.provider 'deepgram' does not detect turn ends",
        ),
        (("[bot]", "[bots]\n[bot]"), "bots: unknown section; the sections are: bot, turn, call"),
        (('[tts]\nprovider = "deepgram"', ""), "[tts]: required, but missing (or declare"),
        (('[llm]\nprovider = "openai"', '[llm]\nprovider = "openai"\nmodel = ""'), "llm.model:"),
        (
            ('[llm]\nprovider = "openai"', '[llm]\nprovider = "openai-compatible"\nmodel = "m"'),
            "llm.base_url: required, but missing",
        ),
        (
            ("[stt]", '[speech_to_speech]\nprovider = "openai-realtime"\n[stt]'),
            "speech_to_speech: declare either [speech_to_speech] or [stt], [llm] and [tts]",
        ),
        (
            (
                '[stt]\nprovider = "deepgram"',
                '[turn]\nend = "speech-timeout"\n[stt]\nprovider = "deepgram-flux"',
            ),
            "turn.end: stt.provider 'deepgram-flux' decides when turns end itself",
        ),
        (("[bot]", "[bot"), "not valid TOML"),
    ],
)
def test_a_bad_file_names_itself_the_key_and_the_choices(tmp_path, edit, complaint):
    path = write(tmp_path, MINIMAL.replace(*edit, 1))
    with pytest.raises(DeclarationError) as e:
        load_declaration(path)
    assert str(path) in str(e.value)
    assert complaint in str(e.value)


@pytest.mark.parametrize(
    ("edit", "complaint"),
    [
        (('\nvoice = "21m00Tcm4T"', ""), "tts.voice: required, but missing"),
        (
            ('voice = "21m00Tcm4T"', 'voice = "v"\nspeed = 2'),
            "tts.speed: Input should be less than or equal to 1.2 (got 2)",
        ),
        (
            ('voice = "21m00Tcm4T"', 'voice = "v"\nmodel = "eleven_v3"'),
            "tts.model: eleven_v3 cannot stream over the multi-context WebSocket",
        ),
        (
            ('voice = "21m00Tcm4T"', 'voice = "v"\nstyle = 0.5'),
            "tts.style: unknown option of TTS provider 'elevenlabs'; valid options: voice, model,",
        ),
        (
            ('provider = "anthropic"', 'provider = "anthropic"\ntemperature = 1.5'),
            "llm.temperature: Input should be less than or equal to 1 (got 1.5)",
        ),
        (
            ('provider = "anthropic"', 'provider = "anthropic"\ntop_k = 5'),
            "llm.top_k: unknown option of LLM provider 'anthropic'; valid options: model, "
            "temperature, max_tokens",
        ),
        (
            ('provider = "anthropic"', 'provider = "anthropic"\nmax_tokens = 0'),
            "llm.max_tokens: Input should be greater than or equal to 1 (got 0)",
        ),
    ],
)
def test_bad_claude_or_elevenlabs_options_are_named(tmp_path, edit, complaint):
    path = write(tmp_path, CLAUDE_AND_ELEVENLABS.replace(*edit, 1))
    with pytest.raises(DeclarationError) as e:
        load_declaration(path)
    assert str(path) in str(e.value)
    assert complaint in str(e.value)


def test_every_problem_in_a_file_is_reported_at_once(tmp_path):
    text = MINIMAL.replace('provider = "openai"', 'provider = "gpt"').replace(
        "[tts]\n", "[tts]\nx=1\n"
    )
    with pytest.raises(DeclarationError) as e:
        load_declaration(write(tmp_path, text))
    assert "llm.provider: 'gpt'" in str(e.value) and "tts.x: unknown option" in str(e.value)


def test_an_openai_compatible_llm_needs_the_key_variable_it_names(tmp_path):
    text = MINIMAL.replace(
        '[llm]\nprovider = "openai"',
        '[llm]\nprovider = "openai-compatible"\nmodel = "llama-3.1-8b-instant"\n'
        'base_url = "https://api.groq.com/openai/v1/"\napi_key_env = "GROQ_API_KEY"',
    )
    declaration = load_declaration(write(tmp_path, text, "groq"))
    assert declaration.llm.options.base_url == "https://api.groq.com/openai/v1"
    assert declaration.needs() == {"DEEPGRAM_API_KEY", "GROQ_API_KEY"}


def test_the_language_is_the_bots_unless_a_stage_sets_its_own(tmp_path):
    declaration = load_declaration(write(tmp_path, MINIMAL.replace("[bot]\n", SPANISH_BOT), "es"))
    assert declaration.bot.language == "es"
    assert declaration.stt.options.language is None  # the factory uses the bot's


def test_a_missing_file_and_an_empty_directory_are_named(tmp_path):
    with pytest.raises(DeclarationError, match="nowhere.toml: cannot read"):
        load_declaration(tmp_path / "nowhere.toml")
    with pytest.raises(DeclarationError, match="no pipeline files"):
        load_declarations(tmp_path)


def test_a_provider_that_cannot_speak_the_bots_language_is_refused_at_load(tmp_path):
    text = MINIMAL.replace("[bot]\n", SPANISH_BOT).replace(
        '[stt]\nprovider = "deepgram"', '[stt]\nprovider = "deepgram-flux"'
    )
    with pytest.raises(DeclarationError) as e:
        load_declaration(write(tmp_path, text))
    assert (
        "stt: model 'flux-general-en' transcribes English only, but [bot] language is 'es'"
        in str(e.value)
    )
    declaration = load_declaration(
        write(
            tmp_path,
            text.replace('"deepgram-flux"', '"deepgram-flux"\nmodel = "flux-general-multi"'),
        )
    )
    assert declaration.turn_end == "provider"


def test_a_bot_in_another_language_must_say_its_fault_lines_in_it(tmp_path):
    text = MINIMAL.replace("[bot]\n", SPANISH_BOT).replace('time_up = "¡time_up!"\n', "")
    with pytest.raises(DeclarationError) as e:
        load_declaration(write(tmp_path, text.replace('apology = "¡apology!"\n', "")))
    assert (
        "bot: a bot in language 'es' must say these in it too: apology, time_up "
        "(the defaults are English)" in str(e.value)
    )


def test_call_limits_have_defaults_and_are_validated(tmp_path):
    declaration = load_declaration(write(tmp_path, MINIMAL, "ok"))
    assert declaration.bot.apology == ENGLISH_LINES["apology"]
    assert (declaration.call.silence_prompt_secs, declaration.call.max_secs) == (10.0, 1800.0)
    with pytest.raises(DeclarationError) as e:
        load_declaration(write(tmp_path, MINIMAL + "[call]\nmax_secs = 5\nsilent = 3\n"))
    assert "call.max_secs: Input should be greater than or equal to 10 (got 5)" in str(e.value)
    assert "call.silent: unknown option in [call]; valid options: silence_prompt_secs" in str(
        e.value
    )


def test_claude_and_elevenlabs_get_their_defaults_and_need_their_keys(tmp_path):
    declaration = load_declaration(write(tmp_path, CLAUDE_AND_ELEVENLABS, "claude"))
    assert declaration.summary() == "stt=deepgram llm=anthropic tts=elevenlabs"
    assert declaration.llm.options.model == "claude-haiku-4-5"
    assert declaration.llm.options.temperature is declaration.llm.options.max_tokens is None
    tts = declaration.tts.options
    assert (tts.voice, tts.model, tts.language, tts.speed) == (
        "21m00Tcm4T",
        "eleven_flash_v2_5",
        None,
        None,
    )
    assert declaration.needs() == {"DEEPGRAM_API_KEY", "ANTHROPIC_API_KEY", "ELEVENLABS_API_KEY"}


def test_elevenlabs_must_speak_the_bots_language_when_its_model_takes_one(tmp_path):
    spanish = CLAUDE_AND_ELEVENLABS.replace("[bot]\n", SPANISH_BOT)
    assert load_declaration(write(tmp_path, spanish, "es")).tts.options.language is None
    swahili = spanish.replace('language = "es"', 'language = "sw"')
    with pytest.raises(DeclarationError) as e:
        load_declaration(write(tmp_path, swahili, "sw"))
    assert "tts: model 'eleven_flash_v2_5' does not speak 'sw'; choose another model" in str(
        e.value
    )
    any_language = swahili.replace(
        'voice = "21m00Tcm4T"', 'voice = "v"\nmodel = "eleven_multilingual_v2"'
    )
    assert load_declaration(write(tmp_path, any_language, "sw")).tts.options.model


def test_claude_is_pipecats_stock_service_and_elevenlabs_its_with_live_contexts_only(tmp_path):
    from pipecat.services.anthropic.llm import AnthropicLLMService

    from services.elevenlabs_tts import LiveContextsElevenLabsTTSService

    declaration = load_declaration(write(tmp_path, CLAUDE_AND_ELEVENLABS, "claude"))
    access = ProviderAccess({"ANTHROPIC_API_KEY": "sk-ant", "ELEVENLABS_API_KEY": "xi"})
    context = ProviderContext(access=access, system_prompt="Be brief.", language="en-US")
    llm = declaration.llm.provider.make(declaration.llm.options, context)
    tts = declaration.tts.provider.make(declaration.tts.options, context)
    assert type(llm) is AnthropicLLMService and type(tts) is LiveContextsElevenLabsTTSService


def test_the_keypad_has_defaults_and_its_mistakes_are_named(tmp_path):
    keypad = load_declaration(write(tmp_path, MINIMAL, "ok")).keypad
    assert (keypad.end_key, keypad.max_digits, keypad.pause_secs, keypad.shortcuts) == (
        "#",
        0,
        1.5,
        {},
    )
    shortcuts = '[keypad]\nend_key = "9"\npause_secs = 0\n[keypad.shortcuts]\n"0" = "dial"\n'
    with pytest.raises(DeclarationError) as e:
        load_declaration(write(tmp_path, MINIMAL + shortcuts))
    complaint = str(e.value)
    assert "keypad.end_key: Input should be '#', '*' or ''" in complaint
    assert "keypad.pause_secs: Input should be greater than or equal to 0.3 (got 0)" in complaint
    assert "keypad.shortcuts: key '0': 'dial' is not a keypad action; choose one of: " in (
        complaint
    )
    with pytest.raises(DeclarationError) as e:
        load_declaration(write(tmp_path, MINIMAL + '[keypad.shortcuts]\n"0" = "transfer"\n'))
    assert "key '0': 'transfer' needs a [[transfer]] target" in str(e.value)
    with pytest.raises(DeclarationError) as e:
        load_declaration(write(tmp_path, MINIMAL + '[keypad.shortcuts]\n"x" = "repeat"\n'))
    assert "keypad.shortcuts: 'x' is not a key of a phone's keypad: 0-9, * or #" in str(e.value)


def test_speech_to_speech_takes_no_keypad_yet(tmp_path):
    realtime = '[bot]\nsystem_prompt = "Hi."\ngreeting = "Hi."\nfarewell = "Bye."\n'
    realtime += '[speech_to_speech]\nprovider = "openai-realtime"\n[keypad]\nmax_digits = 4\n'
    with pytest.raises(DeclarationError) as e:
        load_declaration(write(tmp_path, realtime))
    assert "keypad: not available with [speech_to_speech] yet" in str(e.value)
