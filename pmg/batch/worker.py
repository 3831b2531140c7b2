"""One batch worker: loads the models once, then generates and writes many users. The same object runs
in the main process, in each local worker process, and inside each Ray actor."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from pmg.batch.inputs import BatchInput
from pmg.errors import PMGError

__all__ = ["BatchWorker", "outcome_failed"]


def outcome_failed(inp: BatchInput, message: str, field: str | None = None) -> dict:
    return {"status": "failed", "source": inp.source, "user_id": inp.user_id, "folder": inp.folder,
            "field": field, "message": message}


class BatchWorker:
    def __init__(self, loader: Callable, threads: int | None = None):
        """``loader()`` returns a ``PMG`` (a ``pmg.api.ModelSpec``, or any picklable callable)."""
        if threads:
            torch.set_num_threads(threads)
        t0 = time.perf_counter()
        self.pmg = loader()
        self.load_s = time.perf_counter() - t0

    def process(self, inputs: list[BatchInput], config, out_root: str | Path) -> list[dict]:
        """Generate for these users together (keywords batched, one U-Net pass) and write each one's
        folder. If the batch fails, each user is retried alone so that one bad user fails alone."""
        try:
            results = self.pmg.generate_many([i.user for i in inputs], [config] * len(inputs))
        except Exception as e:  # noqa: BLE001 - recorded, the run goes on
            if len(inputs) > 1:  # find the failing user: each one alone
                return [o for inp in inputs for o in self.process([inp], config, out_root)]
            if isinstance(e, PMGError):
                return [outcome_failed(inputs[0], str(e), getattr(e, "field", None))]
            return [outcome_failed(inputs[0], f"{type(e).__name__}: {e}")]
        return [self._write(inp, res, out_root) for inp, res in zip(inputs, results)]

    def _write(self, inp: BatchInput, result, out_root: str | Path) -> dict:
        from pmg.io.output import save_result

        try:
            save_result(result, Path(out_root) / "users" / inp.folder, extra={"batch": {"key": inp.key, "source": inp.source}})
        except OSError as e:
            return outcome_failed(inp, f"cannot write {inp.folder}: {e.strerror or e}")
        best = result.candidates[result.best]
        return {"status": "done", "source": inp.source, "user_id": inp.user_id, "folder": inp.folder,
                "timings": result.timings, "chosen": f"{best.w_p:g}:{best.w_t:g}", "keywords_cached": result.keywords.cached}
