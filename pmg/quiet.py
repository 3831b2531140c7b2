"""Model loading without third-party noise on the terminal.

transformers draws a "Loading weights" bar per model and logs load reports; peft's prefix tuning
triggers a transformers ``FutureWarning`` about a renamed attribute. None of it is for a PMG user:
``quiet_loading()`` turns the bars and the libraries' info logs off while PMG loads its models and
restores them after (set ``PMG_VERBOSE_LOADING=1`` to see them). Nesting and several loading threads
are counted, so the first to enter silences and the last to leave restores. The known-harmless
warnings (``_IGNORED``) stay filtered for the rest of the process: ``warnings`` filters are global and
a model may warn after loading, on first use.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from typing import Iterator

__all__ = ["quiet_loading"]

_lock = threading.Lock()
_depth = 0
_saved: dict = {}

# third-party warnings a PMG user cannot act on (they name library internals, not PMG options)
_IGNORED = (
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),
)


def _silence() -> dict:
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    saved = {"t_bar": tlog.is_progress_bar_enabled(), "t_level": tlog.get_verbosity(),
             "d_bar": dlog.is_progress_bar_enabled(), "d_level": dlog.get_verbosity()}
    tlog.disable_progress_bar()
    dlog.disable_progress_bar()
    tlog.set_verbosity_error()
    dlog.set_verbosity_error()
    return saved


def _restore(saved: dict) -> None:
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    if saved["t_bar"]:
        tlog.enable_progress_bar()
    if saved["d_bar"]:
        dlog.enable_progress_bar()
    tlog.set_verbosity(saved["t_level"])
    dlog.set_verbosity(saved["d_level"])


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """No progress bars, info logs or known-harmless warnings from transformers / diffusers / peft inside."""
    global _depth, _saved
    if os.environ.get("PMG_VERBOSE_LOADING") == "1":
        yield
        return
    for category, message in _IGNORED:
        warnings.filterwarnings("ignore", message=message, category=category)
    with _lock:
        if _depth == 0:
            _saved = _silence()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _restore(_saved)
