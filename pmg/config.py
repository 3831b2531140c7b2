"""Generation options as one typed config: each field carries its help and its option name.

``GenerationConfig`` is the one place generation options are declared and validated. The command
line (``pmg.cli``) and the service's request schema (``pmg.service.schemas``) are built from its
fields: their help, option names and bounds (``pmg.limits.OPTION_BOUNDS``) come from here, so they
cannot disagree. Errors name the option (``steps must be ...``), never a command-line flag.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from pmg.conditioning.weighting import normalize_weights
from pmg.errors import ConfigError

__all__ = ["GenerationConfig", "OPTION_NAMES", "option", "option_name", "check_noises"]


def option(default, help: str, *, flag: str | None = None, ablation: bool = False):
    """A config field with its help; ``flag``: the command line's name when it is not the option's own
    (``no-keywords`` for ``use_keywords``); ``ablation``: a paper ablation (``pmg eval`` sets it itself)."""
    return field(default=default, metadata={"help": help, "flag": flag, "ablation": ablation})


def _checked_grid(weights) -> tuple[tuple[float, float], ...]:
    """A grid as given ('0:4,2:2' or pairs) -> validated (w_p, w_t) float pairs, or ConfigError naming the bad value."""
    from pmg.conditioning.weighting import parse_grid
    from pmg.limits import MAX_GRID, MAX_WEIGHT, check_number

    if isinstance(weights, str):
        try:
            weights = parse_grid(weights)
        except ValueError as e:
            raise ConfigError(f"weights: {e}") from None
    try:
        pairs = tuple((float(wp), float(wt)) for wp, wt in weights)
    except (TypeError, ValueError):
        raise ConfigError(f"weights must be (w_p, w_t) pairs, got {weights!r}") from None
    if not 1 <= len(pairs) <= MAX_GRID:
        raise ConfigError(f"weights: the grid must have 1 to {MAX_GRID} pairs, got {len(pairs)}")
    for wp, wt in pairs:
        check_number(wp, "weights (w_p)", 0.0, MAX_WEIGHT)
        check_number(wt, "weights (w_t)", 0.0, MAX_WEIGHT)
        try:
            normalize_weights(wp, wt)
        except ValueError as e:
            raise ConfigError(f"weights: {e}") from None
    return pairs


def check_noises(noises, n_weights: int) -> None:
    """An integer >= 1 whose grid (weightings x noises) stays within ``MAX_GRID`` candidates."""
    from pmg.limits import MAX_GRID

    if isinstance(noises, bool) or not isinstance(noises, int) or noises < 1:
        raise ConfigError(f"noises must be an integer >= 1, got {noises!r}")
    if noises * n_weights > MAX_GRID:
        raise ConfigError(f"noises {noises} x {n_weights} weightings = {noises * n_weights} candidates, at most {MAX_GRID}")


OPTION_NAMES = {"num_inference_steps": "steps", "guidance_scale": "guidance"}  # field -> option (CLI, service)


def option_name(field_name: str) -> str:
    return OPTION_NAMES.get(field_name, field_name)


@dataclass
class GenerationConfig:
    seed: int = option(0, "seed of the initial noise")
    alpha: float | None = option(None, "the selection's a in z = a log d_p + (1 - a) log d_t (default: the generator's own; "
                                       "the paper's 0.5)")
    weights: tuple[tuple[float, float], ...] | None = option(
        None, "grid of w_p:w_t ratios (default: the generator's own; the paper's 0:4,1:3,2:2,3:1,4:0 unless its folder says)")
    num_inference_steps: int | None = option(None, "denoising steps (default: the generator's own, 10 for pmg-mini)")
    guidance_scale: float = option(4.0, "classifier-free guidance scale")
    negative_prompt: str = option("", "text the image should not show", ablation=True)
    use_keywords: bool = option(True, "false: the paper's 'without keywords' ablation", flag="no-keywords", ablation=True)
    use_soft: bool = option(True, "false: the paper's 'without soft embeddings' ablation", flag="no-soft", ablation=True)
    weighting: Literal["embedding", "guidance"] = option(
        "embedding", "how w_p:w_t act: 'embedding' weighs the encoded conditions (the paper), 'guidance' mixes "
                     "per-condition guidance directions")
    noises: int | None = option(None, "initial noises per weighting, all scored (default: the generator's own; 1, the "
                                      "paper's, unless its folder says)")
    history_images: bool = option(True, "false: the history's pictures stay out of the preference condition (image "
                                        "prompts; generators that take pictures)", flag="no-history-images")
    target_images: bool = option(True, "false: no picture of the target (its own, or a gallery exemplar) in the target "
                                       "condition", flag="no-target-images")
    image_k: int = option(3, "history pictures in the preference condition, the most used first")
    image_scale: float = option(1.0, "scale of the image tokens, times w_p or w_t")
    picture_weight: float = option(0.5, "share of picture similarity in the selection's d_p and d_t (to the history's "
                                        "and the target's pictures)")

    def __post_init__(self):
        """The one place generation options are validated (the CLI and the service only parse); the
        bounds are ``pmg.limits``'. Errors use the options' short names (``OPTION_NAMES``)."""
        from pmg.conditioning.weighting import WEIGHTINGS
        from pmg.limits import MAX_NEGATIVE_PROMPT_CHARS, OPTION_BOUNDS, check_integer, check_number, check_seed

        check_seed(self.seed, "seed")
        if self.alpha is not None:
            check_number(self.alpha, "alpha", *OPTION_BOUNDS["alpha"])
        check_number(self.guidance_scale, "guidance", *OPTION_BOUNDS["guidance_scale"])
        if self.num_inference_steps is not None:
            check_integer(self.num_inference_steps, "steps", *OPTION_BOUNDS["num_inference_steps"])
        if self.weights is not None:
            self.weights = _checked_grid(self.weights)
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}")
        if self.noises is not None:
            check_noises(self.noises, len(self.weights) if self.weights is not None else 1)
        check_integer(self.image_k, "image_k", *OPTION_BOUNDS["image_k"])
        check_number(self.image_scale, "image_scale", *OPTION_BOUNDS["image_scale"])
        check_number(self.picture_weight, "picture_weight", *OPTION_BOUNDS["picture_weight"])
        for name in ("history_images", "target_images"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.negative_prompt, str) or len(self.negative_prompt) > MAX_NEGATIVE_PROMPT_CHARS:
            raise ConfigError(f"negative_prompt: a text of at most {MAX_NEGATIVE_PROMPT_CHARS} characters, "
                              f"got {len(self.negative_prompt) if isinstance(self.negative_prompt, str) else self.negative_prompt!r}")

    @classmethod
    def from_options(cls, **options) -> "GenerationConfig":
        """A config from the option names the CLI and the service use (``steps``, ``guidance``; the others
        as the fields); an option given as None takes the field's default. The one mapping of options."""
        fields = {option_name(f.name): f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - set(fields))
        if unknown:
            raise ConfigError(f"unknown generation option(s): {', '.join(unknown)}")
        return cls(**{fields[k]: v for k, v in options.items() if v is not None})

    def to_dict(self) -> dict:
        """JSON-ready options (manifests, batch keys and summaries): the grid as lists; None where the
        generator's own default applies."""
        d = dataclasses.asdict(self)
        d["weights"] = None if self.weights is None else [list(w) for w in self.weights]
        return d
