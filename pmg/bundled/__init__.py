"""Where the files that ship with pmg are: the pmg-mini models and the example users.

``pmg/bundled/models`` and ``pmg/bundled/examples`` link to the repository's ``models/`` and
``examples/``; an installed package carries the files themselves (package data), so ``pmg generate``
and ``pmg serve`` work from any folder. Lookup order for the models: ``PMG_MODELS_DIR``, then the
package's own (the checkout's, through the links, when not installed).
"""

from __future__ import annotations

import os
from pathlib import Path

from pmg.errors import InputError

__all__ = ["models_dir", "examples_dir", "example_user", "resolve_user_path"]

_HERE = Path(__file__).resolve().parent
_CHECKOUT = _HERE.parent.parent  # where the links point, for a checkout whose links did not survive (core.symlinks=false)


def _bundled(name: str) -> Path:
    path = _HERE / name
    return path if path.is_dir() else _CHECKOUT / name


def models_dir() -> Path:
    """``PMG_MODELS_DIR``, else the models that ship with the package."""
    env = os.environ.get("PMG_MODELS_DIR")
    return Path(env) if env else _bundled("models")


def examples_dir() -> Path:
    """The example users' folder (``examples/users``) that ships with the package."""
    return _bundled("examples") / "users"


def example_user(name: str) -> Path:
    """A bundled example user by name ('cat_lover'); InputError listing the names otherwise."""
    path = examples_dir() / f"{name}.json"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in examples_dir().glob("*.json")))
        raise InputError(f"no example user {name!r} (bundled: {names})")
    return path


def resolve_user_path(spec: str | Path) -> Path:
    """A behaviours file as given, or a bundled example's name ('cat_lover') when no such file exists."""
    path = Path(spec)
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path
    return example_user(str(spec))
