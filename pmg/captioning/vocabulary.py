"""The tagger's vocabularies: emoji names, tags and art styles shipped with pmg-mini (the default), and
a model folder's own (pmg-mini-fashion's garment types, colours and patterns)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pmg.errors import ModelLoadError
from pmg.registry import models_dir, resolve_scorer

__all__ = ["default_vocabulary", "load_vocabulary", "vocabulary_for"]


def load_vocabulary(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"tagger vocabulary not found: {path}")
    words = [w.strip() for w in path.read_text(encoding="utf-8").splitlines()]
    return list(dict.fromkeys(w for w in words if w and not w.startswith("#")))


def default_vocabulary() -> list[str]:
    return load_vocabulary(models_dir() / "pmg-mini" / "vocabulary.txt")


def vocabulary_for(scorer: str | Path) -> Callable[[], list[str]]:
    """The vocabulary the tagger should rank with ``scorer``'s embeddings: ``vocabulary.txt`` in the scorer's
    folder, or in the pmg-mini-style model folder that holds it (``model_index.json`` beside it: the
    garments' words for pmg-mini-fashion), else pmg-mini's emoji vocabulary. Read on first use."""
    folder = resolve_scorer(scorer)
    candidates = [folder / "vocabulary.txt"]
    if (folder.parent / "model_index.json").is_file():
        candidates.append(folder.parent / "vocabulary.txt")
    path = next((p for p in candidates if p.is_file()), None)
    return default_vocabulary if path is None else (lambda: load_vocabulary(path))
