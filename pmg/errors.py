"""Errors a user can act on. The CLI prints their message and exits non-zero, without a traceback."""


class PMGError(Exception):
    """Base class: the message names the bad value and says what to do."""


class InputError(PMGError):
    """The user's behaviours file (or a value in it) is unusable."""


class ModelLoadError(PMGError):
    """A model folder or file is missing or in an unknown layout."""


class LLMError(PMGError):
    """The language model backend failed or returned nothing usable."""


class ConfigError(PMGError, ValueError):
    """A generation option (steps, weights, seed, threads, a path) is out of bounds; names the option."""
