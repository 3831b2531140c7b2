"""Atomic writes: write beside the target, then rename, so a reader never sees half a file."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["torch_save_atomic", "write_text_atomic", "write_bytes_atomic"]


def torch_save_atomic(obj, path: str | Path) -> None:
    import torch

    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_text_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
