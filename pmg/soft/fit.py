"""``pmg train-soft`` as a library call: soft preference embeddings for a set of users, from model names.

    from pmg.soft.fit import fit_soft
    log = fit_soft(load_training_users(Path("data/benchmarks/emoticons/users"), "train"), Path("adapters/mine"))

The generator ('auto': the users' scenario's built-in one) encodes the keywords and denoises; the
bias-correction LLM (``soft_llm``, default the keyword LLM) is what P-Tuning v2 and the multimodal tokens
adapt. Keywords and behaviour text are cached per user.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pmg.behaviours.schema import UserBehaviours
from pmg.errors import ConfigError, PMGError
from pmg.soft.train import SoftTrainConfig

__all__ = ["fit_soft"]


def _quiet(_: str) -> None:
    pass


def fit_soft(users: list[UserBehaviours], out: Path, *, train: SoftTrainConfig = SoftTrainConfig(),
             llm: str = "smollm2", llm_backend: str = "auto", llm_model_name: str = "default", soft_llm: str | None = None,
             generator: str = "auto", num_virtual_tokens: int = 4, num_mm_tokens: int = 4, use_prefix: bool = True,
             val_fraction: float = 0.1, cache_dir: Path | None = None, model_cache_dir: Path | None = None,
             threads: int = 2, log: Callable[[str], None] = _quiet) -> dict:
    """Train an adapter into ``out`` (its ``checkpoint.pt`` is resumed); returns the training log."""
    import torch

    from pmg.api import default_cache_dir
    from pmg.generation.loading import load_generator
    from pmg.io.cache import JsonCache
    from pmg.keywords.extract import build_extractor
    from pmg.llm.transformers_llm import load_causal_lm
    from pmg.registry import resolve_llm
    from pmg.scenarios import resolve_models
    from pmg.soft.model import SoftConfig, SoftPreferenceModel
    from pmg.soft.train import examples_for_users, split_users, train_soft

    if not 0 <= val_fraction < 1:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    scenarios = {u.scenario.value for u in users}
    generator = resolve_models(generator, generator, scenarios.pop() if len(scenarios) == 1 else None)[0]
    model_cache_dir = model_cache_dir or default_cache_dir()
    torch.set_num_threads(threads)
    log(f"{len(users)} users; loading models ({generator}, {llm}) ...")
    pipe = load_generator(generator)
    extractor = build_extractor(llm, backend=llm_backend, threads=threads, model_name=llm_model_name,
                                model_cache_dir=model_cache_dir, cache_dir=cache_dir)
    log("keywords and behaviour text for every user (cached) ...")
    examples = examples_for_users(users, extractor, pipe.codec.image_size, JsonCache(cache_dir) if cache_dir else None,
                                  with_target=train.target_ratio < 1)
    train_set, val_set = split_users(examples, val_fraction, train.seed)
    target = resolve_llm(soft_llm or llm)
    if isinstance(target, str):
        raise ConfigError("--soft-llm must be a model folder, a .gguf file or 'smollm2', not a URL")
    model, tok = load_causal_lm(target, cache_dir=model_cache_dir)
    torch.manual_seed(train.seed)
    try:
        soft_cfg = SoftConfig(num_virtual_tokens=num_virtual_tokens, num_mm_tokens=num_mm_tokens, use_prefix=use_prefix,
                              embed_dim=pipe.embed_dim, llm=str(soft_llm or llm), generator=pipe.name,
                              generator_revision=pipe.revision)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    log(f"training on {len(train_set)} users, validating on {len(val_set)}")
    return train_soft(SoftPreferenceModel(model, tok, soft_cfg), pipe, train_set, val_set, train, out)


def train_config(**options) -> SoftTrainConfig:
    """``SoftTrainConfig`` with its checks' ValueError as the project's error (one line in the CLI)."""
    try:
        return SoftTrainConfig(**options)
    except ValueError as e:
        raise PMGError(str(e)) from None
