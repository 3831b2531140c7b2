"""Shared by the pmg-mini training scripts."""

from __future__ import annotations

import argparse
import dataclasses


def config_from_cli(cls, doc: str | None):
    """A dataclass config whose every field is a ``--flag`` (ints, floats, strings; booleans as
    ``--flag`` / ``--no-flag``)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(cls):
        if isinstance(f.default, bool):
            ap.add_argument("--" + f.name.replace("_", "-"), action=argparse.BooleanOptionalAction, default=f.default)
            continue
        kind = {int: int, float: float}.get(type(f.default), str)
        ap.add_argument("--" + f.name.replace("_", "-"), type=kind, default=f.default)
    return cls(**vars(ap.parse_args()))
