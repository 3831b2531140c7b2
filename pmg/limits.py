"""Bounds on everything a request controls, checked before any model loads (one place).

A request may not make the machine work for hours or write outside what it names: a 100,000-step
run, a 1,000-pair grid or 999 threads are refused with a message naming the option, and NaN or
infinity is refused wherever a number is read.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from pmg.errors import ConfigError

__all__ = ["MAX_STEPS", "MAX_GRID", "MAX_GUIDANCE", "MAX_THREADS", "MAX_SEED", "MAX_IMAGE_PIXELS", "MAX_WEIGHT",
           "check_number", "check_threads", "check_seed", "check_writable_dir", "check_readable_path"]

MAX_STEPS = 200  # pmg-mini needs 10, Stable Diffusion 20-50
MAX_GRID = 16  # candidates per call (the paper's grid has 5)
MAX_GUIDANCE = 50.0
MAX_WEIGHT = 1e3
MAX_THREADS = 256
MAX_SEED = 2**64 - 1  # torch.Generator's range
MAX_IMAGE_PIXELS = 4096 * 4096  # history images; larger headers are refused before decoding


def check_number(value, name: str, low: float | None = None, high: float | None = None) -> float:
    """A finite number within [low, high]; the error names the option."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{name} must be in [{low}, {high}], got {value!r}")
    return value


def check_threads(n, name: str = "--threads") -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_THREADS:
        raise ConfigError(f"{name} must be an integer from 1 to {MAX_THREADS} (this machine has {os.cpu_count()} cores), got {n!r}")
    return n


def check_seed(seed, name: str = "--seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{name} must be an integer from 0 to 2**64 - 1, got {seed!r}")
    return seed


def check_writable_dir(path: str | Path, name: str) -> Path:
    """``path`` is, or can be created as, a folder this process can write to (checked, not created)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{name} {path} exists and is not a folder")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{name} {path}: cannot write there ({probe} is not a writable folder)")
    return path


def check_readable_path(path: str | Path, name: str, kind: str = "file or folder") -> Path:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{name} {path}: no such {kind}")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{name} {path}: not readable")
    return path
