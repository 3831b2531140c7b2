"""Ray for the ``ray`` engines (``pmg batch``, ``pmg serve``): an existing cluster, or a local Ray started
for the run and stopped with it."""

from __future__ import annotations

import os
import sys

from pmg.errors import ConfigError

__all__ = ["init_ray"]


def init_ray(address: str | None, num_cpus: int) -> bool:
    """Connect this process to Ray: the cluster at ``address``, or else a new local Ray with ``num_cpus``
    CPUs (never one found on the machine). Returns whether this call connected, so that the caller's
    ``ray.shutdown()`` disconnects (and stops the local Ray) when it is done; False if Ray was already up."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray engine needs Ray: pip install -e \".[ray]\"") from None
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
        return True
    # a small object store (only results travel), this process's import path so that actors import what
    # the driver imports, and actors at normal priority (Ray's default niceness of 15 starves them beside
    # any other busy process)
    os.environ.setdefault("RAY_worker_niceness", "0")
    path = os.pathsep.join(p for p in sys.path if p)
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
             object_store_memory=100 * 1024**2, runtime_env={"env_vars": {"PYTHONPATH": path}})
    return True
