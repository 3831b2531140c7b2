"""Components loaded on first use, or ahead of it in a background thread (``start``).

The soft-embedding adapter needs the LLM's torch weights, which only its stage uses: a user of a
scenario without an adapter, or a run with ``--no-soft``, never loads them, and a run that does
load them while llama.cpp extracts the keywords (a process of its own) waits for neither.
"""

from __future__ import annotations

import threading
from typing import Callable, Generic, TypeVar

__all__ = ["Lazy", "LazySoft"]

T = TypeVar("T")


class Lazy(Generic[T]):
    """``get()`` loads once (the first caller loads, others wait); ``start()`` loads in the background.
    A load error is raised by every ``get()``."""

    def __init__(self, load: Callable[[], T]):
        self._load, self._lock = load, threading.Lock()
        self._value: T | None = None
        self._error: BaseException | None = None
        self._done = False
        self._thread: threading.Thread | None = None

    @property
    def loaded(self) -> bool:
        return self._done and self._error is None

    @property
    def error(self) -> BaseException | None:
        """The load's error once it failed (``get()`` raises it), else None."""
        return self._error if self._done else None

    def get(self) -> T:
        with self._lock:
            if not self._done:
                try:
                    self._value = self._load()
                except BaseException as e:  # noqa: BLE001 - kept and raised to every caller
                    self._error = e
                self._done = True
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def start(self) -> None:
        """Begin loading in a daemon thread (no-op when loaded, already started, or being loaded by a
        ``get()``: a caller that only asks for an early start never waits for the load)."""
        if not self._lock.acquire(blocking=False):
            return  # a get() is loading it now
        try:
            if self._done or self._thread is not None:
                return
            self._thread = threading.Thread(target=self._background, name="pmg-lazy-load", daemon=True)
            self._thread.start()
        finally:
            self._lock.release()

    def _background(self) -> None:
        try:
            self.get()
        except BaseException:  # noqa: BLE001 - the caller of get() sees it
            pass


class LazySoft:
    """A soft-embedding adapter (``SoftEmbedder``) that loads its LLM on the first ``embed``."""

    def __init__(self, name: str, load: Callable[[], object]):
        self.name, self._lazy = name, Lazy(load)

    def start(self) -> None:
        self._lazy.start()

    @property
    def loaded(self) -> bool:
        return self._lazy.loaded

    def embed(self, keywords):
        return self._lazy.get().embed(keywords)

    def __getattr__(self, attr):  # the loaded SoftEmbedder's other attributes (model, principle, ...)
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(self._lazy.get(), attr)
