"""A pool of training conditions encoded once: the text encoder runs before training, not every step.

MiniLM encoding of a batch's windows was a fifth of a v3 training step on two CPU threads. The pool
samples ``n`` batches of examples up front (``compose``'s rows), encodes their contexts once and keeps
them on disk as float16 (``RUN/pool/``, a numpy memmap: ~2.4 GB for 1,000 batches of 32), padded to a
fixed number of 32-token windows with the padding masked out. Training cycles through the pool in a
seeded order, each pass with fresh noise and noise levels, so a row is seen about steps / n times.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Callable

import numpy as np
import torch

__all__ = ["ConditionPool"]


class ConditionPool:
    """``n`` batches of (context [B, T, D] float16, mask [B, T], dataset rows [B]) in ``folder``."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        info = json.loads((self.folder / "info.json").read_text())
        self.n, self.b, self.t, self.d = info["shape"]
        self.ctx = np.load(self.folder / "ctx.npy", mmap_mode="r")  # (n, B, T, D) float16
        self.mask = np.load(self.folder / "mask.npy")  # (n, B, T) uint8
        self.rows = np.load(self.folder / "rows.npy")  # (n, B) int64

    @classmethod
    def build(cls, folder: Path, n: int, sample_rows: Callable[[], list[tuple]], encode: Callable[[list[tuple]], tuple],
              windows: int = 3, progress: bool = True) -> "ConditionPool":
        """Sample and encode ``n`` batches (``sample_rows()`` -> rows whose last field is a dataset row;
        ``encode(rows)`` -> (context [B, T, D], mask [B, T]) with T <= 32 * windows); reused when ``folder``
        already holds a complete pool of that size."""
        folder = Path(folder)
        done = folder / "info.json"
        if done.is_file() and json.loads(done.read_text())["shape"][0] == n:
            return cls(folder)
        folder.mkdir(parents=True, exist_ok=True)
        first = sample_rows()
        encoded0 = encode(first)
        ctx0 = encoded0[0]
        b, d, t = ctx0.shape[0], ctx0.shape[2], 32 * windows
        ctx = np.lib.format.open_memmap(folder / "ctx.npy", mode="w+", dtype=np.float16, shape=(n, b, t, d))
        mask = np.zeros((n, b, t), dtype=np.uint8)
        rows = np.zeros((n, b), dtype=np.int64)
        it = range(n)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc="encoding the condition pool", unit="batch", mininterval=10)
        for k in it:
            batch = first if k == 0 else sample_rows()
            c, m = encoded0 if k == 0 else encode(batch)
            if c.shape[1] > t:
                raise ValueError(f"a context of {c.shape[1]} tokens exceeds the pool's {windows} windows")
            ctx[k, :, : c.shape[1]] = c.numpy().astype(np.float16)
            mask[k, :, : c.shape[1]] = m.numpy().astype(np.uint8)
            rows[k] = [r[-1] for r in batch]
        ctx.flush()
        np.save(folder / "mask.npy", mask)
        np.save(folder / "rows.npy", rows)
        done.write_text(json.dumps({"shape": [n, b, t, d]}))
        return cls(folder)

    def order(self, epoch: int, seed: int) -> list[int]:
        """The batches of one pass, in a seeded order (the same after a resume)."""
        ks = list(range(self.n))
        random.Random(seed * 100_003 + epoch).shuffle(ks)
        return ks

    def batch(self, step: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(context float32 [B, T, D], mask [B, T], dataset rows [B]) for a training step."""
        k = self.order(step // self.n, seed)[step % self.n]
        return (torch.from_numpy(np.asarray(self.ctx[k], dtype=np.float32)), torch.from_numpy(self.mask[k].astype(np.float32)),
                torch.from_numpy(self.rows[k]))
