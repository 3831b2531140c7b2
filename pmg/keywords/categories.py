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

from pmg.keywords.parse import singular

__all__ = ["WordNetNouns", "category_keywords", "theme_keywords", "annotation_keywords", "shared_theme_words", "CATEGORY_WORDS"]

WORDNET_DIR = Path(os.environ.get("PMG_WORDNET_DIR", "/usr/share/wordnet"))

# WordNet noun lexicographer files that name a category a person would prefer, and its keyword; the
# others (act, artifact, body, cognition, ...) are too abstract to say anything about a taste
# (person is left out: film titles are full of "man", "star", "king")
CATEGORY_WORDS = {5: "animals", 13: "food", 20: "plants"}
SENSES = 3  # a noun's most frequent senses considered ("tiger": a fierce person first, the cat second)


class WordNetNouns:
    """A noun's most frequent senses in WordNet: their lexicographer files (coarse categories), and each
    synset's lemmas and hypernyms (``synset``, ``ancestors``)."""

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

    def senses(self, noun: str) -> list[int]:
        """The synset offsets of a noun's most frequent senses, most frequent first."""
        return list(self._index.get(noun, ()))

    @functools.lru_cache(maxsize=65536)
    def synset(self, offset: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """(lemmas, hypernym offsets) of a noun synset. A data line reads "offset lex_filenum n w_cnt(hex)
        word lex_id ... p_cnt pointer ... | gloss"; a pointer is "symbol offset pos source/target"."""
        line, chunk = b"", 512
        while b"\n" not in line:
            line = os.pread(self._fd, chunk, offset)
            if len(line) < chunk and b"\n" not in line:
                raise ValueError(f"{self.root / 'data.noun'}: no synset line at offset {offset}")
            chunk *= 2
        parts = line.split(b"\n", 1)[0].decode("utf-8").split(" | ", 1)[0].split()
        n_words = int(parts[3], 16)
        words = tuple(parts[4 + 2 * i].lower() for i in range(n_words))
        at = 4 + 2 * n_words
        n_ptr = int(parts[at])
        ptrs = [parts[at + 1 + 4 * i : at + 5 + 4 * i] for i in range(n_ptr)]
        return words, tuple(int(p[1]) for p in ptrs if p[0] in ("@", "@i") and p[2] == "n")

    def synonyms(self, noun: str) -> list[str]:
        """The other lemmas of a noun's most frequent sense ("bug" -> insect)."""
        senses = self.senses(noun)
        return [w for w in self.synset(senses[0])[0] if w != noun] if senses else []

    def ancestors(self, offset: int) -> dict[int, int]:
        """Every hypernym of a synset (itself included) with its distance from the root, the longest path."""
        depth: dict[int, int] = {}

        def walk(o: int) -> int:
            if o not in depth:
                depth[o] = 0  # a cycle guard; WordNet's noun hierarchy has none
                ups = self.synset(o)[1]
                depth[o] = 1 + max(map(walk, ups)) if ups else 0
            return depth[o]

        walk(offset)
        return depth

    def nouns(self, title: str) -> list[str]:
        """The nouns of a title, compounds first ("french fries" -> french_fries, not "french", "fries")."""
        raw = re.findall(r"[a-z]+", title.lower())
        out, i = [], 0
        while i < len(raw):
            for n in (3, 2, 1):
                if i + n > len(raw):
                    continue
                found = next((c for c in ("_".join(raw[i : i + n]), "_".join(map(singular, raw[i : i + n])))
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


# hypernyms too abstract to name a taste: a theme is said with a word a person would use
ABSTRACT = {"entity", "physical_entity", "abstraction", "abstract_entity", "object", "physical_object", "whole", "unit",
            "artifact", "artefact", "instrumentality", "instrumentation", "matter", "substance", "thing", "part", "portion",
            "living_thing", "animate_thing", "organism", "being", "causal_agent", "cause", "causal_agency",
            "psychological_feature", "attribute", "relation", "communication", "measure", "quantity", "group", "grouping",
            "collection", "device", "consumer_goods", "goods", "container", "structure", "construction", "covering", "commodity", "trade_good",
            "material", "stuff", "location", "region", "point", "act", "deed", "event", "state", "person", "individual",
            "someone", "somebody", "mortal", "soul", "natural_object", "shape", "form", "signal", "sign", "symbol",
            "implement", "article", "creation", "representation", "solid", "fluid", "liquid", "content", "message",
            "product", "production", "system", "equipment", "happening", "occurrence", "feature", "property",
            "component", "constituent", "element", "activity", "action", "line", "surface", "area", "body", "agent",
            "worker", "adult", "female", "male", "vertebrate", "craniate", "chordate", "invertebrate", "placental",
            "placental_mammal", "eutherian", "eutherian_mammal", "food", "nutrient", "plant", "flora", "plant_life",
            "animal", "animate_being", "beast", "brute", "creature", "fauna"}
MIN_ZIPF = 3.0  # the name's word frequency (wordfreq's Zipf scale): "tool" 4.6, "hand tool" 1.9, "headdress" 2.4


def _name(words: tuple[str, ...]) -> tuple[str, float]:
    """A synset's name as a person writes it, and its Zipf frequency: the first lemma (WordNet's
    headword: "clothing", not its commoner synonym "wear") when it is common, else the commonest."""
    from wordfreq import zipf_frequency

    named = [(w.replace("_", " "), zipf_frequency(w.replace("_", " "), "en")) for w in words]
    if named[0][1] >= MIN_ZIPF:
        return named[0]
    return max(named, key=lambda nz: (nz[1], -len(nz[0])))


def theme_keywords(titles: list[str], min_share: float = 0.6, wordnet: WordNetNouns | None = None,
                   top_k: int = 2, under: str | None = None) -> dict[str, float]:
    """What the items are, when they share no word: the WordNet hypernym that at least ``min_share`` of the
    titles (and two) fall under, named by its commonest lemma, with that share. Among the hypernyms that
    cover the most titles, the most specific one whose name is a common word (``MIN_ZIPF``) and not
    ``ABSTRACT`` wins: ["hammer", "wrench", "screwdriver", "saw"] -> {"tool": 1.0}. A title counts once
    for a hypernym, whichever of its nouns and senses (``SENSES``) reaches it, so one item alone never
    names a theme. ``CATEGORY_WORDS``' three categories are ``category_keywords``' and not repeated.

    ``under``: only hypernyms that are a kind of ``under`` (a word the titles share), a more precise name
    for what it says: ["red exclamation mark", "white question mark"], under "mark" -> {"punctuation": 1.0}."""
    wn = wordnet or _wordnet()
    if wn is None or len(titles) < 2:
        return {}
    cover: dict[int, int] = {}
    depth: dict[int, int] = {}
    for title in titles:
        reached: dict[int, int] = {}
        for noun in wn.nouns(title):
            for sense in wn.senses(noun):
                reached.update(wn.ancestors(sense))
        for o in sorted(reached):  # offsets: the same order in every process
            cover[o] = cover.get(o, 0) + 1
            depth[o] = max(depth.get(o, 0), reached[o])
    need = max(2, min_share * len(titles))
    found: dict[str, tuple[int, int]] = {}
    for o, n in cover.items():
        words = wn.synset(o)[0]
        if n < need or any(w in ABSTRACT for w in words):
            continue
        if under is not None and not any(under in wn.synset(a)[0] for a in wn.ancestors(o) if a != o):
            continue
        name, zipf = _name(words)
        if zipf < MIN_ZIPF or name in CATEGORY_WORDS.values():
            continue
        found[name] = max(found.get(name, (0, 0)), (n, depth[o]))
    ranked = sorted(found.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
    return {name: n / len(titles) for name, (n, _) in ranked[:top_k]}


def annotation_keywords(texts: list[str], min_share: float = 0.5, exclude: set[str] = frozenset()) -> dict[str, float]:
    """Words most items' annotations share, when every item's text is a list of short keywords (an emoji's
    CLDR keywords, "aries, ram, zodiac"; one keyword or none counts too), with that share over all the
    items; prose ("Directed by ...") says nothing here."""
    from pmg.keywords.parse import frequent_words

    def is_keyword_list(text: str) -> bool:
        return all(0 < len(p.split()) <= 3 for p in text.split(","))

    said = [t for t in texts if t.strip()]  # an item without annotations ("battery") shares none of them
    if len(said) < 2 or not all(map(is_keyword_list, said)) or not any("," in t for t in said):
        return {}
    shares = frequent_words([t if t.strip() else "" for t in texts], min_share=min_share, exclude=exclude)
    return {w: share for w, share in shares.items() if round(share * len(texts)) >= 2}  # two items, never one


def shared_theme_words(titles: list[str], texts: list[str], exclude: set[str] = frozenset()) -> dict[str, float]:
    """What the items are, named without the LLM, with each word's share of the items: the words most
    titles share and their WordNet category ("food" for pizza and fries); when the distinct items' titles
    share no word and no category, the hypernym they fall under ("tool" for hammer, wrench and saw) and
    the words their annotations share ("zodiac" for Aries, Leo and Pisces); and a vague shared word said
    precisely ("mark" -> "punctuation"). ``texts``: each item's text (its annotation keywords), aligned
    with ``titles``; ``exclude``: words never returned from the titles' or annotations' shared words."""
    from pmg.keywords.parse import frequent_words

    shared = {**frequent_words(titles, exclude=exclude), **category_keywords(titles)}
    distinct = list(dict.fromkeys(zip(titles, texts)))
    distinct_titles = [t for t, _ in distinct]
    common = frequent_words(distinct_titles)
    if not common and not category_keywords(distinct_titles):
        shared |= {**theme_keywords(distinct_titles), **annotation_keywords([x for _, x in distinct], exclude=exclude)}
    for word in (w for w in common if " " not in w):
        shared |= theme_keywords(distinct_titles, under=word, top_k=1)
    return shared
