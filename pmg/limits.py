"""Bounds on everything a request controls, checked before any model loads (the one place they live).

A request may not make the machine work for hours or write outside what it names: a 100,000-step
run, a 1,000-pair grid or 999 threads are refused with a message naming the option, and NaN or
infinity is refused wherever a number is read. The behaviours schema, the service's request models,
``GenerationConfig``, ``BatchConfig`` and the CLI all read their bounds from here.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from pmg.errors import ConfigError

__all__ = ["MAX_STEPS", "MAX_GRID", "MAX_GUIDANCE", "MAX_THREADS", "MAX_SEED", "MAX_IMAGE_PIXELS", "MAX_WEIGHT",
           "MAX_NEGATIVE_PROMPT_CHARS", "MAX_USER_FILE_BYTES", "MAX_JSON_DEPTH", "MAX_USER_ID_CHARS", "MAX_TITLE_CHARS",
           "MAX_TEXT_CHARS", "MAX_MESSAGE_CHARS", "MAX_ATTRIBUTES", "MAX_ATTRIBUTE_KEY_CHARS", "MAX_ATTRIBUTE_VALUE_CHARS",
           "MAX_IMAGE_BYTES", "MAX_HISTORY_ITEMS", "MAX_CONVERSATIONS", "MAX_EDITED_PREFERENCE", "MAX_EDITED_TARGET",
           "MAX_EDITED_KEYWORD_CHARS", "MAX_WORKERS", "MAX_USERS_PER_CALL", "MAX_SERVE_BATCH", "MAX_QUEUE", "MAX_TIMEOUT_S", "MAX_PORT",
           "OPTION_BOUNDS", "check_number", "check_integer", "check_threads", "check_seed", "check_writable_dir"]

# generation (GenerationConfig, the CLI's options, the service's options)
MAX_STEPS = 200  # pmg-mini needs 10, Stable Diffusion 20-50
MAX_GRID = 16  # candidates per call (the paper's grid has 5)
MAX_GUIDANCE = 50.0
MAX_WEIGHT = 1e3
MAX_THREADS = 256
MAX_SEED = 2**64 - 1  # torch.Generator's range
MAX_NEGATIVE_PROMPT_CHARS = 1000
# option -> (low, high): what GenerationConfig checks and the service's OpenAPI schema shows
OPTION_BOUNDS: dict[str, tuple[float, float]] = {
    "seed": (0, MAX_SEED), "alpha": (0.0, 1.0), "num_inference_steps": (1, MAX_STEPS),
    "guidance_scale": (0.0, MAX_GUIDANCE), "noises": (1, MAX_GRID),
    "image_k": (0, 10), "image_scale": (0.0, 4.0), "picture_weight": (0.0, 1.0),
}

# behaviours (a user's JSON file, or a request's user part)
MAX_USER_FILE_BYTES = 20 * 1024 * 1024
MAX_JSON_DEPTH = 100
MAX_USER_ID_CHARS = 200
MAX_TITLE_CHARS = 300
MAX_TEXT_CHARS = 20_000  # a long plot synopsis fits; a pasted book does not
MAX_MESSAGE_CHARS = 2_000
MAX_ATTRIBUTES = 30
MAX_ATTRIBUTE_KEY_CHARS, MAX_ATTRIBUTE_VALUE_CHARS = 50, 300
MAX_IMAGE_PIXELS = 4096 * 4096  # history images; larger headers are refused before decoding

# the service's requests (images come inline, so lists are bounded too)
MAX_IMAGE_BYTES = 2 * 1024 * 1024
MAX_HISTORY_ITEMS = 100
MAX_CONVERSATIONS = 20
MAX_EDITED_PREFERENCE, MAX_EDITED_TARGET = 10, 5  # keywords edited on the page
MAX_EDITED_KEYWORD_CHARS = 100  # each of them (a keyword is a short phrase)

# processes: pmg batch and pmg serve
MAX_WORKERS = 256
MAX_USERS_PER_CALL = 64
MAX_SERVE_BATCH = 64
MAX_QUEUE = 10_000
MAX_TIMEOUT_S = 86_400
MAX_PORT = 65_535


def check_number(value, name: str, low: float | None = None, high: float | None = None) -> float:
    """A finite number within [low, high]; the error names the option."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{name} must be in [{low}, {high}], got {value!r}")
    return value


def check_integer(value, name: str, low: int, high: int, high_text: str | None = None) -> int:
    """An integer (not a bool) within [low, high]; the error names the option."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer from {low} to {high_text or high}, got {value!r}")
    return value


def check_threads(n, name: str = "--threads") -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_THREADS:
        raise ConfigError(f"{name} must be an integer from 1 to {MAX_THREADS} (this machine has {os.cpu_count()} cores), got {n!r}")
    return n


def check_seed(seed, name: str = "--seed") -> int:
    return check_integer(seed, name, 0, MAX_SEED, "2**64 - 1")


def check_writable_dir(path: str | Path, name: str) -> Path:
    """``path`` is, or can be created as, a folder this process can write to. Tried, not guessed: a
    folder is made and removed in the nearest existing one (permission bits do not tell a read-only
    or pseudo file system apart); ``path`` itself is not created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{name} {path} exists and is not a folder")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{name} {path}: cannot write there ({probe} is not a folder)")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".pmg-probe-", dir=probe))
    except OSError as e:
        raise ConfigError(f"{name} {path}: cannot write there (making a folder in {probe} failed: {e.strerror or e})") from None
    return path
