"""Batch generation for many users (``pmg batch``): local worker processes or a Ray actor pool."""

from pmg.batch.run import EXIT_SOME_FAILED, BatchConfig, run_batch

__all__ = ["BatchConfig", "run_batch", "EXIT_SOME_FAILED"]
