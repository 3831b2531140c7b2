"""What kind of things a user's items are, from WordNet: "food" for pizza, banana and shortcake.

A user whose items share no word (pizza, wine glass, french fries) still shares a category, and a
135M LLM rarely names it (it answers "cute, cartoon"). Each noun of an item's title is looked up in
WordNet 3.0 (Debian's ``wordnet-base``, read directly from its ``index.noun``/``data.noun``: nltk's
reader refuses files outside its own data folders) and the lexicographer files of its three most
frequent senses give coarse categories (``noun.food``, ``noun.animal``, ...). A category most items fall into is a
preference keyword grounded in the behaviours by construction, like ``frequent_words``.

Without WordNet installed every function returns nothing (the keyword stage works as before).
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from pmg.keywords.parse import _singular

__all__ = ["WordNetNouns", "category_keywords", "CATEGORY_WORDS"]

WORDNET_DIR = Path(os.environ.get("PMG_WORDNET_DIR", "/usr/share/wordnet"))

# WordNet noun lexicographer files that name a category a person would prefer, and its keyword; the
# others (act, artifact, body, cognition, ...) are too abstract to say anything about a taste
# (person is left out: film titles are full of "man", "star", "king")
CATEGORY_WORDS = {5: "animals", 13: "food", 20: "plants"}
SENSES = 3  # a noun's most frequent senses considered ("tiger": a fierce person first, the cat second)


class WordNetNouns:
    """The lexicographer files (coarse categories) of a noun's most frequent senses."""

    def __init__(self, root: Path = WORDNET_DIR):
        self.root = Path(root)
        self._index: dict[str, list[int]] = {}
        with open(self.root / "index.noun", encoding="utf-8") as f:
            for line in f:
                if line.startswith(" "):  # the licence header
                    continue
                parts = line.split()
                n_ptr = int(parts[3])
                self._index[parts[0]] = [int(o) for o in parts[6 + n_ptr :][:SENSES]]  # most frequent first
        self._fd = os.open(self.root / "data.noun", os.O_RDONLY)  # positional reads: safe from any thread

    def lexfiles(self, noun: str) -> set[int]:
        # a data line starts "offset lex_filenum ss_type ..."
        return {int(os.pread(self._fd, 32, offset).split()[1]) for offset in self._index.get(noun, ())}

    def nouns(self, title: str) -> list[str]:
        """The nouns of a title, compounds first ("french fries" -> french_fries, not "french", "fries")."""
        raw = re.findall(r"[a-z]+", title.lower())
        out, i = [], 0
        while i < len(raw):
            for n in (3, 2, 1):
                if i + n > len(raw):
                    continue
                found = next((c for c in ("_".join(raw[i : i + n]), "_".join(map(_singular, raw[i : i + n])))
                              if c in self._index), None)
                if found:
                    out.append(found)
                    i += n
                    break
            else:
                i += 1
        return out


@functools.lru_cache(maxsize=1)
def _wordnet() -> WordNetNouns | None:
    try:
        return WordNetNouns()
    except OSError:
        return None


def category_keywords(titles: list[str], min_share: float = 0.6, wordnet: WordNetNouns | None = None) -> dict[str, float]:
    """Categories (``CATEGORY_WORDS``) that at least ``min_share`` of the titles (and two) fall into,
    with that share, most shared first: ["pizza", "banana", "kitchen knife", "shortcake"] -> {"food": 0.75}."""
    wn = wordnet or _wordnet()
    if wn is None or len(titles) < 2:
        return {}
    counts: dict[str, int] = {}
    for title in titles:
        # nouns in the title's order, each noun's categories by file number, never a set's order: the ranking's
        # ties (sorted is stable) then come out the same in every process, whatever PYTHONHASHSEED is
        cats = dict.fromkeys(c for n in wn.nouns(title) for f in sorted(wn.lexfiles(n)) if (c := CATEGORY_WORDS.get(f)))
        for c in cats:
            counts[c] = counts.get(c, 0) + 1
    need = max(2, min_share * len(titles))
    return {c: n / len(titles) for c, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n >= need}
