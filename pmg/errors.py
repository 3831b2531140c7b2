"""Errors a user can act on. The CLI prints their message and exits non-zero, without a traceback."""


class PMGError(Exception):
    """Base class: the message names the bad value and says what to do; ``field`` names the input field
    at fault where there is one (``history[2].image``), for reports such as ``pmg batch``'s errors.jsonl."""

    def __init__(self, message: str = "", *, field: str | None = None):
        super().__init__(message)
        self.field = field


class InputError(PMGError):
    """The user's behaviours file (or a value in it) is unusable."""


class ModelLoadError(PMGError):
    """A model folder or file is missing or in an unknown layout."""


class LLMError(PMGError):
    """The language model backend failed or returned nothing usable."""


class ConfigError(PMGError, ValueError):
    """A generation option (steps, weights, seed, threads, a path) is out of bounds; names the option."""
