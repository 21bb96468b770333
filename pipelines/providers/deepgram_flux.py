"""Deepgram Flux: streaming STT that decides when the caller's turn ends (DEEPGRAM_API_KEY)."""

from typing import Literal

from pydantic import Field

from pipelines.provider import Options, Provider, ProviderContext
from pipelines.providers.deepgram import KEY, base_url
from services.deepgram_flux import FluxSTTService

ENGLISH_ONLY = "flux-general-en"
EAGER_EOT_THRESHOLD = 0.5  # pipecat's default when eager end of turn is on


class FluxOptions(Options):
    """Deepgram Flux, `/v2/listen`: transcripts by turn, with its own end of turn."""

    model: Literal["flux-general-en", "flux-general-multi"] = ENGLISH_ONLY
    eot_threshold: float | None = Field(
        default=None, ge=0.5, le=1.0, description="end-of-turn confidence to end a turn (0.7)"
    )
    eager_eot_threshold: float | None = Field(
        default=None,
        ge=0.3,
        le=0.9,
        description=f"with [turn] speculative: Flux's guess that starts a reply "
        f"({EAGER_EOT_THRESHOLD})",
    )
    eot_timeout_ms: int | None = Field(
        default=None, ge=500, le=60000, description="silence that ends a turn anyway (5000)"
    )
    keyterms: list[str] = Field(default_factory=list, description="words to favour")
    language_hints: list[str] = Field(
        default_factory=list, description="flux-general-multi only; default: the bot's language"
    )


def check_language(options: FluxOptions, language: str) -> str | None:
    """Why the model cannot transcribe the bot's language, if it cannot."""
    if options.model == ENGLISH_ONLY and not language.lower().startswith("en"):
        return (
            f"model {ENGLISH_ONLY!r} transcribes English only, but [bot] language is "
            f'{language!r}: set model = "flux-general-multi"'
        )
    return None


def make_flux(options: FluxOptions, context: ProviderContext) -> FluxSTTService:
    """Flux at the call's rate in linear16; audio buffered while the socket opens.

    With speculative replies, Flux's eager end of turn (`eager_eot_threshold`) starts them.
    """
    language = context.language.split("-")[0].lower()
    multi = options.model != ENGLISH_ONLY
    eager = options.eager_eot_threshold or EAGER_EOT_THRESHOLD
    settings = FluxSTTService.Settings(
        model=options.model,
        eager_eot_threshold=eager if context.speculative else None,
        eot_threshold=options.eot_threshold,
        eot_timeout_ms=options.eot_timeout_ms,
        keyterm=list(options.keyterms),
        language_hints=(options.language_hints or [language]) if multi else None,
    )
    return FluxSTTService(
        api_key=context.access[KEY],
        url=f"{base_url(context)}/v2/listen",
        sample_rate=context.sample_rate,
        settings=settings,
    )


STT = [
    Provider(
        "deepgram-flux",
        "Deepgram Flux, streaming, ends turns itself",
        FluxOptions,
        make_flux,
        lambda _: (KEY,),
        turn_ends="own",
        check=check_language,
    )
]
