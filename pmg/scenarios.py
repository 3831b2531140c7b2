"""What each scenario needs, in one table: the built-in models that fit it and the benchmarks that test it.

    scenario   generator and scorer ('auto')            soft adapter ('auto')             benchmarks
    emoticon   pmg-mini                                 pmg-mini/soft-emoticon            emoticons, emoticons-open
    clothing   pmg-mini-fashion (pmg-mini if absent)    pmg-mini-fashion/soft-clothing    clothing
    movie      pmg-mini                                 none                              movies (text only)

The weight grid, the selection's a, the steps and the noises are each generator's own (its
``model_index.json``). ``PMG.from_names``, ``pmg generate``, ``pmg batch``, ``pmg eval`` and ``pmg serve``
all resolve 'auto' here, so a user gets the same models whichever way PMG is called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SCENARIOS", "DEFAULT_SCENARIO", "AUTO", "default_model", "resolve_models", "bundled_adapters",
           "Benchmark", "BENCHMARKS", "benchmark"]

AUTO = "auto"
DEFAULT_SCENARIO = "emoticon"  # what an 'auto' PMG built for no scenario in particular loads first
# scenario -> built-in models in order of preference: the first one installed in the models folder is used
SCENARIOS: dict[str, tuple[str, ...]] = {
    "emoticon": ("pmg-mini",),
    "clothing": ("pmg-mini-fashion", "pmg-mini"),
    "movie": ("pmg-mini",),
}


def default_model(scenario: str | None) -> str:
    """The built-in generator and scorer ('auto') for a scenario: its first installed model."""
    from pmg.registry import models_dir

    choices = SCENARIOS.get(scenario or DEFAULT_SCENARIO, SCENARIOS[DEFAULT_SCENARIO])
    return next((m for m in choices if (models_dir() / m / "model_index.json").is_file()), choices[-1])


def resolve_models(generator: str, scorer: str, scenario: str | None) -> tuple[str, str]:
    """(generator, scorer) with 'auto' replaced by the scenario's built-in model."""
    return (default_model(scenario) if str(generator) == AUTO else str(generator),
            default_model(scenario) if str(scorer) == AUTO else str(scorer))


def bundled_adapters(generator: str) -> dict[str, Path]:
    """scenario -> the soft-embedding adapter shipped with a built-in generator (``<model>/soft-<scenario>``;
    none for other generators)."""
    from pmg.registry import BUILTIN_MODELS, models_dir

    if str(generator) not in BUILTIN_MODELS:
        return {}
    return {p.name.removeprefix("soft-"): p for p in sorted((models_dir() / str(generator)).glob("soft-*"))
            if (p / "soft_config.json").is_file()}


# ------------------------------------------------------------------------------------ benchmarks
@dataclass(frozen=True)
class Benchmark:
    """A benchmark ``pmg eval`` can build and run.

    ``build(out, art=..., users=..., seed=...)`` writes users/, ground_truth.json, split.json (and images/)
    and returns its info; ``images``: generated images are compared with the ground truth (Tables 2-4),
    else keywords only (text-side metrics); ``extras``: per-record checks beyond Table 2
    (``pmg.evaluation.extras``): 'ideal-image' (rank among all real emoji of the style, needs the art
    folder), 'garments' (colour, pattern and type the scorer reads), 'theme-named' (a preference keyword
    names the user's theme)."""

    name: str
    scenario: str
    build: Callable[..., dict]
    images: bool = True
    extras: tuple[str, ...] = ()
    about: tuple[str, ...] = ()  # ground-truth fields that describe a user on the samples sheet


def _build_emoticons(out: Path, *, art: Path, users: int, seed: int = 0) -> dict:
    from pmg.evaluation.benchmarks.emoticons import build_emoticon_benchmark

    return build_emoticon_benchmark(art, out, n_users=users, seed=seed)


def _build_open_themes(out: Path, *, art: Path, users: int, seed: int = 0) -> dict:
    from pmg.evaluation.benchmarks.open_themes import build_open_theme_benchmark

    return build_open_theme_benchmark(art, out, n_users=users, seed=seed)


def _build_clothing(out: Path, *, art: Path, users: int, seed: int = 0) -> dict:
    from pmg.evaluation.benchmarks.clothing import build_clothing_benchmark

    return build_clothing_benchmark(out, n_users=users, seed=seed)


def _build_movies(out: Path, *, art: Path, users: int, seed: int = 0) -> dict:
    from pmg.evaluation.benchmarks.movies import build_movie_benchmark

    return build_movie_benchmark(out)


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("emoticons", "emoticon", _build_emoticons, extras=("ideal-image",), about=("theme", "style", "mood")),
    Benchmark("emoticons-open", "emoticon", _build_open_themes, extras=("ideal-image", "theme-named"), about=("theme", "style", "mood")),
    Benchmark("clothing", "clothing", _build_clothing, extras=("garments",), about=("colour", "pattern", "type")),
    Benchmark("movies", "movie", _build_movies, images=False),
)}


def benchmark(name: str) -> Benchmark:
    from pmg.errors import ConfigError

    if name not in BENCHMARKS:
        raise ConfigError(f"--benchmark {name!r}: one of {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]
