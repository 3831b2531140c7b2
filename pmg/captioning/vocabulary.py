"""The tagger's default vocabulary: emoji names, tags and art styles shipped with pmg-mini."""

from __future__ import annotations

from pathlib import Path

from pmg.errors import ModelLoadError
from pmg.registry import models_dir

__all__ = ["default_vocabulary", "load_vocabulary"]


def load_vocabulary(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"tagger vocabulary not found: {path}")
    words = [w.strip() for w in path.read_text(encoding="utf-8").splitlines()]
    return list(dict.fromkeys(w for w in words if w and not w.startswith("#")))


def default_vocabulary() -> list[str]:
    return load_vocabulary(models_dir() / "pmg-mini" / "vocabulary.txt")
