"""Where batch work runs. Each engine takes chunks of users and yields, as chunks finish, the outcomes
its workers wrote; workers load the models once and write their users' folders themselves.

- ``local``: one worker in this process, or N worker processes (``concurrent.futures``, spawn).
- ``ray``: a pool of N Ray actors (``ray.util.ActorPool``) on a Ray started for the run, or on an
  existing cluster (``address``).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from pmg.batch.worker import BatchWorker

__all__ = ["run_local", "run_ray"]

_WORKER: BatchWorker | None = None  # the worker of a local worker process


def _init_process(loader: Callable, threads: int) -> None:
    global _WORKER
    _WORKER = BatchWorker(loader, threads)


def _process_chunk(chunk, config, out_root) -> list[dict]:
    assert _WORKER is not None
    return _WORKER.process(chunk, config, out_root)


def run_local(chunks: list, loader: Callable, config, out_root: str | Path, *, workers: int = 1,
              threads: int = 1) -> Iterator[list[dict]]:
    if workers == 1:
        worker = BatchWorker(loader, threads)
        for chunk in chunks:
            yield worker.process(chunk, config, out_root)
        return
    ctx = multiprocessing.get_context("spawn")  # fork after torch's thread pools start is unsafe
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_process,
                             initargs=(loader, threads)) as pool:
        pending = set()
        todo = iter(chunks)
        try:
            # at most two chunks per worker in flight: results stream back, an interrupt loses little
            for chunk in todo:
                pending.add(pool.submit(_process_chunk, chunk, config, str(out_root)))
                if len(pending) >= 2 * workers:
                    break
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
                    nxt = next(todo, None)
                    if nxt is not None:
                        pending.add(pool.submit(_process_chunk, nxt, config, str(out_root)))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def run_ray(chunks: list, loader: Callable, config, out_root: str | Path, *, workers: int = 1, threads: int = 1,
            address: str | None = None) -> Iterator[list[dict]]:
    from pmg.ray_init import init_ray

    started = init_ray(address, num_cpus=workers * threads)
    import ray
    from ray.util import ActorPool

    actor_cls = ray.remote(num_cpus=threads)(BatchWorker)
    actors = [actor_cls.remote(loader, threads) for _ in range(workers)]
    try:
        pool = ActorPool(actors)
        yield from pool.map_unordered(lambda actor, chunk: actor.process.remote(chunk, config, str(out_root)), chunks)
    finally:
        for a in actors:
            ray.kill(a)
        if started:
            ray.shutdown()
