"""Scenario prompt sets (principle + attributes + examples), kept as versioned JSON templates.

The prompt version is written into every output and into the keyword cache key, so changing a
template never serves stale keywords.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

from pmg.errors import InputError

__all__ = ["PromptSet", "load_prompt_set", "PROMPTS_DIR"]

PROMPTS_DIR = Path(__file__).parent / "prompts"


@dataclass(frozen=True)
class PromptSet:
    version: str
    item_noun: str
    item_singular: str
    verb: str
    principle: str
    attributes: tuple[str, ...]
    examples: tuple[str, ...]
    drop_item_titles: bool
    preference: str
    preference_prefix: str
    target: str
    target_prefix: str
    summary: str
    summary_prefix: str

    def __post_init__(self):
        if not self.attributes:
            raise ValueError(f"prompt set {self.version!r} has no attributes")
        if len(self.examples) < 2:
            raise ValueError(f"prompt set {self.version!r} needs two example keywords")
        for name in ("preference", "target", "summary"):
            getattr(self, name).format_map(_Probe())  # fails early on a broken placeholder

    def preference_prompt(self, attribute: str, history: str, conversations: str) -> str:
        return self.preference.format(
            verb=self.verb, item_noun=self.item_noun, attribute=attribute, history=history,
            conversations=conversations or "none", example_1=self.examples[0], example_2=self.examples[1],
        )

    def target_prompt(self, *, title: str = "", text: str = "", message: str = "") -> str:
        return self.target.format(item_singular=self.item_singular, title=title, text=text, message=message)

    def words(self) -> set[str]:
        """Words of the prompts themselves (examples, "keywords", the item noun): an answer that only
        echoes them is not about the user."""
        import re

        text = " ".join([self.principle, self.preference, self.target, self.item_noun, self.item_singular, *self.examples,
                         *self.attributes])
        return {w for w in re.findall(r"[a-z]+", re.sub(r"\{[a-z_0-9]+\}", " ", text.lower())) if len(w) > 2}

    def summary_prompt(self, title: str, text: str) -> str:
        return self.summary.format(item_singular=self.item_singular, title=title, text=text)


class _Probe(dict):
    def __missing__(self, key):
        return ""


def load_prompt_set(scenario_or_path: str | Path) -> PromptSet:
    """A built-in scenario name (clothing, movie, emoticon) or a JSON file of the same shape."""
    path = Path(scenario_or_path)
    if not path.suffix:
        path = PROMPTS_DIR / f"{scenario_or_path}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROMPTS_DIR.glob("*.json")))
        raise InputError(f"no prompt set {scenario_or_path!r} (built-in: {known})")
    raw = json.loads(path.read_text())
    names = {f.name for f in fields(PromptSet)}
    unknown, missing = set(raw) - names, names - set(raw)
    if unknown or missing:
        raise InputError(f"{path}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    raw["attributes"], raw["examples"] = tuple(raw["attributes"]), tuple(raw["examples"])
    return PromptSet(**raw)
